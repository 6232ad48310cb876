// DynamoDB's item size and write billing rules, for what checks a write's cost without an engine (the memory store,
// the tests) or an engine's item against a bound (the tests, bench:sweep).
//   https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html

import { A, KEY } from '../../lambdas/core/table-schema.js';
import type { StoredDevice } from './device-store.js';

/** Bytes of an item as DynamoDB sizes it: attribute names plus values; a string is its UTF-8 bytes, a number about
 * one byte per two significant digits plus one, a list or map 3 bytes plus 1 per element plus the elements. */
export function itemSize(item: Record<string, unknown>): number {
  return Object.entries(item).reduce((n, [name, value]) => n + Buffer.byteLength(name) + valueSize(value), 0);
}

function valueSize(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value === 'string') return Buffer.byteLength(value);
  if (typeof value === 'number') {
    const digits = String(Math.abs(value)).replace('.', '').replace(/e.*$/, '').replace(/^0+/, '').replace(/0+$/, '');
    return Math.ceil(Math.max(1, digits.length) / 2) + 1;
  }
  if (typeof value === 'boolean' || value === null) return 1;
  if (Array.isArray(value)) return 3 + value.reduce((n: number, v) => n + 1 + valueSize(v), 0);
  if (typeof value === 'object') {
    return 3 + Object.entries(value).reduce((n, [k, v]) => n + 1 + Buffer.byteLength(k) + valueSize(v), 0);
  }
  throw new Error(`no DynamoDB size for ${typeof value}`);
}

/** Write units of a standard write: 1 per started KB of the larger of the item before and after (a failed condition
 * is billed like a write of the item as it is). A transactional write costs twice that for each item. */
export function writeUnits(beforeBytes: number, afterBytes = 0): number {
  return Math.max(1, Math.ceil(Math.max(beforeBytes, afterBytes) / 1024));
}

/** A device as the memory store keeps it (a type-only import: no cycle at run time). */
type StoredItem = StoredDevice;

/** The device item as the DynamoDB adapter stores it, for its size. */
export function toItem(item: StoredItem): Record<string, unknown> {
  const attributes: Record<string, unknown> = {
    [KEY]: item.deviceId,
    [A.deviceType]: item.deviceType,
    [A.timeoutMs]: item.timeoutMs,
    [A.precisionMs]: item.precisionMs,
    [A.override]: item.override,
    [A.lastSeen]: item.lastSeen,
    [A.status]: item.status,
    [A.since]: item.since,
    [A.seq]: item.seq,
    [A.shard]: item.shard,
    [A.deadline]: item.deadline,
    [A.outbox]: item.outbox.length > 0 ? item.outbox.map((event) => JSON.stringify(event)) : undefined,
    [A.outboxShard]: item.outboxShard,
    [A.outboxAt]: item.outboxAt,
    [A.outboxSeq]: item.outboxSeq,
    [A.spillFrom]: item.outboxSpills?.from,
    [A.spillTo]: item.outboxSpills?.to,
    [A.expiresAt]: item.expiresAt,
    [A.mutedUntil]: item.mutedUntil,
    [A.skipHorizon]: item.skipHorizon,
    [A.transitions]: item.transitions,
    [A.flapping]: item.flapping,
    [A.offlineShard]: item.offlineShard,
    [A.offlineKey]: item.offlineKey,
  };
  return Object.fromEntries(Object.entries(attributes).filter(([, value]) => value !== undefined));
}

/** Size of a device item the memory store keeps, as DynamoDB would count the item the adapter writes. */
export function deviceItemBytes(item: StoredItem): number {
  return itemSize(toItem(item));
}
