// The one definition of the DynamoDB table. The CDK construct and the local runtime both build the table from it,
// so the cloud and the local stack cannot drift.

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
  expiresAt: 'expiresAt',
} as const;

export const STATUS = { online: 'ONLINE', offline: 'OFFLINE' } as const;
export type Status = (typeof STATUS)[keyof typeof STATUS];

/** Sparse index of online devices by the time they would be considered offline, sharded by device. Projects only
 * attributes that change together with the keys, so a heartbeat that changes only `lastSeen` costs it nothing. */
export const DEADLINE_INDEX = {
  name: 'byDeadline',
  partitionKey: A.shard,
  sortKey: A.deadline,
  projected: [A.timeoutMs, A.precisionMs] as string[],
} as const;

/** Sparse index of devices with notifications committed but not yet confirmed published. */
export const OUTBOX_INDEX = {
  name: 'byOutbox',
  partitionKey: A.outboxShard,
  sortKey: A.outboxAt,
} as const;

export const TTL_ATTRIBUTE = A.expiresAt;

/** Control item holding every ingest partition's watermark. */
export const WATERMARKS_KEY = '#watermarks';

export const DEFAULT_SHARD_COUNT = 64;
