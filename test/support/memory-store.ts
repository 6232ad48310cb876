// An in-memory model of the device table with the same conditional semantics as DynamoDeviceStore. Property tests
// run the protocol against it at a speed no engine allows; the integration tests hold the adapter to the same
// behaviour on DynamoDB Local.
import type { DeviceState } from '../../lambdas/core/device.js';
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
  RetireRequest,
  TouchOutcome,
  TouchRequest,
  TypeCounts,
} from '../../lambdas/core/ports.js';
import { offlineIndexKeys, offlinePartitions, STATUS } from '../../lambdas/core/table-schema.js';

export interface StoredDevice extends DeviceState {
  expiresAt?: number;
  outboxShard?: string;
  outboxAt?: number;
  outboxSeq?: number;
  offlineShard?: string;
  offlineKey?: string;
}

const clone = <T>(value: T): T => structuredClone(value);

export class MemoryDeviceStore implements DeviceStore, AdminStore {
  readonly items = new Map<string, StoredDevice>();
  /** Count of requests by kind, for cost accounting in tests and benchmarks. */
  readonly calls = { touch: 0, commit: 0, rearm: 0, clearOutbox: 0, get: 0, queryExpired: 0, queryOutbox: 0 };

  async touch(request: TouchRequest): Promise<TouchOutcome> {
    this.calls.touch++;
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
    return { applied: true, before };
  }

  async commit(request: CommitRequest): Promise<CommitOutcome> {
    this.calls.commit++;
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
    if (!ok) return { applied: false, current: item && toState(item) };
    // What the DynamoDB commit writes, no more: the skip horizon stays as stored.
    const { skipHorizon: _h, ...state } = clone(request.state) as CommitRequest['state'] & { skipHorizon?: number };
    const next: StoredDevice = {
      ...(item ?? { outbox: [] }),
      ...state,
      deviceId: request.deviceId,
      outbox: [...(item?.outbox ?? []), ...clone(request.append)],
    };
    for (const key of ['shard', 'deadline', 'transitions', 'flapping'] as const) {
      if (request.state[key] === undefined) delete next[key];
    }
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
    ] as const) {
      delete item[key];
    }
    return { applied: true, after: toState(item) };
  }

  async queryOffline(partition: string, limit: number, before?: string): Promise<Page<OfflineEntry>> {
    const all = [...this.items.values()]
      .filter((item) => item.offlineShard === partition && (before === undefined || item.offlineKey! < before))
      .sort((a, b) => (a.offlineKey! < b.offlineKey! ? 1 : -1));
    const items = all.slice(0, limit).map((item) => ({
      deviceId: item.deviceId,
      deviceType: item.deviceType,
      since: item.since,
      lastSeen: item.lastSeen,
      timeoutMs: item.timeoutMs,
      precisionMs: item.precisionMs,
      ...(item.mutedUntil !== undefined ? { mutedUntil: item.mutedUntil } : {}),
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

  async clearOutbox(deviceId: string, seq: number): Promise<boolean> {
    this.calls.clearOutbox++;
    const item = this.items.get(deviceId);
    const newest = item && (item.outboxSeq ?? item.seq);
    if (!item || newest !== seq || item.outbox.length === 0) return false;
    item.outbox = [];
    delete item.outboxShard;
    delete item.outboxAt;
    delete item.outboxSeq;
    return true;
  }

  async get(deviceId: string): Promise<DeviceState | undefined> {
    this.calls.get++;
    const item = this.items.get(deviceId);
    return item && toState(item);
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
