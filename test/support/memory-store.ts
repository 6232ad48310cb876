// An in-memory model of the device table with the same conditional semantics as DynamoDeviceStore. Property tests
// run the protocol against it at a speed no engine allows; the integration tests hold the adapter to the same
// behaviour on DynamoDB Local.
import type { DeviceState } from '../../lambdas/core/device.js';
import type { Policy } from '../../lambdas/core/policy.js';
import type {
  CommitOutcome,
  CommitRequest,
  DeviceStore,
  ExpiredEntry,
  Page,
  TouchOutcome,
  TouchRequest,
} from '../../lambdas/core/ports.js';

export interface StoredDevice extends DeviceState {
  expiresAt?: number;
  outboxShard?: string;
  outboxAt?: number;
}

const clone = <T>(value: T): T => structuredClone(value);

export class MemoryDeviceStore implements DeviceStore {
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
      (item.override !== undefined || samePolicy(item, request.typePolicy)) &&
      (request.deviceType === undefined || item.deviceType === request.deviceType) &&
      (request.moveDeadline === undefined || samePolicy(item, request.moveDeadline.policy));
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
          item.lastSeen <= expect.lastSeenAtMost;
    if (!ok) return { applied: false, current: item && toState(item) };
    const next: StoredDevice = {
      ...(item ?? { outbox: [] }),
      ...clone(request.state),
      deviceId: request.deviceId,
      outbox: [...(item?.outbox ?? []), ...clone(request.append)],
    };
    if (request.state.shard === undefined) delete next.shard;
    if (request.state.deadline === undefined) delete next.deadline;
    if (request.expiresAt !== undefined) next.expiresAt = request.expiresAt;
    if (request.append.length > 0) {
      next.outboxShard = request.outboxShard;
      next.outboxAt = item?.outboxAt ?? request.outboxAt;
    }
    this.items.set(request.deviceId, next);
    return { applied: true, after: toState(next) };
  }

  async rearm(deviceId: string, policy: Policy, cutoff: number): Promise<TouchOutcome> {
    this.calls.rearm++;
    const item = this.items.get(deviceId);
    const window = policy.timeoutMs + policy.precisionMs;
    const ok = item?.status === 'ONLINE' && item.lastSeen > cutoff - window && samePolicy(item, policy);
    if (!ok || !item) return { applied: false, current: item && toState(item) };
    const before = toState(item);
    item.deadline = item.lastSeen + window;
    return { applied: true, before };
  }

  async clearOutbox(deviceId: string, seq: number): Promise<void> {
    this.calls.clearOutbox++;
    const item = this.items.get(deviceId);
    if (item && item.seq === seq && item.outbox.length > 0) {
      item.outbox = [];
      delete item.outboxShard;
      delete item.outboxAt;
    }
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

function samePolicy(item: Policy, policy: Policy): boolean {
  return item.timeoutMs === policy.timeoutMs && item.precisionMs === policy.precisionMs;
}

function toState(item: StoredDevice): DeviceState {
  const { expiresAt: _e, outboxShard: _s, outboxAt: _a, ...state } = clone(item);
  return state;
}
