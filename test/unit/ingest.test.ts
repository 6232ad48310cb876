import { describe, expect, it } from 'vitest';
import { DeviceCache } from '../../lambdas/core/device-cache.js';
import { ingestBatch } from '../../lambdas/core/ingest.js';
import type { DeviceStore } from '../../lambdas/core/ports.js';
import { probeBody } from '../../lambdas/core/probe.js';
import { memoryDeps, record, testConfig } from '../support/ingest-fixtures.js';

const MIN = 60_000;
const unordered = { ordered: false };

describe('ingestBatch', () => {
  it('registers a new device online, publishes its event, then clears the outbox', async () => {
    const { deps, store, publisher } = memoryDeps();
    const result = await ingestBatch([record({ deviceId: 'd1' }, 1_000)], deps, unordered);
    expect(result.failedRecordIds.size).toBe(0);
    expect(publisher.events).toEqual([
      expect.objectContaining({ eventId: 'd1#1', type: 'device.online', deviceType: 'tracker', since: 1_000, seq: 1 }),
    ]);
    expect(store.items.get('d1')).toMatchObject({ status: 'ONLINE', lastSeen: 1_000, deadline: 91_000, outbox: [] });
    expect(result.stats).toMatchObject({ newDevices: 1, onlineTransitions: 1, published: 1 });
  });

  it('can register new devices silently', async () => {
    const { deps, store, publisher } = memoryDeps({}, testConfig({ announceNewDevices: false }));
    await ingestBatch([record({ deviceId: 'd1' }, 1_000)], deps, unordered);
    expect(publisher.events).toEqual([]);
    expect(store.items.get('d1')).toMatchObject({ status: 'ONLINE', seq: 0 });
  });

  it('records later messages with one conditional write and no event', async () => {
    const { deps, store, publisher } = memoryDeps();
    await ingestBatch([record({ deviceId: 'd1' }, 1_000)], deps, unordered);
    const result = await ingestBatch([record({ deviceId: 'd1' }, 31_000)], deps, unordered);
    expect(result.stats).toMatchObject({ written: 1, onlineTransitions: 0 });
    expect(store.calls).toMatchObject({ touch: 2, commit: 1, get: 0 });
    expect(store.items.get('d1')?.lastSeen).toBe(31_000);
    expect(publisher.events).toHaveLength(1);
  });

  it('coalesces a batch to one update per device with the newest time, and skips stale messages', async () => {
    const { deps, store } = memoryDeps();
    await ingestBatch([record({ deviceId: 'd1' }, 50_000)], deps, unordered);
    const batch = [30_000, 70_000, 60_000, 70_000].map((t) => record({ deviceId: 'd1' }, t));
    const result = await ingestBatch(batch, deps, unordered);
    expect(result.stats).toMatchObject({ messages: 4, updates: 1, written: 1 });
    expect(store.items.get('d1')?.lastSeen).toBe(70_000);
    const stale = await ingestBatch([record({ deviceId: 'd1' }, 65_000)], deps, unordered);
    expect(stale.stats.stale).toBe(1);
    expect(stale.failedRecordIds.size).toBe(0);
    expect(store.items.get('d1')?.lastSeen).toBe(70_000);
  });

  it('brings an offline device back online with the next seq', async () => {
    const { deps, store, publisher } = memoryDeps();
    await ingestBatch([record({ deviceId: 'd1' }, 1_000)], deps, unordered);
    const item = store.items.get('d1')!;
    Object.assign(item, { status: 'OFFLINE', since: 91_000, seq: 2, shard: undefined, deadline: undefined });
    await ingestBatch([record({ deviceId: 'd1' }, 200_000)], deps, unordered);
    expect(publisher.events.map((e) => [e.eventId, e.type, e.since])).toEqual([
      ['d1#1', 'device.online', 1_000],
      ['d1#3', 'device.online', 200_000],
    ]);
    expect(store.items.get('d1')).toMatchObject({ status: 'ONLINE', seq: 3, since: 200_000, deadline: 290_000 });
  });

  it('skips writes within the precision of a device type, never pushing detection earlier', async () => {
    const { deps, store } = memoryDeps();
    const send = (t: number) => ingestBatch([record({ deviceId: 'm1', deviceType: 'meter' }, t)], deps, unordered);
    await send(0);
    const skipped = await send(50_000);
    expect(skipped.stats.coalesced).toBe(1);
    expect(store.items.get('m1')?.lastSeen).toBe(0);
    // Stored state keeps the device online until 0 + 300 s + 60 s, past the skipped message's 50 s + 300 s.
    await send(70_000);
    expect(store.items.get('m1')?.lastSeen).toBe(70_000);
  });

  it('moves the deadline only when it would expire before the next expected message', async () => {
    const { deps, store } = memoryDeps();
    const deadlines: number[] = [];
    for (let t = 0; t <= 20 * MIN; t += MIN) {
      await ingestBatch([record({ deviceId: 'p1', deviceType: 'meter' }, t)], deps, unordered);
      deadlines.push(store.items.get('p1')!.deadline!);
    }
    const moves = deadlines.filter((d, i) => i > 0 && d !== deadlines[i - 1]).length;
    expect(moves).toBeLessThanOrEqual(5);
    for (const [i, d] of deadlines.entries()) {
      const lastSeen = Math.floor(i / 2) * 2 * MIN; // precision 60 s: every other message is skipped
      expect(d).toBeLessThanOrEqual(lastSeen + 360_000);
      expect(d).toBeGreaterThan(i * MIN);
    }
  });

  it('applies a changed device type from the message and a per-device override from the item', async () => {
    const { deps, store } = memoryDeps();
    await ingestBatch([record({ deviceId: 'd1' }, 0)], deps, unordered);
    await ingestBatch([record({ deviceId: 'd1', deviceType: 'meter' }, MIN)], deps, unordered);
    expect(store.items.get('d1')).toMatchObject({ deviceType: 'meter', timeoutMs: 300_000, deadline: MIN + 360_000 });
    store.items.get('d1')!.override = { timeoutMs: 30_000, precisionMs: 0 };
    store.items.get('d1')!.status = 'OFFLINE';
    await ingestBatch([record({ deviceId: 'd1' }, 3 * MIN)], deps, unordered);
    expect(store.items.get('d1')).toMatchObject({ timeoutMs: 30_000, precisionMs: 0, deadline: 3 * MIN + 30_000 });
    // With the override in place, later messages take the happy path.
    const result = await ingestBatch([record({ deviceId: 'd1' }, 3 * MIN + 10_000)], deps, unordered);
    expect(result.stats.written).toBe(1);
  });

  it('a message without deviceType for a device of another type than the default costs one write on a cold cache', async () => {
    const { deps, store } = memoryDeps();
    await ingestBatch([record({ deviceId: 'm1', deviceType: 'meter' }, 0)], deps, unordered);
    const deadline = store.items.get('m1')!.deadline;
    // Every message on another container (SQS spreads a device's messages), none naming the type.
    for (const t of [MIN, 2 * MIN]) {
      const before = { ...store.calls };
      const cold = { ...deps, cache: new DeviceCache(deps.config.cacheSize) };
      const result = await ingestBatch([record({ deviceId: 'm1' }, t)], cold, unordered);
      expect(result.stats).toMatchObject({ written: 1, deadlineMoves: 0, onlineTransitions: 0 });
      expect({ touch: store.calls.touch - before.touch, commit: store.calls.commit - before.commit }).toEqual({
        touch: 1,
        commit: 0,
      });
      expect(store.items.get('m1')).toMatchObject({ deviceType: 'meter', lastSeen: t, deadline });
    }
  });

  it('rewrites the policy when the device type configuration changed', async () => {
    const first = memoryDeps();
    await ingestBatch([record({ deviceId: 'd1' }, 0)], first.deps, unordered);
    const changed = testConfig();
    changed.deviceTypes = {
      ...changed.deviceTypes,
      types: { ...changed.deviceTypes.types, tracker: { timeoutMs: 120_000, precisionMs: 0 } },
    };
    const deps = { ...first.deps, config: changed };
    await ingestBatch([record({ deviceId: 'd1' }, MIN)], deps, unordered);
    expect(first.store.items.get('d1')).toMatchObject({ timeoutMs: 120_000, deadline: MIN + 120_000 });
  });

  it('rejects bad records with their reason and commits the rest', async () => {
    const { deps, store, rejects } = memoryDeps();
    const batch = [record('garbage', 1), record({ deviceId: 'ok' }, 1), record({ nope: 1 }, 1)];
    const result = await ingestBatch(batch, deps, unordered);
    expect(result.failedRecordIds.size).toBe(0);
    expect(rejects.rejected.map((r) => [r.recordId, r.reason])).toEqual([
      [batch[0]!.id, 'NOT_JSON'],
      [batch[2]!.id, 'MISSING_DEVICE_ID'],
    ]);
    expect(store.items.has('ok')).toBe(true);
  });

  it('fails a record whose rejection could not be delivered, from SQS', async () => {
    const { deps } = memoryDeps({ rejects: { send: async (r) => ({ failed: r }) } });
    const batch = [record('garbage', 1), record({ deviceId: 'ok' }, 1)];
    const result = await ingestBatch(batch, deps, unordered);
    expect([...result.failedRecordIds]).toEqual([batch[0]!.id]);
    expect(result.undeliveredRejections).toBeUndefined();
  });

  it('never stops a Kinesis shard for a rejection it could not deliver: it hands it to the handler to log', async () => {
    const { deps } = memoryDeps({ rejects: { send: async (r) => ({ failed: r }) } });
    const batch = [record('garbage', 1), record({ deviceId: 'ok' }, 2)];
    const result = await ingestBatch(batch, deps, { ordered: true });
    expect([...result.failedRecordIds]).toEqual([]);
    expect(result.undeliveredRejections?.map((r) => [r.recordId, r.reason])).toEqual([[batch[0]!.id, 'NOT_JSON']]);
  });

  it('fails exactly the records of a device whose write fails', async () => {
    const { deps, store } = memoryDeps();
    const failing: DeviceStore = Object.create(store);
    failing.touch = async (request) => {
      if (request.deviceId === 'bad') throw new Error('ProvisionedThroughputExceededException');
      return store.touch(request);
    };
    failing.commit = async (request) => {
      if (request.deviceId === 'bad') throw new Error('ProvisionedThroughputExceededException');
      return store.commit(request);
    };
    const batch = [record({ deviceId: 'good' }, 1), record({ deviceId: 'bad' }, 1), record({ deviceId: 'bad' }, 2)];
    const result = await ingestBatch(batch, { ...deps, store: failing }, unordered);
    expect([...result.failedRecordIds].sort()).toEqual([batch[1]!.id, batch[2]!.id].sort());
    expect(result.stats.failedWrites).toBe(1);
    expect(store.items.has('good')).toBe(true);
  });

  it('keeps the outbox when publishing fails, so the sweep re-publishes it', async () => {
    const { deps, store, publisher } = memoryDeps();
    publisher.failNext = 1;
    const result = await ingestBatch([record({ deviceId: 'd1' }, 1)], deps, unordered);
    expect(result.failedRecordIds.size).toBe(0);
    expect(result.stats.publishFailures).toBe(1);
    expect(store.items.get('d1')?.outbox.map((e) => e.eventId)).toEqual(['d1#1']);
  });

  it('credits a probe only when what came before it committed', async () => {
    const { deps, store } = memoryDeps();
    const failing: DeviceStore = Object.create(store);
    failing.touch = async (request) => {
      if (request.deviceId === 'bad') throw new Error('boom');
      return store.touch(request);
    };
    failing.commit = failing.touch as never;
    const key = new Uint8Array(32).fill(3);
    const probe = (t: number) => record(probeBody(key, t, 'shard-1', 'shard-1'), t, 'shard-1');
    deps.probeKey = { get: async () => key };
    const batch = [probe(10), record({ deviceId: 'bad' }, 11), probe(20)];
    const ordered = await ingestBatch(batch, { ...deps, store: failing }, { ordered: true });
    expect(ordered.probes.map((p) => [p.probeAt, p.partition])).toEqual([[10, 'shard-1']]);
    const unorderedResult = await ingestBatch(batch, { ...deps, store: failing }, unordered);
    expect(unorderedResult.probes).toEqual([]);
    const clean = await ingestBatch([probe(30), record({ deviceId: 'x' }, 31)], deps, unordered);
    expect(clean.probes.map((p) => p.probeAt)).toEqual([30]);
  });
});
