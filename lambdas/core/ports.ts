// What the core needs from the outside world. Adapters implement these over AWS; tests also run the core against
// an in-memory model that implements the same contracts.
import type { DeviceEvent, DeviceState } from './device.js';
import type { Rejection } from './message.js';
import type { Policy } from './policy.js';
import type { Status } from './table-schema.js';
import type { Tags } from './tags.js';

/** Write units a request consumed, as DynamoDB billed them (table + indexes), when the store can tell. */
export interface Billed {
  units?: number;
}

/** The happy-path write of a message: record `lastSeen`, no read. Applies only when the device is online, older
 * than `lastSeen`, and its stored policy is still the one the caller assumes; otherwise `applied` is false and
 * `current` is the stored item as it was (the failed condition is the read). */
export interface TouchRequest {
  deviceId: string;
  lastSeen: number;
  expiresAt: number;
  /** A device without a per-device override must still have this policy (a changed type policy fails the write). */
  typePolicy: Policy;
  /** Set when the caller knows neither the message's type nor the stored one: then, instead of `typePolicy`, a device
   * without an override must have the policy given here for its stored type (every configured type, by name). */
  typePolicies?: Readonly<Record<string, Policy>>;
  /** When the message names its type, the stored type must be it. */
  deviceType?: string;
  /** Move the deadline in the same write; requires the stored effective policy to equal `policy`, and unless the
   * caller bounded the deadline by when the device settles (`flapping`), that the device does not flap. */
  moveDeadline?: { deadline: number; policy: Policy; flapping: boolean };
  /** Replace the stored tags (the message carried these). */
  tags?: Tags;
}

export type TouchOutcome = Billed &
  ({ applied: true; before: DeviceState } | { applied: false; current: DeviceState | undefined });

/** Optimistic concurrency for state changes: the item must still be absent, or still at this seq and status with
 * `lastSeen` not above the given value. The optional parts narrow it further: the stored type (so a concurrent type
 * change is not overwritten), the stored effective policy (so a concurrent operator override is not
 * overwritten), and no mute beyond `notMutedAfter` (so a mute set meanwhile holds the offline transition). */
export type Expectation =
  | { absent: true }
  | {
      seq: number;
      status: Status;
      lastSeenAtMost: number;
      deviceType?: string;
      policy?: Policy;
      notMutedAfter?: number;
      /** No skip horizon later than this (absent counts as none): one set since does not move a decision taken
       * from `presumedLastSeen`. */
      skipHorizonAtMost?: number;
    };

/** Writes a device's new state (and appends its transition events to the outbox) in one conditional write.
 * `shard`/`deadline` left undefined are removed, taking the device out of the deadline index; `tags` left undefined
 * keep the stored ones (tags are replaced by a message's, never removed).
 *
 * The item's outbox never holds more than OUTBOX_ITEM_MAX events (outbox.ts): when appending would pass it, the
 * store first moves the events already there to a spill item, in one transaction with the device item that requires
 * the outbox to be as read, then writes the commit. A spill changes no state, so it is right whether or not the
 * commit then applies. */
export interface CommitRequest {
  deviceId: string;
  expect: Expectation;
  state: Omit<DeviceState, 'deviceId' | 'outbox' | 'override' | 'skipHorizon' | 'outboxSpills'>;
  expiresAt?: number;
  append: DeviceEvent[];
  /** The outbox as the caller read it (the item the expectation was taken from): tells the store beforehand that
   * this commit needs a spill. Without it, a commit that finds the outbox full fails its condition, spills what the
   * failure returned, and writes again: one failed write more. */
  read?: Pick<DeviceState, 'outbox' | 'outboxSpills'>;
  /** Outbox index keys, set when `append` is not empty: re-published from there if the publisher never confirms. */
  outboxShard: string;
  outboxAt: number;
}

export type CommitOutcome = Billed &
  ({ applied: true; after: DeviceState } | { applied: false; current: DeviceState | undefined });

/** A deadline move decided from the stored item: applies only while the item keeps that seq, status and policy
 * (and, for a mute's end, that mute), so nothing it was decided from has changed. */
export interface ParkRequest {
  deviceId: string;
  deadline: number;
  expect: { seq: number; status: Status; policy: Policy; mutedUntil?: number };
}

/** An entry of the deadline index. */
export interface ExpiredEntry {
  deviceId: string;
  deadline: number;
  timeoutMs: number;
  precisionMs: number;
  /** The device flaps (then it may also be offline): a re-arm would fail, so the sweep reads it instead. */
  flapping: boolean;
}

export interface Page<T> {
  items: T[];
  next?: string;
}

export interface DeviceStore {
  touch(request: TouchRequest): Promise<TouchOutcome>;
  /** Moves a device's deadline-index entry to a time the sweep chose (a mute's end, when a flapping device settles)
   * while the item is still as the sweep read it; otherwise returns the stored item. */
  park(request: ParkRequest): Promise<TouchOutcome>;
  commit(request: CommitRequest): Promise<CommitOutcome>;
  /** Moves an online device's deadline to `lastSeen + timeout + precision` when it is still alive at `cutoff`,
   * still has `policy` and does not flap (a flapping device's deadline is parked instead); otherwise returns the
   * stored item. */
  rearm(deviceId: string, policy: Policy, cutoff: number): Promise<TouchOutcome>;
  /** Drops the events up to `seq` once they are published: the spill items holding only such events (deleted first,
   * then unlisted, so that a listed spill either exists or was published), and the outbox unless an event was
   * appended since: conditional on the outbox's newest event (not the item's seq, which a transition held by flap
   * damping raises without one). `spills`: the caller read spills `[from, to)` and published them all, so the store
   * need not read them to tell which are published. True when nothing is left pending; false when a newer event
   * was appended or spilled (the caller publishes it too), when spills are left, or when none was left. */
  clearOutbox(deviceId: string, seq: number, spills?: { from: number; to: number }): Promise<boolean>;
  /** The stored item (strongly consistent), with the events of its oldest pending spills (`outboxSpills.loaded`, at
   * most SPILLS_PER_READ of them). */
  get(deviceId: string): Promise<DeviceState | undefined>;
  queryExpired(shard: string, cutoff: number, limit: number, cursor?: string): Promise<Page<ExpiredEntry>>;
  queryOutbox(shard: string, committedBefore: number, limit: number, cursor?: string): Promise<Page<string>>;
}

export interface EventPublisher {
  /** Publishes the events (in the given order); returns those that could not be published, and those it holds back
   * on purpose for now (outage.ts: not a failure; they stay in the outbox, in order, for the re-publish). */
  publish(events: DeviceEvent[]): Promise<{ failed: DeviceEvent[]; held?: DeviceEvent[] }>;
}

export interface RejectedRecord extends Rejection {
  /** Where the record came from, e.g. the queue ARN or the Kinesis shard. */
  source: string;
  recordId: string;
}

export interface RejectSink {
  /** Sends rejections to the rejects destination; returns those that could not be sent. */
  send(rejections: RejectedRecord[]): Promise<{ failed: RejectedRecord[] }>;
}

/** An operator's change to one device (policy override, mute), as one conditional write. The stored item must still
 * be at this seq and status with this effective policy, so a concurrent transition or override sends the caller
 * round again with the item the failed condition returned. */
export interface AdminUpdate {
  deviceId: string;
  expect: { seq: number; status: Status; policy: Policy };
  /** New override; null removes it. */
  override?: Policy | null;
  /** New effective policy (written with the override). */
  policy?: Policy;
  /** New mute end; null removes it. */
  mutedUntil?: number | null;
  /** New deadline-index position; only for a device in the index, and never later than its state allows (flap.ts
   * `deadlineOf`). */
  deadline?: number;
  /** New skip horizon (only ever raised; see DeviceState). */
  skipHorizon?: number;
  /** New housekeeping expiry: set by a mute that needs the item past its usual life (until it has been reported). */
  expiresAt?: number;
}

/** Decommission: the device item becomes a tombstone that keeps `seq` (see STATUS.retired). */
export interface RetireRequest {
  deviceId: string;
  expect: { seq: number; status: Status; deviceType: string };
  /** Messages that entered the pipeline up to this do not bring the device back. */
  lastSeen: number;
  expiresAt: number;
}

/** Registration (allow-list mode): the device item in the `REGISTERED` state, in no index and with no expiry,
 * written only where there is none yet or a decommission's tombstone, whose `seq` it keeps. */
export interface RegisterRequest {
  deviceId: string;
  /** No item, or the tombstone as read. */
  expect: { absent: true } | { seq: number; status: Status };
  deviceType: string;
  policy: Policy;
  /** Messages that entered up to this are not taken: the registration's time, or a tombstone's when later. */
  lastSeen: number;
  /** When the device was registered. */
  since: number;
  seq: number;
}

/** An entry of the offline index (newest first). */
export interface OfflineEntry {
  deviceId: string;
  deviceType: string;
  since: number;
  lastSeen: number;
  timeoutMs: number;
  precisionMs: number;
  mutedUntil?: number;
  tags?: Tags;
  /** The entry's sort key: a listing resumes strictly after it. */
  key: string;
}

export interface TypeCounts {
  online: number;
  offline: number;
}

/** What the operator API needs from the table besides `get`. */
export interface AdminStore {
  get(deviceId: string): Promise<DeviceState | undefined>;
  update(request: AdminUpdate): Promise<CommitOutcome>;
  retire(request: RetireRequest): Promise<CommitOutcome>;
  register(request: RegisterRequest): Promise<CommitOutcome>;
  /** One partition of the offline index, newest first, strictly older than `before` (a sort key) when given. */
  /** Up to `limit` entries of one offline-index partition, newest first, strictly before `before`; with `tags`, only
   * entries carrying every one of them (read on until `limit` match or the partition ends). */
  queryOffline(partition: string, limit: number, before?: string, tags?: Tags): Promise<Page<OfflineEntry>>;
  /** Devices of each type, counted from the indexes: online = in the deadline index (a muted device held there
   * included), offline = in the offline index, retired nowhere. Reads the index keys of the whole fleet: an operator
   * call, not one to poll. */
  counts(deviceTypes: string[]): Promise<Record<string, TypeCounts>>;
}

/** The batched engine (batched.ts): what the ingest saw of a device in one batch. */
export interface Sighting {
  deviceId: string;
  lastSeen: number;
  deviceType?: string;
  tags?: Tags;
}

/** What one read of a shard's log returned: sightings, and the devices an operator changed (whose items the sweep
 * re-reads while their note is in the read window). */
export interface LogRead {
  sightings: Sighting[];
  notes: string[];
}

/** A shard's log of sightings and operator notes (batched engine). Records are stamped by the writer's clock when
 * appended and kept for a retention far longer than any read window. */
export interface SightingLog {
  append(shard: string, record: { sightings?: Sighting[]; notes?: string[] }): Promise<Billed>;
  /** Every record stamped after `after`, strongly consistent. */
  read(shard: string, after: number): Promise<LogRead & Billed>;
}

/** A shard's persisted state (batched engine): a version, a checkpoint of every entry, and the journals of the
 * changes committed since. */
export interface StoredShard<E> {
  version: number;
  /** Sightings stamped after this were not merged into the checkpoint: a cold start reads the log from here. */
  position: number;
  /** The checkpoint's entries with every journal since applied, in order. */
  entries: Map<string, E>;
  /** How many journals follow the checkpoint. */
  journals: number;
}

/** What one save of a shard's state writes: a journal of the entries changed (undefined: removed), or a checkpoint
 * of them all taken at `position`. */
export type ShardChange<E> = { journal: Map<string, E | undefined> } | { checkpoint: Map<string, E>; position: number };

export interface ShardStateStore<E> {
  /** The version of the shard's state, or 0 when it has none yet (one small strongly consistent read). */
  version(shard: string): Promise<number>;
  load(shard: string): Promise<StoredShard<E> | undefined>;
  /** Applies only while the shard is still at `expectVersion`. False when another job saved first. */
  save(shard: string, expectVersion: number, change: ShardChange<E>): Promise<boolean>;
}
