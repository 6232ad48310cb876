// The operator use cases: read a device, steer it (policy override, mute), decommission it, list the offline devices
// and count the fleet. Every change is one conditional write on the device item, decided from the item as read and
// redone from the item a failed condition returns, so it never overwrites a transition it did not see.
import { mapLimit } from './concurrency.js';
import { type EngineName, silentWaitMs } from './config.js';
import { type DeviceState, keptForMuteUntil, policyOf, presumedLastSeen } from './device.js';
import { ApiError } from './errors.js';
import { deadlineOf, settlesAt } from './flap.js';
import type { DeviceTypes, Policy } from './policy.js';
import type { AdminStore, AdminUpdate, CommitOutcome, OfflineEntry, TypeCounts } from './ports.js';
import { offlinePartitions, STATUS } from './table-schema.js';
import type { Tags } from './tags.js';

export interface AdminDeps {
  store: AdminStore;
  deviceTypes: DeviceTypes;
  /** Life of a decommission tombstone (the housekeeping TTL): event ids stay unique across re-registration for it. */
  housekeepingTtlMs: number;
  now: () => number;
  /** The batched engine writes a device's item at its transitions only: its view says how fresh `lastSeen` is. */
  engine?: EngineName;
}

/** What the API shows of a device. */
export interface DeviceView {
  deviceId: string;
  deviceType: string;
  /** `REGISTERED`: registered by an operator, not heard from since (then `since` is when it was registered). */
  status: 'ONLINE' | 'OFFLINE' | 'REGISTERED';
  since: number;
  /** Absent while `REGISTERED`: the device has not been seen. */
  lastSeen?: number;
  timeoutMs: number;
  precisionMs: number;
  /** The per-device override, when one is set. */
  override?: Policy;
  /** Present while a mute is in force. */
  mutedUntil?: number;
  /** Present while the device flaps: since when, and when it settles if it has no transition before. */
  flapping?: { since: number; settlesAt: number };
  /** Transitions so far; the eventId of the latest is `<deviceId>#<seq>`. */
  seq: number;
  /** The device's tags, when it has any. */
  tags?: Tags;
  /** Batched engine only: `lastSeen` is as of the device's last transition (or its item's refresh, at most half the
   * housekeeping TTL apart); its newer messages are in its shard's state, which the sweep judges by. */
  lastSeenAsOf?: 'last-transition';
}

export interface OfflineList {
  devices: Array<Omit<OfflineEntry, 'key'>>;
  /** Opaque; pass back as `cursor` for the next page. Absent on the last page. */
  cursor?: string;
}

export interface Stats {
  deviceTypes: Record<string, TypeCounts>;
  total: TypeCounts;
  /** When the counts were read (epoch ms). */
  asOf: number;
}

/** Redo a change this many times when the device keeps changing under it (a transition, another operator). */
const MAX_ATTEMPTS = 5;

export async function getDevice(deps: AdminDeps, deviceId: string): Promise<DeviceView> {
  return engineView(deps, await existing(deps, deviceId));
}

/** Registers a device, for allow-list mode (config.ts `allowList`: only registered devices are tracked). Where there
 * is no item, or a decommission's tombstone, it writes one in the `REGISTERED` state: in no index, so neither
 * counted nor swept, and with no expiry; its first message then turns it online as a new device's would (a
 * tombstone's `seq` continues, so its event ids do not repeat). Messages that entered before the registration (or
 * before the tombstone's `lastSeen`) stay out. A device that is registered or tracked already is left as it is:
 * `registered` false, and its state. */
export async function register(
  deps: AdminDeps,
  deviceId: string,
  deviceType: string | undefined,
): Promise<{ registered: boolean; device: DeviceView }> {
  const type = deviceType ?? deps.deviceTypes.defaultType;
  let current = await deps.store.get(deviceId);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (current && current.status !== STATUS.retired) return { registered: false, device: engineView(deps, current) };
    const now = deps.now();
    const out = await deps.store.register({
      deviceId,
      expect: current ? { seq: current.seq, status: current.status } : { absent: true },
      deviceType: type,
      policy: typePolicy(deps.deviceTypes, type),
      lastSeen: Math.max(current?.lastSeen ?? 0, now),
      since: now,
      seq: current?.seq ?? 0,
    });
    if (out.applied) return { registered: true, device: engineView(deps, out.after) };
    current = out.current;
  }
  throw new ApiError('conflict', `device ${deviceId} kept changing; try again`);
}

/** Sets (or with `undefined` removes) the per-device override. The effective policy changes in the same write, and
 * an online device's deadline moves earlier when the new policy calls for it: never later than
 * `lastSeen + timeout + precision`, so the next sweep judges by the new policy. A later deadline is left for the
 * sweep to re-arm, which costs the index nothing now.
 *
 * Ingest containers may still cache the old policy and skip writes by its precision: a message up to
 * `lastSeen + old precision` (the stored `lastSeen`, which no cached one exceeds) may have entered without a write.
 * When the precision goes down, that time is kept as the device's skip horizon (never lowered: an older one covers
 * caches older still), and every offline decision counts the device as seen until then. When it does not go down,
 * the new precision already covers what the old one skipped.
 *
 * An override the housekeeping TTL could not keep a silent device for is refused (`keptUntilReported`). */
export async function setPolicy(deps: AdminDeps, deviceId: string, override: Policy | undefined): Promise<DeviceView> {
  return change(deps, deviceId, (current) => {
    if (override) keptUntilReported(deps, current, override);
    const policy = override ?? typePolicy(deps.deviceTypes, current.deviceType);
    const skipHorizon =
      policy.precisionMs < current.precisionMs
        ? Math.max(current.skipHorizon ?? current.lastSeen, current.lastSeen + current.precisionMs)
        : current.skipHorizon;
    const next = { ...current, ...policy, skipHorizon };
    return {
      override: override ?? null,
      policy,
      ...(skipHorizon !== current.skipHorizon ? { skipHorizon } : {}),
      ...earlierDeadline(next),
      ...keptWhileMuted(next, deps),
    };
  });
}

/** While muted, the sweep commits no offline transition: a device that falls silent stays ONLINE, parked in the
 * deadline index at the mute's end, and is reported then if it is still silent. Online events are not muted.
 * A new mute replaces the old one: a device parked at an old mute's end that is later than the new one's returns to
 * its own deadline, like on unmute, and the sweep parks it at the new mute's end. The item is kept until the mute's
 * end plus the wait of a silent device (`keptWhileMuted`). */
export async function mute(deps: AdminDeps, deviceId: string, until: number): Promise<DeviceView> {
  return change(deps, deviceId, (current) => ({
    mutedUntil: until,
    ...earlierDeadline(current),
    ...keptWhileMuted({ ...current, mutedUntil: until }, deps),
  }));
}

/** Ends a mute now: a parked device's deadline returns to `lastSeen + timeout + precision` (or to when a flapping
 * device settles), so the next sweep reports it if it is still silent. */
export async function unmute(deps: AdminDeps, deviceId: string): Promise<DeviceView> {
  return change(deps, deviceId, (current) => ({ mutedUntil: null, ...earlierDeadline(current) }));
}

/** Decommission: the item becomes a tombstone, out of the deadline and offline indexes, counted nowhere, that
 * produces no events of its own; its outbox stays (and with it its byOutbox entry) until the events committed
 * before are published. It keeps `seq` so that a device that sends again registers as new but continues its event
 * ids (`<deviceId>#<seq>`) rather than repeating ids consumers have seen. Messages that entered before the
 * decommission do not bring it back, and neither do those up to `lastSeen + precision` (or the skip horizon): an
 * ingest container that cached the device before may skip them without a write, so they count as entered before, on
 * every container alike, and every accepted message stays reflected in the stored `lastSeen`. The device comes back
 * with its first message after max(decommission time, last write + precision). */
export async function forget(deps: AdminDeps, deviceId: string): Promise<void> {
  let current = await existing(deps, deviceId);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const now = deps.now();
    const out = await deps.store.retire({
      deviceId,
      expect: { seq: current.seq, status: current.status, deviceType: current.deviceType },
      lastSeen: Math.max(presumedLastSeen(current), current.lastSeen + current.precisionMs, now),
      expiresAt: now + deps.housekeepingTtlMs,
    });
    if (out.applied) return;
    current = present(out.current, deviceId);
  }
  throw new ApiError('conflict', `device ${deviceId} kept changing; try again`);
}

/** The offline devices, newest first, from the offline index: every partition of the type (or of every type) is
 * read from the cursor on and the pages merged, so a page costs one query per partition and no scan. The cursor is
 * the sort key of the last device returned, which is unique, so devices that come and go between pages shift
 * nothing. */
export async function listOffline(
  deps: AdminDeps,
  options: { deviceType?: string; tags?: Tags; limit: number; cursor?: string },
): Promise<OfflineList> {
  const types = options.deviceType ? [options.deviceType] : Object.keys(deps.deviceTypes.types);
  const before = options.cursor === undefined ? undefined : decodeCursor(options.cursor, options.deviceType);
  const partitions = types.flatMap(offlinePartitions);
  // Each partition gives its newest `limit` matches: the newest `limit` of their union are the listing's.
  const pages = await mapLimit(partitions, 16, (partition) =>
    deps.store.queryOffline(partition, options.limit, before, options.tags),
  );
  const merged = pages.flatMap((page) => page.items).sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
  const items = merged.slice(0, options.limit);
  const more = merged.length > options.limit || pages.some((page) => page.next !== undefined);
  const last = items[items.length - 1];
  return {
    devices: items.map(({ key: _key, ...entry }) => entry),
    ...(more && last ? { cursor: encodeCursor(last.key, options.deviceType) } : {}),
  };
}

export async function stats(deps: AdminDeps): Promise<Stats> {
  const asOf = deps.now();
  const deviceTypes = await deps.store.counts(Object.keys(deps.deviceTypes.types));
  const total = { online: 0, offline: 0 };
  for (const counts of Object.values(deviceTypes)) {
    total.online += counts.online;
    total.offline += counts.offline;
  }
  return { deviceTypes, total, asOf };
}

/** Applies a change decided from the stored item, as one conditional write, redone from the item a failed
 * condition returns. */
async function change(
  deps: AdminDeps,
  deviceId: string,
  decide: (current: DeviceState) => Omit<AdminUpdate, 'deviceId' | 'expect'>,
): Promise<DeviceView> {
  let current = await existing(deps, deviceId);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const out: CommitOutcome = await deps.store.update({
      deviceId,
      expect: { seq: current.seq, status: current.status, policy: policyOf(current) },
      ...decide(current),
    });
    if (out.applied) return view(out.after, deps.now());
    current = present(out.current, deviceId);
  }
  throw new ApiError('conflict', `device ${deviceId} kept changing; try again`);
}

async function existing(deps: AdminDeps, deviceId: string): Promise<DeviceState> {
  return present(await deps.store.get(deviceId), deviceId);
}

function present(state: DeviceState | undefined, deviceId: string): DeviceState {
  if (!state || state.status === STATUS.retired) throw new ApiError('not-found', `no device ${deviceId}`);
  return state;
}

/** The deadline a device should have by its (new) state, when that is earlier than the stored one: the deadline is
 * never later than allowed, and a later one is left for the sweep to re-arm, which costs the index nothing now. */
function earlierDeadline(state: DeviceState): { deadline?: number } {
  const target = deadlineOf(state);
  const move = target !== undefined && (state.deadline === undefined || state.deadline > target);
  return move ? { deadline: target } : {};
}

/** Refuses (400 `bad-duration`, nothing written) an override under which DynamoDB TTL could delete the device item
 * before a silence is reported, by the rule `checkInvariants` applies to device types at deploy: the housekeeping TTL
 * must outlast `timeout + precision`, plus the flap window when the device's type damps flapping (or the device
 * flaps now), since a flapping device settles offline that long after going offline. The API checks
 * `timeout + precision` before reading anything; the flap window needs the device's type, known once it is read. */
function keptUntilReported(deps: AdminDeps, current: DeviceState, override: Policy): void {
  const windowMs = Math.max(
    deps.deviceTypes.types[current.deviceType]?.flap?.windowMs ?? 0,
    current.flapping?.windowMs ?? 0,
  );
  const wait = silentWaitMs(override, windowMs);
  if (wait < deps.housekeepingTtlMs) return;
  const terms =
    windowMs > 0
      ? `timeout + precision + the flap window of device type "${current.deviceType}" (${override.timeoutMs} + ` +
        `${override.precisionMs} + ${windowMs} ms)`
      : `timeout + precision (${override.timeoutMs} + ${override.precisionMs} ms)`;
  throw new ApiError(
    'bad-duration',
    `${terms} = ${wait} ms must be below the housekeeping TTL (${deps.housekeepingTtlMs} ms): a silent device ` +
      'would be forgotten before it is reported',
  );
}

/** DynamoDB TTL deletes a device item at `expiresAt` (`lastSeen` + housekeeping TTL); a silent device muted beyond
 * that would be deleted unreported. Rather than refuse such a mute, the item is kept until the mute's end plus the
 * wait of a silent device (timeout + precision), in the same write: a long mute is a deliberate operator decision,
 * and a longer-lived item costs only its storage. A mute within the usual life leaves `expiresAt` as it is. (A
 * message's write sets `expiresAt` from its own time; the ingest keeps it past the mute too, see `applyUpdate`.) */
function keptWhileMuted(state: DeviceState, deps: AdminDeps): { expiresAt?: number } {
  const keep = keptForMuteUntil(state);
  return keep !== undefined && keep > state.lastSeen + deps.housekeepingTtlMs ? { expiresAt: keep } : {};
}

function typePolicy(types: DeviceTypes, deviceType: string): Policy {
  const type = types.types[deviceType] ?? types.types[types.defaultType]!;
  return { timeoutMs: type.timeoutMs, precisionMs: type.precisionMs };
}

/** The view, marked on the batched engine as only as fresh as the item's last write (when it shows `lastSeen`). */
function engineView(deps: AdminDeps, state: DeviceState): DeviceView {
  const shown = view(state, deps.now());
  return deps.engine === 'batched' && shown.lastSeen !== undefined
    ? { ...shown, lastSeenAsOf: 'last-transition' }
    : shown;
}

function view(state: DeviceState, now: number): DeviceView {
  const registered = state.status === STATUS.registered;
  return {
    deviceId: state.deviceId,
    deviceType: state.deviceType,
    status: registered ? 'REGISTERED' : state.status === STATUS.online ? 'ONLINE' : 'OFFLINE',
    since: state.since,
    ...(registered ? {} : { lastSeen: state.lastSeen }),
    timeoutMs: state.timeoutMs,
    precisionMs: state.precisionMs,
    ...(state.override ? { override: state.override } : {}),
    ...(state.mutedUntil !== undefined && state.mutedUntil > now ? { mutedUntil: state.mutedUntil } : {}),
    ...(state.flapping ? { flapping: { since: state.flapping.since, settlesAt: settlesAt(state)! } } : {}),
    seq: state.seq,
    ...(state.tags ? { tags: state.tags } : {}),
  };
}

function encodeCursor(key: string, deviceType: string | undefined): string {
  return Buffer.from(JSON.stringify({ k: key, ...(deviceType ? { t: deviceType } : {}) })).toString('base64url');
}

/** `offlineIndexKeys`' sort key: a zero-padded `since`, '#', a device id. */
const OFFLINE_KEY_PATTERN = /^\d{15}#[A-Za-z0-9._:@/-]{1,128}$/;

function decodeCursor(cursor: string, deviceType: string | undefined): string {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { k?: unknown; t?: unknown };
    // Only the shape of a real offline-index key: anything else (an over-long key DynamoDB would refuse with a 5xx
    // of ours) is the caller's bad cursor.
    const ok = typeof parsed.k === 'string' && OFFLINE_KEY_PATTERN.test(parsed.k);
    if (ok && (parsed.t ?? undefined) === deviceType) return parsed.k as string;
  } catch {
    // fall through
  }
  throw new ApiError('bad-cursor', 'cursor is not one this listing returned');
}
