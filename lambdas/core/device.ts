// A device's stored state and the events its transitions produce.
import { offlineAt, type Policy } from './policy.js';
import type { Status } from './table-schema.js';
import type { Tags } from './tags.js';

export interface DeviceState {
  deviceId: string;
  deviceType: string;
  /** Effective policy: the override when there is one, else the device type's. */
  timeoutMs: number;
  precisionMs: number;
  override?: Policy;
  lastSeen: number;
  status: Status;
  since: number;
  seq: number;
  /** Present only while online: where the device sits in the deadline index. */
  shard?: string;
  deadline?: number;
  /** Maintenance mute (epoch ms): no offline transition is committed before it. */
  mutedUntil?: number;
  /** Messages that entered up to this time may have been skipped by a coalescing cache that still held an older,
   * coarser policy (see `setPolicy` in admin.ts): offline decisions take the device as seen until then. */
  skipHorizon?: number;
  /** Times (`since`) of the device's latest transitions, oldest first; kept only for types with flap damping. */
  transitions?: number[];
  /** Present while the device flaps: its transitions publish nothing until it has been stable for `windowMs`. */
  flapping?: Flapping;
  /** Tags from its latest message that carried any (tags.ts). */
  tags?: Tags;
  /** Reported offline as unreachable behind its parent (this is the parent's id, sweep.ts `parentVerdict`): the
   * device stays in the deadline index, OFFLINE, and is looked at again until its parent is back; still silent a
   * timeout after that, it is reported again without the cause. */
  parentOffline?: string;
  /** Committed events not yet confirmed published, oldest first: those in the device item. */
  outbox: DeviceEvent[];
  /** Older committed events not yet confirmed published, moved out of the item to spill items while publishing failed
   * (outbox.ts): present once the device has spilled. */
  outboxSpills?: OutboxSpills;
}

/** The device's spill items: numbers `[from, to)` are pending, each holding events older than the next one's, all
 * older than the outbox's. */
export interface OutboxSpills {
  from: number;
  /** The number the next spill takes. */
  to: number;
  /** Read by `DeviceStore.get` only (writes return the item alone): the events of spills `[from, loadedTo)`, one list
   * per spill, oldest first. A listed spill already gone was published and cleared by another relay: its list is
   * empty. */
  loaded?: DeviceEvent[][];
  loadedTo?: number;
}

export interface Flapping {
  /** When the transition that made the device flap happened. */
  since: number;
  /** The device settles once it has been `windowMs` without a transition. */
  windowMs: number;
}

export type EventType = 'device.online' | 'device.offline' | 'device.flapping';

export interface DeviceEvent {
  eventId: string;
  type: EventType;
  deviceId: string;
  deviceType: string;
  seq: number;
  since: number;
  lastSeen: number;
  timeoutMs: number;
  detectedAt: number;
  /** device.flapping only: the state the flapping transition led to, and how long the device must be stable. */
  status?: 'ONLINE' | 'OFFLINE';
  windowMs?: number;
  /** Set on the online/offline event that ends a flapping period: the state the device settled in. */
  settled?: true;
  /** The device's tags when the transition was committed. */
  tags?: Tags;
  /** Why an offline event may not need anyone's attention: its parent (gateway) is offline (`parentId`), or it is part
   * of a mass outage its group's `fleet.outage` reports (`incidentId`). Absent on the event that reports a device
   * still silent once its parent is back. Only on the published event (outage.ts marks it at publish time). */
  cause?: 'parent-offline' | 'outage';
  parentId?: string;
  incidentId?: string;
}

/** Deterministic: the same transition always carries the same id, so consumers can drop duplicates. '#' cannot
 * occur in a device id, so the id splits back unambiguously. */
export function eventId(deviceId: string, seq: number): string {
  return `${deviceId}#${seq}`;
}

export function transitionEvent(
  type: EventType,
  state: Pick<DeviceState, 'deviceId' | 'deviceType' | 'seq' | 'since' | 'lastSeen' | 'timeoutMs' | 'tags'>,
  detectedAt: number,
): DeviceEvent {
  return {
    eventId: eventId(state.deviceId, state.seq),
    type,
    deviceId: state.deviceId,
    deviceType: state.deviceType,
    seq: state.seq,
    since: state.since,
    lastSeen: state.lastSeen,
    timeoutMs: state.timeoutMs,
    detectedAt,
    ...(state.tags && Object.keys(state.tags).length > 0 ? { tags: state.tags } : {}),
  };
}

/** When the device counts as last seen for every offline decision: its stored `lastSeen`, or its skip horizon when
 * that is later, since a message up to the horizon may have entered and been skipped without a write. Events still
 * report the stored `lastSeen`. */
export function presumedLastSeen(state: Pick<DeviceState, 'lastSeen' | 'skipHorizon'>): number {
  return state.skipHorizon === undefined ? state.lastSeen : Math.max(state.lastSeen, state.skipHorizon);
}

/** Until when a mute needs the device item (DynamoDB TTL must not delete it before): a device silent through the
 * mute is reported after its end, within `timeout + precision` of it. Undefined without a mute. */
export function keptForMuteUntil(
  state: Pick<DeviceState, 'mutedUntil' | 'timeoutMs' | 'precisionMs'>,
): number | undefined {
  return state.mutedUntil === undefined ? undefined : offlineAt(state.mutedUntil, policyOf(state));
}

export function policyOf(state: Pick<DeviceState, 'timeoutMs' | 'precisionMs'>): Policy {
  return { timeoutMs: state.timeoutMs, precisionMs: state.precisionMs };
}
