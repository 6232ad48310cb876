// An in-memory model of the device table with the same conditional semantics as DynamoDeviceStore. Property tests
// run the protocol against it at a speed no engine allows; the integration tests hold the adapter to the same
// behaviour on DynamoDB Local.

import type { DeviceEvent, DeviceState } from '../../lambdas/core/device.js';
import {
  commitSpilling,
  type OutboxView,
  pendingSpills,
  SPILLS_PER_READ,
  type SpillOutcome,
} from '../../lambdas/core/outbox.js';
import type { Policy } from '../../lambdas/core/policy.js';
import type {
  AdminStore,
  AdminUpdate,
  CommitOutcome,
  CommitRequest,
  DeviceStore,
  ExpiredEntry,
  OfflineEntry,
  Page,
  ParkRequest,
  RegisterRequest,
  RetireRequest,
  TouchOutcome,
  TouchRequest,
  TypeCounts,
} from '../../lambdas/core/ports.js';
import { KEY, offlineIndexKeys, offlinePartitions, SPILL, STATUS, spillKey } from '../../lambdas/core/table-schema.js';
import type { Tags } from '../../lambdas/core/tags.js';
import { deviceItemBytes, itemSize, writeUnits } from './item-size.js';

export interface StoredDevice extends DeviceState {
  expiresAt?: number;
  outboxShard?: string;
  outboxAt?: number;
  outboxSeq?: number;
  offlineShard?: string;
  offlineKey?: string;
}

const clone = <T>(value: T): T => structuredClone(value);

/** A write as DynamoDB would bill it (see item-size.ts): what a test meters. */
export interface MeteredWrite {
  kind: 'touch' | 'commit' | 'spill' | 'clearOutbox' | 'deleteSpill';
  deviceId: string;
  applied: boolean;
  units: number;
  /** Size of the device item after the write. */
  itemBytes: number;
}

export class MemoryDeviceStore implements DeviceStore, AdminStore {
  readonly items = new Map<string, StoredDevice>();
  /** Spill items by key (table-schema.ts `spillKey`): the spilled events and the seq of the newest. */
  readonly spills = new Map<string, { events: DeviceEvent[]; lastSeq: number }>();
  /** Count of requests by kind, for cost accounting in tests and benchmarks. */
  readonly calls = {
    touch: 0,
    commit: 0,
    spill: 0,
    rearm: 0,
    clearOutbox: 0,
    get: 0,
    queryExpired: 0,
    queryOutbox: 0,
  };
  /** Called with every write to the device table the store models, billed by DynamoDB's rules. */
  meter?: (write: MeteredWrite) => void;
  /** Touches and commits report the units they cost by DynamoDB's rules, as the adapter reports DynamoDB's. Off by
   * default: tests of the cores' own unit accounting count only what they add. */
  private readonly reportUnits: boolean;

  constructor(options: { reportUnits?: boolean } = {}) {
    this.reportUnits = options.reportUnits ?? false;
  }

  private get billing(): boolean {
    return this.reportUnits || this.meter !== undefined;
  }

  /** The device item's size as DynamoDB counts it (0 when there is none). */
  itemBytes(deviceId: string): number {
    const item = this.items.get(deviceId);
    return item ? deviceItemBytes(item) : 0;
  }

  /** Bills a write of the device item that was `before` bytes; returns the units when they are reported. */
  private bill(kind: MeteredWrite['kind'], deviceId: string, applied: boolean, before: number): number | undefined {
    if (!this.billing) return undefined;
    const itemBytes = this.itemBytes(deviceId);
    const units = writeUnits(before, applied ? itemBytes : 0);
    this.meter?.({ kind, deviceId, applied, units, itemBytes });
    return this.reportUnits ? units : undefined;
  }

  private sizeBefore(deviceId: string): number {
    return this.billing ? this.itemBytes(deviceId) : 0;
  }

  async touch(request: TouchRequest): Promise<TouchOutcome> {
    this.calls.touch++;
    const before = this.sizeBefore(request.deviceId);
    const out = this.touchItem(request);
    const units = this.bill('touch', request.deviceId, out.applied, before);
    return units === undefined ? out : { ...out, units };
  }

  private touchItem(request: TouchRequest): TouchOutcome {
    const item = this.items.get(request.deviceId);
    const ok =
      item !== undefined &&
      item.status === 'ONLINE' &&
      item.lastSeen < request.lastSeen &&
      (item.override !== undefined || samePolicy(item, assumedPolicy(item, request))) &&
      (request.deviceType === undefined || item.deviceType === request.deviceType) &&
      (request.moveDeadline === undefined ||
        (samePolicy(item, request.moveDeadline.policy) &&
          (request.moveDeadline.flapping || item.flapping === undefined)));
    if (!ok) return { applied: false, current: item && toState(item) };
    const before = toState(item);
    item.lastSeen = request.lastSeen;
    item.expiresAt = request.expiresAt;
    if (request.moveDeadline) item.deadline = request.moveDeadline.deadline;
    if (request.tags) item.tags = clone(request.tags);
    return { applied: true, before };
  }

  async commit(request: CommitRequest): Promise<CommitOutcome> {
    this.calls.commit++;
    return commitSpilling(request, {
      write: async (r, room) => {
        const before = this.sizeBefore(r.deviceId);
        const out = this.commitWrite(r, room);
        const units = this.bill('commit', r.deviceId, out.applied, before);
        return units === undefined ? out : { ...out, units };
      },
      spill: async (deviceId, read) => this.spill(deviceId, read),
    });
  }

  /** The DynamoDB adapter's spill transaction: all or nothing. */
  async spill(deviceId: string, read: OutboxView): Promise<SpillOutcome> {
    this.calls.spill++;
    const item = this.items.get(deviceId);
    const before = this.sizeBefore(deviceId);
    const n = read.outboxSpills?.to ?? 0;
    const last = read.outbox[read.outbox.length - 1]!.seq;
    const ok =
      item !== undefined &&
      (item.outboxSeq ?? item.seq) === last &&
      item.outbox.length > 0 &&
      item.outbox.length === read.outbox.length &&
      (n === 0 ? item.outboxSpills === undefined : item.outboxSpills?.to === n);
    if (!ok || !item) {
      // A cancelled transaction is billed like its writes.
      const units = this.bill('spill', deviceId, false, before);
      return { spilled: false, current: item && toState(item), ...(units === undefined ? {} : { units: 2 * units }) };
    }
    const spill = { events: clone(read.outbox), lastSeq: last };
    this.spills.set(spillKey(deviceId, n), spill);
    item.outbox = [];
    delete item.outboxSeq;
    item.outboxSpills = { from: item.outboxSpills?.from ?? n, to: n + 1 };
    if (!this.billing) return { spilled: true };
    // A transactional write: twice the units of each item written.
    const spillBytes = itemSize({ [KEY]: spillKey(deviceId, n), ...spillItem(spill) });
    const itemBytes = this.itemBytes(deviceId);
    const units = 2 * (writeUnits(spillBytes) + writeUnits(before, itemBytes));
    this.meter?.({ kind: 'spill', deviceId, applied: true, units, itemBytes });
    return { spilled: true, ...(this.reportUnits ? { units } : {}) };
  }

  private commitWrite(request: CommitRequest, room: number | undefined): CommitOutcome {
    const item = this.items.get(request.deviceId);
    const { expect } = request;
    const ok =
      'absent' in expect
        ? item === undefined
        : item !== undefined &&
          item.seq === expect.seq &&
          item.status === expect.status &&
          item.lastSeen <= expect.lastSeenAtMost &&
          (expect.deviceType === undefined || item.deviceType === expect.deviceType) &&
          (expect.policy === undefined || samePolicy(item, expect.policy)) &&
          (expect.notMutedAfter === undefined ||
            item.mutedUntil === undefined ||
            item.mutedUntil <= expect.notMutedAfter) &&
          (expect.skipHorizonAtMost === undefined ||
            item.skipHorizon === undefined ||
            item.skipHorizon <= expect.skipHorizonAtMost);
    const fits = room === undefined || (item?.outbox.length ?? 0) <= room;
    if (!ok || !fits) return { applied: false, current: item && toState(item) };
    // What the DynamoDB commit writes, no more: the skip horizon and the spills stay as stored.
    const {
      skipHorizon: _h,
      outboxSpills: _s,
      ...state
    } = clone(request.state) as CommitRequest['state'] & Pick<DeviceState, 'skipHorizon' | 'outboxSpills'>;
    const next: StoredDevice = {
      ...(item ?? { outbox: [] }),
      ...state,
      deviceId: request.deviceId,
      outbox: [...(item?.outbox ?? []), ...clone(request.append)],
    };
    for (const key of ['shard', 'deadline', 'transitions', 'flapping', 'parentOffline'] as const) {
      if (request.state[key] === undefined) delete next[key];
    }
    // Tags are replaced, never removed, by a commit.
    if (request.state.tags === undefined && item?.tags) next.tags = item.tags;
    delete next.offlineShard;
    delete next.offlineKey;
    if (next.status === STATUS.offline)
      Object.assign(next, offlineIndexKeys(next.deviceId, next.deviceType, next.since));
    if (request.expiresAt !== undefined) next.expiresAt = request.expiresAt;
    if (request.append.length > 0) {
      next.outboxShard = request.outboxShard;
      next.outboxAt = item?.outboxAt ?? request.outboxAt;
      next.outboxSeq = request.append[request.append.length - 1]!.seq;
    }
    this.items.set(request.deviceId, next);
    return { applied: true, after: toState(next) };
  }

  async park(request: ParkRequest): Promise<TouchOutcome> {
    const item = this.items.get(request.deviceId);
    const { expect } = request;
    const ok =
      item !== undefined &&
      unchanged(item, expect) &&
      (expect.mutedUntil === undefined || item.mutedUntil === expect.mutedUntil);
    if (!ok || !item) return { applied: false, current: item && toState(item) };
    const before = toState(item);
    item.deadline = request.deadline;
    return { applied: true, before };
  }

  async update(request: AdminUpdate): Promise<CommitOutcome> {
    const item = this.items.get(request.deviceId);
    const { expect } = request;
    const ok = item !== undefined && unchanged(item, expect);
    if (!ok || !item) return { applied: false, current: item && toState(item) };
    if (request.override === null) delete item.override;
    else if (request.override) item.override = { ...request.override };
    if (request.policy) Object.assign(item, request.policy);
    if (request.mutedUntil === null) delete item.mutedUntil;
    else if (request.mutedUntil !== undefined) item.mutedUntil = request.mutedUntil;
    if (request.deadline !== undefined) item.deadline = request.deadline;
    if (request.skipHorizon !== undefined) item.skipHorizon = request.skipHorizon;
    if (request.expiresAt !== undefined) item.expiresAt = request.expiresAt;
    return { applied: true, after: toState(item) };
  }

  async retire(request: RetireRequest): Promise<CommitOutcome> {
    const item = this.items.get(request.deviceId);
    const { expect } = request;
    const ok =
      item !== undefined &&
      item.seq === expect.seq &&
      item.status === expect.status &&
      item.deviceType === expect.deviceType;
    if (!ok || !item) return { applied: false, current: item && toState(item) };
    item.status = STATUS.retired;
    item.lastSeen = request.lastSeen;
    item.expiresAt = request.expiresAt;
    for (const key of [
      'shard',
      'deadline',
      'offlineShard',
      'offlineKey',
      'override',
      'mutedUntil',
      'transitions',
      'flapping',
      'skipHorizon',
      'parentOffline',
    ] as const) {
      delete item[key];
    }
    return { applied: true, after: toState(item) };
  }

  async register(request: RegisterRequest): Promise<CommitOutcome> {
    const item = this.items.get(request.deviceId);
    const { expect } = request;
    const ok =
      'absent' in expect
        ? item === undefined
        : item !== undefined && item.seq === expect.seq && item.status === expect.status;
    if (!ok) return { applied: false, current: item && toState(item) };
    const next: StoredDevice = {
      ...(item ?? { outbox: [] }),
      deviceId: request.deviceId,
      deviceType: request.deviceType,
      ...request.policy,
      lastSeen: request.lastSeen,
      status: STATUS.registered,
      since: request.since,
      seq: request.seq,
    };
    delete next.expiresAt;
    this.items.set(request.deviceId, next);
    return { applied: true, after: toState(next) };
  }

  async queryOffline(partition: string, limit: number, before?: string, tags?: Tags): Promise<Page<OfflineEntry>> {
    const all = [...this.items.values()]
      .filter((item) => item.offlineShard === partition && (before === undefined || item.offlineKey! < before))
      .filter((item) => Object.entries(tags ?? {}).every(([name, value]) => item.tags?.[name] === value))
      .sort((a, b) => (a.offlineKey! < b.offlineKey! ? 1 : -1));
    const items = all.slice(0, limit).map((item) => ({
      deviceId: item.deviceId,
      deviceType: item.deviceType,
      since: item.since,
      lastSeen: item.lastSeen,
      timeoutMs: item.timeoutMs,
      precisionMs: item.precisionMs,
      ...(item.mutedUntil !== undefined ? { mutedUntil: item.mutedUntil } : {}),
      ...(item.tags ? { tags: item.tags } : {}),
      key: item.offlineKey!,
    }));
    return all.length > limit ? { items, next: items[items.length - 1]!.key } : { items };
  }

  /** Counted from index membership as the DynamoDB adapter counts: online = ONLINE entries of the deadline index
   * (keys present) by their `deviceType`, offline = entries of each type's offline-index partitions. */
  async counts(deviceTypes: string[]): Promise<Record<string, TypeCounts>> {
    const totals = new Map<string, TypeCounts>(deviceTypes.map((type) => [type, { online: 0, offline: 0 }]));
    const offlineType = new Map(deviceTypes.flatMap((type) => offlinePartitions(type).map((p) => [p, type] as const)));
    for (const item of this.items.values()) {
      if (item.shard !== undefined && item.deadline !== undefined && item.status === STATUS.online) {
        const counts = totals.get(item.deviceType);
        if (counts) counts.online++;
      }
      if (item.offlineShard !== undefined && item.offlineKey !== undefined) {
        const type = offlineType.get(item.offlineShard);
        if (type !== undefined) totals.get(type)!.offline++;
      }
    }
    return Object.fromEntries(totals);
  }

  async rearm(deviceId: string, policy: Policy, cutoff: number): Promise<TouchOutcome> {
    this.calls.rearm++;
    const item = this.items.get(deviceId);
    const window = policy.timeoutMs + policy.precisionMs;
    const ok =
      item?.status === 'ONLINE' &&
      item.lastSeen > cutoff - window &&
      samePolicy(item, policy) &&
      item.flapping === undefined;
    if (!ok || !item) return { applied: false, current: item && toState(item) };
    const before = toState(item);
    item.deadline = item.lastSeen + window;
    return { applied: true, before };
  }

  async clearOutbox(deviceId: string, seq: number, spills?: { from: number; to: number }): Promise<boolean> {
    this.calls.clearOutbox++;
    if (spills) return this.clearSpilled(deviceId, seq, spills);
    const item = this.items.get(deviceId);
    const before = this.sizeBefore(deviceId);
    const newest = item && (item.outboxSeq ?? item.seq);
    if (!item || newest !== seq || item.outbox.length === 0 || pendingSpills(item)) {
      this.bill('clearOutbox', deviceId, false, before);
      if (!item || !pendingSpills(item)) return false;
      // Which spills hold nothing after `seq`: read them, as the adapter does.
      const { from, to } = item.outboxSpills!;
      const loaded = this.readSpills(deviceId, from, Math.min(to, from + SPILLS_PER_READ));
      const published = loaded.findIndex((events) => events.some((event) => event.seq > seq));
      const through = published === -1 ? loaded.length : published;
      return through > 0 && this.clearSpilled(deviceId, seq, { from, to: from + through });
    }
    clearPending(item);
    this.bill('clearOutbox', deviceId, true, before);
    return true;
  }

  /** The adapter's `clearSpilled`: deletes the spill items, then unlists them (with the outbox when nothing after
   * `seq` is left). */
  private clearSpilled(deviceId: string, seq: number, spills: { from: number; to: number }): boolean {
    for (let n = spills.from; n < spills.to; n++) {
      const key = spillKey(deviceId, n);
      const spill = this.spills.get(key);
      if (spill && this.meter) {
        const units = writeUnits(itemSize({ [KEY]: key, ...spillItem(spill) }));
        this.meter({ kind: 'deleteSpill', deviceId, applied: true, units, itemBytes: this.itemBytes(deviceId) });
      }
      this.spills.delete(key);
    }
    const item = this.items.get(deviceId);
    const before = this.sizeBefore(deviceId);
    const listed = item?.outboxSpills;
    const everything =
      item !== undefined &&
      listed?.from === spills.from &&
      listed.to === spills.to &&
      (item.outboxSeq === seq || item.outbox.length === 0);
    if (everything) {
      clearPending(item);
      item.outboxSpills = { from: spills.to, to: spills.to };
      this.bill('clearOutbox', deviceId, true, before);
      return true;
    }
    this.bill('clearOutbox', deviceId, false, before);
    if (item && listed?.from === spills.from) {
      item.outboxSpills = { from: spills.to, to: listed.to };
      this.bill('clearOutbox', deviceId, true, before);
    }
    return false;
  }

  private readSpills(deviceId: string, from: number, to: number): DeviceEvent[][] {
    return Array.from({ length: to - from }, (_, i) =>
      clone(this.spills.get(spillKey(deviceId, from + i))?.events ?? []),
    );
  }

  async get(deviceId: string): Promise<DeviceState | undefined> {
    this.calls.get++;
    const item = this.items.get(deviceId);
    if (!item) return undefined;
    const state = toState(item);
    if (pendingSpills(state)) {
      const spills = state.outboxSpills!;
      const loadedTo = Math.min(spills.to, spills.from + SPILLS_PER_READ);
      spills.loaded = this.readSpills(deviceId, spills.from, loadedTo);
      spills.loadedTo = loadedTo;
    }
    return state;
  }

  /** Every event pending for the device, in seq order: its spill items' (all of them), then its outbox's. */
  pendingEvents(deviceId: string): DeviceEvent[] {
    const item = this.items.get(deviceId);
    if (!item) return [];
    const { from, to } = item.outboxSpills ?? { from: 0, to: 0 };
    return [...this.readSpills(deviceId, from, to).flat(), ...clone(item.outbox)];
  }

  async queryExpired(shard: string, cutoff: number, limit: number, cursor?: string): Promise<Page<ExpiredEntry>> {
    this.calls.queryExpired++;
    const all = [...this.items.values()]
      .filter((item) => item.shard === shard && item.deadline !== undefined && item.deadline <= cutoff)
      .sort((a, b) => a.deadline! - b.deadline! || a.deviceId.localeCompare(b.deviceId));
    const entries = all.map((item) => ({
      deviceId: item.deviceId,
      deadline: item.deadline!,
      timeoutMs: item.timeoutMs,
      precisionMs: item.precisionMs,
      flapping: item.flapping !== undefined,
    }));
    return page(entries, (e) => [e.deadline, e.deviceId], limit, cursor);
  }

  async queryOutbox(shard: string, committedBefore: number, limit: number, cursor?: string): Promise<Page<string>> {
    this.calls.queryOutbox++;
    const all = [...this.items.values()]
      .filter((item) => item.outboxShard === shard && item.outboxAt !== undefined && item.outboxAt <= committedBefore)
      .sort((a, b) => a.outboxAt! - b.outboxAt! || a.deviceId.localeCompare(b.deviceId));
    const keyed = new Map(all.map((item) => [item.deviceId, item.outboxAt!]));
    return page(
      all.map((item) => item.deviceId),
      (id) => [keyed.get(id)!, id],
      limit,
      cursor,
    );
  }
}

/** Pages like DynamoDB: the cursor is the key of the last item returned, so items that leave the index between
 * pages do not shift the next page. `all` must be sorted by `key`. */
function page<T>(all: T[], key: (item: T) => [number, string], limit: number, cursor?: string): Page<T> {
  const after = cursor ? (JSON.parse(cursor) as [number, string]) : undefined;
  const rest = after
    ? all.filter((item) => {
        const [n, id] = key(item);
        return n > after[0] || (n === after[0] && id > after[1]);
      })
    : all;
  const items = rest.slice(0, limit);
  return rest.length > limit ? { items, next: JSON.stringify(key(items[items.length - 1]!)) } : { items };
}

function unchanged(item: StoredDevice, expect: { seq: number; status: string; policy: Policy }): boolean {
  return item.seq === expect.seq && item.status === expect.status && samePolicy(item, expect.policy);
}

function samePolicy(item: Policy, policy: Policy | undefined): boolean {
  return policy !== undefined && item.timeoutMs === policy.timeoutMs && item.precisionMs === policy.precisionMs;
}

/** The type policy a touch assumes for this item: the given one, or the one given for its stored type. */
function assumedPolicy(item: StoredDevice, request: TouchRequest): Policy | undefined {
  if (!request.typePolicies) return request.typePolicy;
  return Object.hasOwn(request.typePolicies, item.deviceType) ? request.typePolicies[item.deviceType] : undefined;
}

/** Drops the outbox and its index keys (the clear's REMOVE). */
function clearPending(item: StoredDevice): void {
  item.outbox = [];
  delete item.outboxShard;
  delete item.outboxAt;
  delete item.outboxSeq;
}

function spillItem(spill: { events: DeviceEvent[]; lastSeq: number }): Record<string, unknown> {
  return { [SPILL.events]: spill.events.map((event) => JSON.stringify(event)), [SPILL.lastSeq]: spill.lastSeq };
}

function toState(item: StoredDevice): DeviceState {
  const {
    expiresAt: _e,
    outboxShard: _s,
    outboxAt: _a,
    outboxSeq: _q,
    offlineShard: _os,
    offlineKey: _ok,
    ...state
  } = clone(item);
  return state;
}
