// The sweep core against the in-memory table: what it commits, re-arms, publishes and hands to continuations.
import { describe, expect, it } from 'vitest';
import type { ExpiredEntry, Page } from '../../lambdas/core/ports.js';
import { shardOf } from '../../lambdas/core/shard.js';
import { InvalidSweepJob, parseSweepJob, sweepShard } from '../../lambdas/core/sweep.js';
import { MemoryDeviceStore } from '../../sim/memory/device-store.js';
import { harness, T0, TYPES, total } from '../support/sweep-harness.js';

const TRACKER = TYPES.tracker.timeoutMs;

describe('sweepShard', () => {
  it('reports a silent device offline once, at the deadline that expired, with the stored lastSeen', async () => {
    const h = harness();
    await h.send(['dev-1'], T0, 'tracker');
    h.clock.t = T0 + TRACKER - 1;
    expect(total(await h.sweepAll(), 'offline')).toBe(0);

    h.clock.t = T0 + TRACKER + 5_000;
    const stats = await h.sweepAll();
    expect(total(stats, 'offline')).toBe(1);
    const offline = h.events.of('dev-1', 'device.offline');
    expect(offline).toEqual([
      {
        eventId: 'dev-1#2',
        type: 'device.offline',
        deviceId: 'dev-1',
        deviceType: 'tracker',
        seq: 2,
        since: T0 + TRACKER,
        lastSeen: T0,
        timeoutMs: TRACKER,
        detectedAt: T0 + TRACKER + 5_000,
      },
    ]);
    const swept = stats.find((s) => s.offline === 1)!;
    expect(swept).toMatchObject({ cutoff: T0 + TRACKER + 5_000, lagMs: 0, latenessMs: [5_000], published: 1 });
    // Out of the deadline index, outbox cleared: a later sweep finds nothing and publishes nothing.
    const item = h.store.items.get('dev-1')!;
    expect(item).toMatchObject({ status: 'OFFLINE', outbox: [] });
    expect(item.shard).toBeUndefined();
    h.clock.t += 60_000;
    expect(total(await h.sweepAll(), 'scanned')).toBe(0);
    expect(h.events.of('dev-1', 'device.offline')).toHaveLength(1);
  });

  it('reads before writing once a job finds mostly expired devices (a storm), with the same outcome', async () => {
    const h = harness({ shardCount: 1, settings: { pageSize: 20 } });
    const ids = Array.from({ length: 100 }, (_, i) => `storm-${i}`);
    await h.send(ids, T0, 'tracker');
    await h.send(['alive'], T0, 'tracker');
    h.freshCache();
    await h.send(['alive'], T0 + TRACKER, 'tracker');
    const before = { ...h.store.calls };
    h.clock.t = T0 + TRACKER + 5_000;
    const stats = await h.sweepAll();
    expect(total(stats, 'offline')).toBe(100);
    expect(total(stats, 'rearmed')).toBe(1);
    expect(h.store.items.get('alive')).toMatchObject({ status: 'ONLINE' });
    for (const id of ids) expect(h.events.of(id, 'device.offline')).toHaveLength(1);
    // The first page re-arms first (20 failed re-arms); the other 81 entries are read first.
    expect(h.store.calls.rearm - before.rearm).toBeLessThanOrEqual(21 + 1);
    expect(h.store.calls.get - before.get).toBeGreaterThanOrEqual(80);
  });

  it('re-arms a device that is alive behind an early deadline, without an event', async () => {
    const h = harness();
    await h.send(['dev-1'], T0, 'tracker');
    // Another ingest container (empty cache) records the next message without moving the deadline.
    h.freshCache();
    await h.send(['dev-1'], T0 + 60_000, 'tracker');
    expect(h.store.items.get('dev-1')!.deadline).toBe(T0 + TRACKER);

    h.clock.t = T0 + TRACKER + 1;
    const stats = await h.sweepAll();
    expect(total(stats, 'rearmed')).toBe(1);
    expect(total(stats, 'offline')).toBe(0);
    expect(h.store.items.get('dev-1')!.deadline).toBe(T0 + 60_000 + TRACKER);
    expect(h.events.of('dev-1', 'device.offline')).toEqual([]);

    h.clock.t = T0 + 60_000 + TRACKER;
    expect(total(await h.sweepAll(), 'offline')).toBe(1);
    expect(h.events.of('dev-1', 'device.offline')[0]).toMatchObject({ lastSeen: T0 + 60_000, seq: 2 });
  });

  it('a device that comes back gets one online event, and can go offline again', async () => {
    const h = harness();
    await h.send(['dev-1'], T0, 'tracker');
    h.clock.t = T0 + TRACKER;
    await h.sweepAll();
    const back = T0 + 200_000;
    h.clock.t = back;
    await h.send(['dev-1'], back, 'tracker');
    await h.send(['dev-1'], back, 'tracker'); // a duplicate delivery
    expect(h.events.of('dev-1').map((e) => [e.type, e.eventId])).toEqual([
      ['device.online', 'dev-1#1'],
      ['device.offline', 'dev-1#2'],
      ['device.online', 'dev-1#3'],
    ]);
    expect(h.events.of('dev-1', 'device.online')[1]).toMatchObject({ since: back, lastSeen: back });
    h.clock.t = back + TRACKER;
    await h.sweepAll();
    expect(h.events.of('dev-1').map((e) => e.seq)).toEqual([1, 2, 3, 4]);
  });

  it('respects each device type: timeout, and precision as allowed lateness', async () => {
    const h = harness();
    await h.send(['tracker-1'], T0, 'tracker');
    await h.send(['meter-1'], T0, 'meter');
    const meterAt = T0 + TYPES.meter.timeoutMs + TYPES.meter.precisionMs;

    h.clock.t = T0 + TRACKER;
    await h.sweepAll();
    expect(h.events.events.filter((e) => e.type === 'device.offline').map((e) => e.deviceId)).toEqual(['tracker-1']);
    h.clock.t = meterAt - 1;
    await h.sweepAll();
    expect(h.events.of('meter-1', 'device.offline')).toEqual([]);
    h.clock.t = meterAt;
    await h.sweepAll();
    expect(h.events.of('meter-1', 'device.offline')).toEqual([
      expect.objectContaining({ since: meterAt, timeoutMs: TYPES.meter.timeoutMs, lastSeen: T0 }),
    ]);
  });

  it('judges by the watermark cutoff, not the wall clock: our own lag never makes a device offline', async () => {
    const h = harness();
    await h.send(['dev-1'], T0, 'tracker');
    h.clock.t = T0 + 10 * TRACKER;
    h.watermarks.set(T0 + TRACKER); // ingestion stalled at the deadline: what entered in its millisecond may be behind
    const stalled = await h.sweepAll();
    expect(total(stalled, 'offline')).toBe(0);
    expect(stalled[0]).toMatchObject({ cutoff: T0 + TRACKER - 1, lagMs: 9 * TRACKER + 1 });

    await h.watermarks.setLive(['p', 'new-shard']); // a partition without a watermark holds every judgement
    const held = await h.sweepAll();
    expect(held.every((s) => s.cutoff === undefined && s.scanned === 0)).toBe(true);
    await h.watermarks.credit('new-shard', T0 + TRACKER + 1);
    h.watermarks.set(T0 + TRACKER + 1); // past the deadline's millisecond: now it is judged
    expect(total(await h.sweepAll(), 'offline')).toBe(1);
  });

  it('hands the rest of the shard to a continuation when the budget runs out, and reports everyone once', async () => {
    const h = harness({ shardCount: 1, settings: { pageSize: 10, budgetMs: 100 } });
    const ids = Array.from({ length: 250 }, (_, i) => `dev-${i}`);
    await h.send(ids, T0, 'tracker');
    h.clock.t = T0 + TRACKER;
    h.clock.step = 30; // every clock read costs 30 ms: the job starts, then three pages fit in the budget

    const first = await sweepShard({ shard: '0' }, h.sweepDeps());
    expect(first).toMatchObject({ continued: true, pages: 3, offline: 30 });
    expect(h.queue.jobs).toEqual([
      { job: { shard: '0', cutoff: T0 + TRACKER, cursor: expect.any(String), continuation: 1 }, delaySeconds: 0 },
    ]);
    const rest = [];
    for (let next = h.queue.jobs.shift(); next; next = h.queue.jobs.shift()) {
      rest.push(await sweepShard(next.job, h.sweepDeps()));
    }
    expect(rest.map((s) => s.offline)).toEqual([30, 30, 30, 30, 30, 30, 30, 10]);
    // Continuations judge by the cutoff of the job they continue.
    expect(rest.every((s) => s.cutoff === T0 + TRACKER)).toBe(true);
    const offline = h.events.events.filter((e) => e.type === 'device.offline');
    expect(offline).toHaveLength(250);
    expect(new Set(offline.map((e) => e.deviceId)).size).toBe(250);
    expect(h.queue.jobs).toEqual([]);
  });

  it('always makes progress: even a zero budget processes one page per job', async () => {
    const h = harness({ shardCount: 1, settings: { pageSize: 5, budgetMs: 0 } });
    await h.send(
      Array.from({ length: 12 }, (_, i) => `d-${i}`),
      T0,
      'tracker',
    );
    h.clock.t = T0 + TRACKER;
    const stats = await h.sweepAll();
    expect(stats.map((s) => s.offline)).toEqual([5, 5, 2]);
  });

  it('stops for the runtime as well as for the budget', async () => {
    const h = harness({ shardCount: 1, settings: { pageSize: 5 } });
    await h.send(
      Array.from({ length: 12 }, (_, i) => `d-${i}`),
      T0,
      'tracker',
    );
    h.clock.t = T0 + TRACKER;
    const stats = await sweepShard({ shard: '0' }, h.sweepDeps(), { remainingMs: () => 4_000 });
    expect(stats).toMatchObject({ pages: 1, offline: 5, continued: true });
  });

  it('duplicate jobs, concurrent or repeated, commit and publish each transition once', async () => {
    const h = harness({ shardCount: 1, settings: { pageSize: 7, concurrency: 3 } });
    const ids = Array.from({ length: 40 }, (_, i) => `dev-${i}`);
    await h.send(ids, T0, 'tracker');
    h.freshCache();
    await h.send(ids.slice(0, 10), T0 + 30_000, 'tracker'); // alive: re-armed, not reported
    h.clock.t = T0 + TRACKER;
    const stats = await Promise.all([h.sweep('0'), h.sweep('0'), h.sweep('0')]);
    await h.sweep('0');
    expect(total(stats, 'offline')).toBe(30);
    const offline = h.events.events.filter((e) => e.type === 'device.offline');
    expect(offline.map((e) => e.deviceId).sort()).toEqual(ids.slice(10).sort());
    expect(new Set(offline.map((e) => e.eventId)).size).toBe(30);
  });

  it('re-arms by the stored policy when the index entry carries another one', async () => {
    const h = harness({ shardCount: 1 });
    await h.send(['dev-1'], T0, 'tracker');
    h.freshCache();
    await h.send(['dev-1'], T0 + 50_000, 'tracker');
    // The index lags a policy change: its entry still says 30 s.
    const store = h.store;
    const lagging = Object.assign(Object.create(MemoryDeviceStore.prototype), store, {
      queryExpired: async (shard: string, cutoff: number, limit: number, cursor?: string) => {
        const page: Page<ExpiredEntry> = await store.queryExpired(shard, cutoff, limit, cursor);
        return { ...page, items: page.items.map((e) => ({ ...e, timeoutMs: 30_000 })) };
      },
    }) as MemoryDeviceStore;
    h.clock.t = T0 + TRACKER;
    const stats = await sweepShard({ shard: '0' }, h.sweepDeps({ store: lagging }));
    expect(stats).toMatchObject({ rearmed: 1, offline: 0, writeUnits: 1 });
    expect(store.items.get('dev-1')!.deadline).toBe(T0 + 50_000 + TRACKER);
  });

  it('skips entries whose device already left the index (index lag)', async () => {
    const h = harness({ shardCount: 1 });
    await h.send(['dev-1'], T0, 'tracker');
    h.clock.t = T0 + TRACKER;
    const stale = (await h.store.queryExpired('0', h.clock.t, 10)).items;
    await h.sweepAll();
    const lagging = Object.assign(Object.create(MemoryDeviceStore.prototype), h.store, {
      queryExpired: async () => ({ items: stale }),
    }) as MemoryDeviceStore;
    const stats = await sweepShard({ shard: '0' }, h.sweepDeps({ store: lagging }));
    expect(stats).toMatchObject({ scanned: 1, skipped: 1, offline: 0 });
    expect(h.events.of('dev-1', 'device.offline')).toHaveLength(1);
  });

  it('re-publishes an outbox its committer never published (crash between commit and publish)', async () => {
    const h = harness({ shardCount: 1 });
    await h.send(['dev-1'], T0, 'tracker');
    h.clock.t = T0 + TRACKER;
    const crashing = {
      publish: async () => {
        throw new Error('crash');
      },
    };
    await expect(h.sweep('0', { publisher: crashing })).rejects.toThrow('crash');
    expect(h.store.items.get('dev-1')).toMatchObject({ status: 'OFFLINE', outbox: [{ eventId: 'dev-1#2' }] });

    h.clock.t += h.settings.republishAfterMs - 1;
    expect(await h.sweep('0')).toMatchObject({ republished: 0 });
    h.clock.t += 1;
    expect(await h.sweep('0')).toMatchObject({ republished: 1, published: 1 });
    expect(h.events.of('dev-1', 'device.offline')).toMatchObject([{ eventId: 'dev-1#2', detectedAt: T0 + TRACKER }]);
    expect(h.store.items.get('dev-1')!.outbox).toEqual([]);
  });

  it('re-publishes online events the ingest committed but never published, in order', async () => {
    const h = harness({ shardCount: 1 });
    const failing = { publish: async (events: unknown[]) => ({ failed: events as never[] }) };
    await h.send(['dev-1'], T0, 'tracker');
    h.clock.t = T0 + TRACKER;
    await h.sweep('0', { publisher: failing });
    expect(h.store.items.get('dev-1')!.outbox.map((e) => e.seq)).toEqual([2]);
    await (async () => {
      const { ingestBatch } = await import('../../lambdas/core/ingest.js');
      await ingestBatch([h.record('dev-1', T0 + 100_000, 'tracker')], h.ingestDeps({ publisher: failing }), {
        ordered: false,
      });
    })();
    expect(h.store.items.get('dev-1')!.outbox.map((e) => e.seq)).toEqual([2, 3]);
    h.clock.t += h.settings.republishAfterMs;
    expect(await h.sweep('0')).toMatchObject({ republished: 2 });
    expect(h.events.of('dev-1').map((e) => e.eventId)).toEqual(['dev-1#1', 'dev-1#2', 'dev-1#3']);
  });

  it('counts write units: a failed re-arm costs one, the offline commit what the store reports', async () => {
    const h = harness({ shardCount: 1 });
    await h.send(['dev-1'], T0, 'tracker');
    h.clock.t = T0 + TRACKER;
    // MemoryDeviceStore reports no units for applied writes: only the failed re-arm is counted here.
    expect(await h.sweep('0')).toMatchObject({ offline: 1, writeUnits: 1 });
    expect(h.store.calls).toMatchObject({ rearm: 1, commit: 2, clearOutbox: 2 });
  });

  it('shards devices the way the ingest does', async () => {
    const h = harness({ shardCount: 4 });
    await h.send(['a', 'b', 'c', 'd', 'e'], T0, 'tracker');
    h.clock.t = T0 + TRACKER;
    const shards = new Set(['a', 'b', 'c', 'd', 'e'].map((id) => shardOf(id, 4)));
    let offline = 0;
    for (const shard of shards) offline += (await h.sweep(shard)).offline;
    expect(offline).toBe(5);
  });
});

describe('parseSweepJob', () => {
  it('reads tick jobs and continuations', () => {
    expect(parseSweepJob('{"shard":"7"}')).toEqual({ shard: '7' });
    expect(parseSweepJob('{"shard":"7","cutoff":5,"cursor":"x","continuation":2}')).toMatchObject({ cutoff: 5 });
  });

  it.each(['', 'nope', '{}', '{"shard":""}', '{"shard":7}', '{"shard":"1","cutoff":"5"}', 'null', '[]'])(
    'refuses %j',
    (body) => {
      expect(() => parseSweepJob(body)).toThrow(InvalidSweepJob);
    },
  );
});
