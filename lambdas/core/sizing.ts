// The batched engine's shape for a fleet (docs/design.md §11): shards and ingest batching. Used by the construct,
// `npm run simulate`, `npm run bench` and `npm run cost`, so all of them size the engine alike.

/** Devices one shard's state holds at most: its checkpoint (~50 bytes a device, compressed) stays a few MB, and a
 * sweep of it a few hundred ms of work. */
export const DEVICES_PER_SHARD = 125_000;
/** Sightings one append should carry for a shard: ~4 KB compressed, so that the write's rounding up to the next
 * kilobyte costs under a quarter of it. */
export const SIGHTINGS_PER_APPEND = 200;

export interface BatchedSizing {
  shardCount: number;
  /** Records the ingest takes per invocation (Lambda's BatchSize), and how long it waits to fill them. */
  batchSize: number;
  batchWindowSeconds: number;
}

/** The batched engine's shape for a fleet: enough shards for the devices, and ingest batches that carry about
 * SIGHTINGS_PER_APPEND sightings to each shard at the fleet's message rate. */
export function batchedSizing(fleet: { devices: number; messagesPerSecond: number }): BatchedSizing {
  const clamp = (n: number, min: number, max: number) => Math.min(max, Math.max(min, n));
  const shardCount = clamp(Math.ceil(fleet.devices / DEVICES_PER_SHARD), 1, 1_000);
  const batchSize = clamp(SIGHTINGS_PER_APPEND * shardCount, 100, 10_000);
  const batchWindowSeconds = clamp(Math.ceil(batchSize / Math.max(fleet.messagesPerSecond, 0.001)), 1, 60);
  return { shardCount, batchSize, batchWindowSeconds };
}

/** Devices one batched sweep job settles at once: about 1,024 in flight over all shards, 16..256 per job. */
export function batchedSweepConcurrency(shardCount: number): number {
  return Math.min(256, Math.max(16, Math.ceil(1_024 / shardCount)));
}

/** Items one batched sweep job writes at once for new and returning devices: about 128 over all shards, so that a
 * mass reconnect (a transition each: ~6 write units with the indexes, 3 requests) stays near 4,000 devices/s and
 * 25,000 write units/s, under an on-demand table's default quota of 40,000. */
export function batchedReconnectConcurrency(shardCount: number): number {
  return Math.max(1, Math.floor(128 / shardCount));
}
