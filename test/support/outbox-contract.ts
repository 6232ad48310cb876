// The bounded outbox's contract, run against the memory model (unit tests) and the DynamoDB adapter (integration
// tests): commits beyond OUTBOX_ITEM_MAX spill the outbox atomically, a failed condition still returns the stored
// item, the relay publishes spills then the outbox in seq order and clears them, and no crash loses an event.
import { expect, it } from 'vitest';
import { type DeviceEvent, type DeviceState, transitionEvent } from '../../lambdas/core/device.js';
import { hasPendingEvents, OUTBOX_ITEM_MAX, relayOutboxes } from '../../lambdas/core/outbox.js';
import type { CommitRequest, DeviceStore, EventPublisher } from '../../lambdas/core/ports.js';
import { STATUS } from '../../lambdas/core/table-schema.js';

export interface OutboxContractSetup {
  store(): DeviceStore;
  /** Whether spill item `n` holds events (a cleared one is emptied, or gone). */
  spillExists(deviceId: string, n: number): Promise<boolean>;
  /** Removes a spill item behind the store's back (a relay that crashed after clearing it, before unlisting). */
  deleteSpill(deviceId: string, n: number): Promise<void>;
  itemBytes(deviceId: string): Promise<number>;
  /** Every event pending for the device as stored: all its listed spill items' (in order), then its outbox's. */
  pending(deviceId: string): Promise<DeviceEvent[]>;
  /** Unique device ids for a shared table. */
  id(name: string): string;
}

const POLICY = { timeoutMs: 90_000, precisionMs: 0 };
const T = 1_700_000_000_000;

export function registerRequest(deviceId: string, t = T): CommitRequest {
  const state = {
    deviceType: 'tracker',
    ...POLICY,
    lastSeen: t,
    status: STATUS.online,
    since: t,
    seq: 1,
    shard: '0',
    deadline: t + POLICY.timeoutMs,
  };
  return {
    deviceId,
    expect: { absent: true },
    state,
    append: [transitionEvent('device.online', { deviceId, ...state }, t)],
    outboxShard: '0',
    outboxAt: t,
  };
}

/** The device's next transition (online ↔ offline) from `current`, with the outbox as read unless `read` is false
 * (the sweep's commits, which do not say). */
export function flipRequest(current: DeviceState, options: { read?: boolean } = {}): CommitRequest {
  const t = Math.max(current.since, current.lastSeen) + POLICY.timeoutMs + 1_000;
  const online = current.status === STATUS.offline;
  const state = {
    deviceType: current.deviceType,
    ...POLICY,
    lastSeen: online ? t : current.lastSeen,
    status: online ? STATUS.online : STATUS.offline,
    since: online ? t : current.lastSeen + POLICY.timeoutMs,
    seq: current.seq + 1,
    ...(online ? { shard: '0', deadline: t + POLICY.timeoutMs } : {}),
  };
  return {
    deviceId: current.deviceId,
    expect: { seq: current.seq, status: current.status, lastSeenAtMost: online ? t - 1 : current.lastSeen },
    state,
    append: [transitionEvent(online ? 'device.online' : 'device.offline', { deviceId: current.deviceId, ...state }, t)],
    outboxShard: '0',
    outboxAt: t,
    ...(options.read === false ? {} : { read: { outbox: current.outbox, outboxSpills: current.outboxSpills } }),
  };
}

/** Registers the device and commits `transitions` more, publishing nothing; returns the last state and every event. */
export async function commitMany(
  store: DeviceStore,
  deviceId: string,
  transitions: number,
  options: { read?: boolean; onCommit?: (after: DeviceState) => Promise<void> | void } = {},
) {
  const events: DeviceEvent[] = [];
  const first = await store.commit(registerRequest(deviceId));
  if (!first.applied) throw new Error(`${deviceId} exists`);
  events.push(...first.after.outbox);
  let current = first.after;
  for (let i = 0; i < transitions; i++) {
    const request = flipRequest(current, options);
    const out = await store.commit(request);
    if (!out.applied) throw new Error(`${deviceId}: transition ${i} refused`);
    events.push(...request.append);
    current = out.after;
    await options.onCommit?.(current);
  }
  return { current, events };
}

export class Log implements EventPublisher {
  readonly events: DeviceEvent[] = [];
  /** Fails every event from the `failFrom`-th accepted one on (1-based), when set. */
  failFrom?: number;
  async publish(events: DeviceEvent[]) {
    const failed: DeviceEvent[] = [];
    for (const event of events) {
      if (this.failFrom !== undefined && this.events.length + 1 >= this.failFrom) failed.push(event);
      else this.events.push(structuredClone(event));
    }
    return { failed };
  }
  seqs(deviceId: string): number[] {
    return this.events.filter((e) => e.deviceId === deviceId).map((e) => e.seq);
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

export function outboxContract(setup: OutboxContractSetup) {
  it('a commit beyond OUTBOX_ITEM_MAX moves the events already in the item to a spill item first', async () => {
    const store = setup.store();
    const id = setup.id('spill');
    const sizes: number[] = [];
    const { current, events } = await commitMany(store, id, 2 * OUTBOX_ITEM_MAX + 1, {
      onCommit: async (after) => {
        expect(after.outbox.length).toBeLessThanOrEqual(OUTBOX_ITEM_MAX);
        sizes.push(after.outbox.length);
      },
    });
    // Seqs 1..4 in the item; 5 spills them (spill 0) and stays; 6..8 join it; 9 spills 5..8 (spill 1).
    expect(sizes).toEqual([2, 3, 4, 1, 2, 3, 4, 1, 2]);
    expect(current.outbox.map((e) => e.seq)).toEqual([9, 10]);
    expect(current.outboxSpills).toEqual({ from: 0, to: 2 });
    expect(await setup.spillExists(id, 0)).toBe(true);
    expect(await setup.spillExists(id, 1)).toBe(true);
    const read = await store.get(id);
    expect(read?.outboxSpills?.loaded?.map((spill) => spill.map((e) => e.seq))).toEqual([range(1, 4), range(5, 8)]);
    expect(read?.outboxSpills?.loadedTo).toBe(2);
    expect(await setup.pending(id)).toEqual(events);
    // Still in the outbox index, for the re-publish.
    expect((await store.queryOutbox('0', Number.MAX_SAFE_INTEGER, 1000)).items).toContain(id);
  });

  it('a commit that does not say what it read (the sweep) finds the outbox full, spills it and writes again', async () => {
    const store = setup.store();
    const id = setup.id('unread');
    const { current, events } = await commitMany(store, id, OUTBOX_ITEM_MAX + 2, { read: false });
    expect(current.outbox.map((e) => e.seq)).toEqual([5, 6, 7]);
    expect(current.outboxSpills).toEqual({ from: 0, to: 1 });
    expect(await setup.pending(id)).toEqual(events);
  });

  it('a commit whose own condition fails returns the stored item, spilled or not, and loses nothing', async () => {
    const store = setup.store();
    const id = setup.id('refused');
    const { current, events } = await commitMany(store, id, OUTBOX_ITEM_MAX - 1);
    expect(current.outbox).toHaveLength(OUTBOX_ITEM_MAX);
    // Decided from an item that has moved on (another seq): refused, with the item as it is now.
    const stale = flipRequest({ ...current, seq: current.seq - 1 });
    const out = await store.commit(stale);
    expect(out.applied).toBe(false);
    if (out.applied) return;
    expect(out.current).toMatchObject({ deviceId: id, seq: current.seq, status: current.status });
    expect(out.current?.outbox.length ?? 0).toBeLessThanOrEqual(OUTBOX_ITEM_MAX);
    expect(await setup.pending(id)).toEqual(events);
    // The caller decides again from what the failure returned, and commits.
    const again = await store.commit(flipRequest(out.current!));
    expect(again.applied).toBe(true);
    expect(await setup.pending(id)).toEqual([...events, ...flipRequest(out.current!).append]);
  });

  it('a commit that read a full outbox a relay has cleared since writes without spilling', async () => {
    const store = setup.store();
    const id = setup.id('cleared');
    const { current } = await commitMany(store, id, OUTBOX_ITEM_MAX - 1);
    expect(await store.clearOutbox(id, current.seq)).toBe(true);
    const out = await store.commit(flipRequest(current));
    expect(out.applied).toBe(true);
    if (!out.applied) return;
    expect(out.after.outbox.map((e) => e.seq)).toEqual([current.seq + 1]);
    expect(out.after.outboxSpills).toBeUndefined();
    expect(await setup.spillExists(id, 0)).toBe(false);
  });

  it('the relay publishes the spills, oldest first, then the outbox, in seq order, and clears them all', async () => {
    const store = setup.store();
    const id = setup.id('relay');
    const { events } = await commitMany(store, id, 3 * OUTBOX_ITEM_MAX + 1);
    const log = new Log();
    const result = await relayOutboxes([(await store.get(id))!], store, log);
    expect(log.seqs(id)).toEqual(events.map((e) => e.seq));
    expect(log.events).toEqual(events);
    expect(result).toMatchObject({ published: events.length, failed: 0, uncleared: 0 });
    const after = (await store.get(id))!;
    expect(hasPendingEvents(after)).toBe(false);
    expect(after.outboxSpills).toEqual({ from: 3, to: 3 });
    for (const n of [0, 1, 2]) expect(await setup.spillExists(id, n)).toBe(false);
    expect((await store.queryOutbox('0', Number.MAX_SAFE_INTEGER, 1000)).items).not.toContain(id);
  });

  it('a committer finding spills pending leaves its events to the re-publish, which publishes them after the spills', async () => {
    const store = setup.store();
    const id = setup.id('defer');
    const { current, events } = await commitMany(store, id, OUTBOX_ITEM_MAX + 1);
    const log = new Log();
    const handover = { now: T + 10 * 3_600_000, liveForMs: 15_000 };
    const committer = await relayOutboxes([current], store, log, { handover });
    expect(committer).toMatchObject({ published: 0, deferred: 1 });
    await relayOutboxes([(await store.get(id))!], store, log);
    expect(log.events).toEqual(events);
  });

  it('a crash between publishing and clearing publishes again later, nothing lost', async () => {
    const store = setup.store();
    const id = setup.id('crash');
    const { events } = await commitMany(store, id, 2 * OUTBOX_ITEM_MAX + 2);
    const log = new Log();
    const crashing = Object.assign(Object.create(store) as DeviceStore, {
      clearOutbox: async () => {
        throw new Error('crash before the clear');
      },
    });
    const first = await relayOutboxes([(await store.get(id))!], crashing, log);
    expect(first).toMatchObject({ published: events.length, uncleared: 1 });
    expect(await setup.pending(id)).toEqual(events);
    await relayOutboxes([(await store.get(id))!], store, log);
    expect(log.events).toEqual([...events, ...events]);
    expect(hasPendingEvents((await store.get(id))!)).toBe(false);
  });

  it('a spill deleted but still listed (a crash between the delete and the unlisting) was published: skipped', async () => {
    const store = setup.store();
    const id = setup.id('gone');
    const { events } = await commitMany(store, id, 2 * OUTBOX_ITEM_MAX + 2);
    await setup.deleteSpill(id, 0);
    const read = (await store.get(id))!;
    expect(read.outboxSpills).toMatchObject({ from: 0, to: 2, loaded: [[], range(5, 8).map(() => expect.anything())] });
    const log = new Log();
    await relayOutboxes([read], store, log);
    expect(log.seqs(id)).toEqual(range(5, events.length));
    expect(hasPendingEvents((await store.get(id))!)).toBe(false);
  });

  it('a clear that does not name the spills (a wrapper that drops it) finds the published ones by reading them', async () => {
    const store = setup.store();
    const id = setup.id('unnamed');
    const { events } = await commitMany(store, id, 2 * OUTBOX_ITEM_MAX + 2);
    const narrow = Object.assign(Object.create(store) as DeviceStore, {
      clearOutbox: (deviceId: string, seq: number) => store.clearOutbox(deviceId, seq),
    });
    const log = new Log();
    await relayOutboxes([(await store.get(id))!], narrow, log);
    expect(log.events).toEqual(events);
    const after = (await store.get(id))!;
    expect(hasPendingEvents(after)).toBe(false);
    expect(await setup.spillExists(id, 0)).toBe(false);
  });

  it('publishing that fails half way clears the spills it got through and resumes in order', async () => {
    const store = setup.store();
    const id = setup.id('halfway');
    const { events } = await commitMany(store, id, 3 * OUTBOX_ITEM_MAX + 1);
    const log = new Log();
    log.failFrom = OUTBOX_ITEM_MAX + 3; // spill 0 and two events of spill 1 go out
    const first = await relayOutboxes([(await store.get(id))!], store, log);
    expect(first).toMatchObject({ published: OUTBOX_ITEM_MAX + 2, failed: 1 });
    const left = (await store.get(id))!;
    expect(left.outboxSpills).toMatchObject({ from: 1, to: 3 });
    expect(await setup.spillExists(id, 0)).toBe(false);
    log.failFrom = undefined;
    await relayOutboxes([left], store, log);
    // Spill 1 again from its start (its first two events twice), then the rest, in order; nothing missing.
    expect(log.seqs(id)).toEqual([...range(1, OUTBOX_ITEM_MAX + 2), ...range(OUTBOX_ITEM_MAX + 1, events.length)]);
    expect(hasPendingEvents((await store.get(id))!)).toBe(false);
  });

  it('a publisher that read the full outbox before a committer spilled it publishes only the newer event after', async () => {
    const store = setup.store();
    const id = setup.id('race');
    const { current, events } = await commitMany(store, id, OUTBOX_ITEM_MAX - 1);
    // The live publisher holds the full outbox it read; meanwhile a committer spills it and appends.
    const log = new Log();
    const next = flipRequest(current);
    const committed = await store.commit(next);
    expect(committed.applied).toBe(true);
    await relayOutboxes([current], store, log);
    expect(log.events).toEqual([...events, ...next.append]);
    expect(hasPendingEvents((await store.get(id))!)).toBe(false);
    expect(await setup.spillExists(id, 0)).toBe(false);
  });

  it('the item stays under its bound however many transitions wait', async () => {
    const store = setup.store();
    const id = setup.id('bound');
    let max = 0;
    const { events } = await commitMany(store, id, 60, {
      onCommit: async () => {
        max = Math.max(max, await setup.itemBytes(id));
      },
    });
    expect(max).toBeLessThan(1_600);
    expect(await setup.pending(id)).toEqual(events);
  });
}
