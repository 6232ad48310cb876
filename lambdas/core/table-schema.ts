// The one definition of the DynamoDB table. The CDK construct and the local runtime both build the table from it,
// so the cloud and the local stack cannot drift.
import { shardOf } from './shard.js';

/** Partition key of every item. Device items use the deviceId itself; control items start with '#', a character
 * that device ids may not contain, so the two can never collide. */
export const KEY = 'pk';

/** Device item attributes. */
export const A = {
  deviceType: 'deviceType',
  timeoutMs: 'timeoutMs',
  precisionMs: 'precisionMs',
  /** Per-device policy override `{timeoutMs, precisionMs}`; when present it wins over the device type's policy. */
  override: 'ovr',
  lastSeen: 'lastSeen',
  status: 'st',
  since: 'since',
  /** Per-device transition counter, incremented by the write that commits a transition. */
  seq: 'seq',
  shard: 'shard',
  deadline: 'deadline',
  /** Pending notifications (a list of event JSON strings), written by the same write as the transition. */
  outbox: 'outbox',
  outboxShard: 'obShard',
  outboxAt: 'obAt',
  /** Seq of the newest event in the outbox: what a clear is conditional on. Not the item's `seq`, which a transition
   * that appends no event (held by flap damping) raises too, so that a clear conditional on it would never match. */
  outboxSeq: 'obSeq',
  /** Spilled outbox events (see SPILL): the device's spill items still pending are numbers `[obSpFrom, obSpTo)`.
   * `obSpTo`, the number the next spill takes, only grows, so a spill item's key is never reused; the relay moves
   * `obSpFrom` up after deleting the spill items it published. Two numbers however long the outage. */
  spillFrom: 'obSpFrom',
  spillTo: 'obSpTo',
  expiresAt: 'expiresAt',
  /** Maintenance mute: epoch ms until which no offline transition is committed (see `judge` in sweep.ts). */
  mutedUntil: 'mute',
  /** Set by a policy change that lowered the precision: messages up to this time may have been skipped, unwritten, by
   * an ingest container that still caches the old policy, so offline decisions count the device as seen until then
   * (device.ts `presumedLastSeen`). Inert once `lastSeen` passes it. */
  skipHorizon: 'skipHzn',
  /** Flap damping (flap.ts): times of the latest transitions (a number list), and `{since, windowMs}` while the
   * device flaps. */
  transitions: 'flapTimes',
  flapping: 'flap',
  /** Present only while OFFLINE: the sparse offline index keys (see OFFLINE_INDEX). */
  offlineShard: 'offSh',
  offlineKey: 'offKey',
  /** Device tags (tags.ts), a map of name → value. */
  tags: 'tags',
  /** The parent (gateway) a device was reported offline behind (DeviceState `parentOffline`). */
  parentOffline: 'parOff',
} as const;

/** `RETIRED` is the tombstone a decommission leaves: it keeps `seq`, so a device that comes back continues its
 * event ids instead of repeating old ones. Tombstones leave byDeadline and byOffline, but keep the outbox and its
 * byOutbox keys while events committed before the decommission are pending: they stay in byOutbox until those are
 * published and cleared. They expire with the housekeeping TTL.
 *
 * `REGISTERED` is a device an operator registered (PUT /devices/{id}) that has not sent since: in no index, no
 * expiry, its first message turns it online as a new device's would. What allow-list mode tracks (config.ts). */
export const STATUS = { online: 'ONLINE', offline: 'OFFLINE', retired: 'RETIRED', registered: 'REGISTERED' } as const;
export type Status = (typeof STATUS)[keyof typeof STATUS];

/** Sparse index of online devices by the time they would be considered offline, sharded by device; a flapping
 * device stays in it while offline too, at the time it would settle (flap.ts). Projects only attributes that change
 * together with the keys, so a heartbeat that changes only `lastSeen` costs it nothing: `timeoutMs`/`precisionMs`
 * and the flapping mark for the sweep, `deviceType` and the status for the online counts of GET /stats. A type or status change is a
 * commit that rewrites the deadline in the same write, so projecting them adds no index write to any request
 * (heartbeats included) beyond those the deadline already causes. */
export const DEADLINE_INDEX = {
  name: 'byDeadline',
  partitionKey: A.shard,
  sortKey: A.deadline,
  projected: [A.deviceType, A.timeoutMs, A.precisionMs, A.status, A.flapping] as string[],
} as const;

/** Sparse index of devices with notifications committed but not yet confirmed published. */
export const OUTBOX_INDEX = {
  name: 'byOutbox',
  partitionKey: A.outboxShard,
  sortKey: A.outboxAt,
} as const;

/** Sparse index of offline devices, newest first: partition `<deviceType>#<n>` (OFFLINE_SHARDS per type, so an
 * offline storm spreads its index writes), sort key `<since, zero-padded>#<deviceId>` (unique, so a page cursor is
 * one key). The commit of a transition sets or removes these keys in the same write. Projects what a listing shows
 * and filters on (tags); those attributes change only with a transition or an operator action, or (tags) with a
 * message, which reaches an offline device only as the transition that takes it out of this index. */
export const OFFLINE_INDEX = {
  name: 'byOffline',
  partitionKey: A.offlineShard,
  sortKey: A.offlineKey,
  projected: [A.deviceType, A.since, A.lastSeen, A.timeoutMs, A.precisionMs, A.mutedUntil, A.tags] as string[],
} as const;

/** Fixed: the API queries every one of them, so changing it needs a re-index. As many as the deadline index's
 * default shards: a storm of 1M expiries of one device type then spreads its offline-index puts over 64 partitions
 * (~15.6k each, ~16 s at 1,000 WCU/s), within the 60 s the sweep itself needs. */
export const OFFLINE_SHARDS = 64;

/** The offline-index partitions of a device type. */
export function offlinePartitions(deviceType: string): string[] {
  return Array.from({ length: OFFLINE_SHARDS }, (_, n) => `${deviceType}#${n}`);
}

/** Offline-index keys of a device that went offline at `since`. */
export function offlineIndexKeys(
  deviceId: string,
  deviceType: string,
  since: number,
): { offlineShard: string; offlineKey: string } {
  return {
    offlineShard: `${deviceType}#${shardOf(deviceId, OFFLINE_SHARDS)}`,
    offlineKey: `${String(since).padStart(15, '0')}#${deviceId}`,
  };
}

export const TTL_ATTRIBUTE = A.expiresAt;

/** Spill items: while publishing fails, a commit that would take the device item's outbox past OUTBOX_ITEM_MAX
 * events first moves the events already there to a spill item of their own, in one transaction with the device item
 * (outbox.ts). Keyed `#outbox/<deviceId>/<n>`, in no index: the device item lists them (`obSpFrom`, `obSpTo`). */
export const SPILL = {
  /** The spilled events, oldest first (event JSON strings, like the outbox). */
  events: 'ev',
  /** Seq of the newest of them. */
  lastSeq: 'last',
} as const;

/** Key of a device's spill item number `n`. */
export function spillKey(deviceId: string, n: number): string {
  return `#outbox/${deviceId}/${n}`;
}

/** Control items start with this, which device ids cannot contain: least-privilege policies tell them apart by it. */
export const CONTROL_KEY_PREFIX = '#';

/** Control item holding every ingest partition's watermark. */
export const WATERMARKS_KEY = '#watermarks';

/** Control item holding the deployment's probe key (adapters/probe-key.ts). */
export const PROBE_KEY_ITEM = '#probe-key';

/** Control item holding the maintenance windows (maintenance.ts, adapters/maintenance-store.ts). */
export const MAINTENANCE_KEY = '#maintenance';

/** Control item holding the mass-outage incidents (outage.ts). */
export const OUTAGES_KEY = '#outages';

/** Control item of the local runtime only: the maintenance windows' schedules where there is no EventBridge Scheduler
 * (adapters/table-schedules.ts). */
export const LOCAL_SCHEDULES_KEY = '#local-schedules';

export const DEFAULT_SHARD_COUNT = 64;

/** The batched engine's second table (batched.ts): the shards' logs and states, keyed `pk` + `sort`. Log records
 * (`log/<shard>`, sort `<stamp>#<id>`) and state items (`state/<shard>`: `head`, checkpoint chunks, journals) expire
 * by TTL, which deletes for free: nothing here is ever deleted by a request. */
export const SHARD_TABLE = {
  partitionKey: 'pk',
  sortKey: 'sort',
  ttl: 'expiresAt',
  /** Compressed payload of a record, chunk or journal. */
  data: 'd',
  logKey: (shard: string) => `log/${shard}`,
  stateKey: (shard: string) => `state/${shard}`,
} as const;
