/** Stable shard of a device in the deadline index: FNV-1a of the id, mod the shard count. Stable across runtimes
 * and deployments, so a device stays in its shard until the shard count changes. */
export function shardOf(deviceId: string, shardCount: number): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) {
    hash ^= deviceId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return String((hash >>> 0) % shardCount);
}
