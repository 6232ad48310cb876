// The batched engine's own rules, one at a time, on the in-memory table and shard stores with an injected clock
// (the protocol property test runs it under every fault; test/local runs it through the CLI).
import { describe, expect, it } from 'vitest';
import { getDevice } from '../../lambdas/core/admin.js';
import { type BatchedSweepDeps, type IndexedEntry, ShardState, sweepBatchedShard } from '../../lambdas/core/batched.js';
import { loadIngestConfig } from '../../lambdas/core/config.js';
import { DeviceCache } from '../../lambdas/core/device-cache.js';
import { type IngestRecord, ingestBatch } from '../../lambdas/core/ingest.js';
import { shardOf } from '../../lambdas/core/shard.js';
import { batchedSizing } from '../../lambdas/core/sizing.js';
import { MemoryDeviceStore } from '../../sim/memory/device-store.js';
import { MemoryWatermarks } from '../../sim/memory/watermark-store.js';
import { MemoryShardStates, MemorySightingLog } from '../support/memory-batched.js';
import { EventLog, MemoryJobQueue, T0, TYPES } from '../support/sweep-harness.js';

const TRACKER = TYPES.tracker.timeoutMs;
const SHARDS = 2;

function engine() {
  const clock = { t: T0 };
  const now = () => clock.t;
  const config = {
    ...loadIngestConfig({ TABLE_NAME: 'memory', DEVICE_TYPES: JSON.stringify(TYPES) }),
    shardCount: SHARDS,
  };
  const table = new MemoryDeviceStore();
  const log = new MemorySightingLog(now);
  const states = new MemoryShardStates();
  const events = new EventLog();
  const writes = () => table.calls.touch + table.calls.commit;
  let id = 0;
  const send = async (deviceIds: string[], at = clock.t) => {
    const records: IngestRecord[] = deviceIds.map((deviceId) => ({
      id: `m${++id}`,
      body: JSON.stringify({ deviceId, deviceType: 'tracker' }),
      enteredAt: at,
      partition: 'q',
    }));
    return ingestBatch(
      records,
      {
        config,
        store: table,
        publisher: events,
        rejects: { send: async () => ({ failed: [] }) },
        cache: new DeviceCache(0),
        now,
        sightings: { log, shardCount: SHARDS },
      },
      { ordered: false },
    );
  };
  const deps: BatchedSweepDeps = {
    settings: { toleranceMs: 0, budgetMs: 60_000, pageSize: 50, concurrency: 4, republishAfterMs: 10_000 },
    table,
    log,
    states,
    ingest: config,
    batched: { shardCount: SHARDS, lookbackMs: 5_000, checkpointEveryMs: 60_000, refreshAfterMs: 15 * 86_400_000 },
    cache: new Map(),
    publisher: events,
    // No live partition: the cutoff is the clock.
    watermarks: new MemoryWatermarks(),
    queue: new MemoryJobQueue(),
    now,
  };
  const sweep = async (at: number) => {
    clock.t = at;
    const stats = [];
    for (let shard = 0; shard < SHARDS; shard++) stats.push(await sweepBatchedShard({ shard: String(shard) }, deps));
    return stats;
  };
  return { clock, table, log, states, events, writes, send, sweep, deps, config };
}

describe('batched ingest', () => {
  it('appends one record per shard of the batch and writes no device item', async () => {
    const e = engine();
    const devices = ['a', 'b', 'c', 'd', 'e'];
    const result = await e.send(devices);
    expect(result.failedRecordIds.size).toBe(0);
    expect(e.writes()).toBe(0);
    const shards = new Set(devices.map((d) => shardOf(d, SHARDS)));
    expect(e.log.records.map((r) => r.shard).sort()).toEqual([...shards].sort());
    expect(e.log.records.flatMap((r) => r.sightings.map((s) => s.deviceId)).sort()).toEqual(devices);
  });

  it('a shard whose append fails fails only the records that named its devices', async () => {
    const e = engine();
    const [a, b] = ['a', 'b'].map((d) => ({ d, shard: shardOf(d, SHARDS) }));
    expect(a!.shard).not.toBe(b!.shard);
    const append = e.log.append.bind(e.log);
    e.log.append = async (shard, record) => {
      if (shard === a!.shard) throw new Error('throttled');
      return append(shard, record);
    };
    const result = await e.send(['a', 'b']);
    expect([...result.failedRecordIds]).toEqual(['m1']);
  });
});

describe('batched sweep', () => {
  it('registers a new device through its item, merges its heartbeats in memory, reports it offline and back', async () => {
    const e = engine();
    await e.send(['d']);
    await e.sweep(T0 + 1_000);
    expect(e.events.of('d').map((ev) => [ev.type, ev.since - T0])).toEqual([['device.online', 0]]);
    const registered = e.writes();

    for (let t = 30_000; t <= 60_000; t += 30_000) {
      await e.send(['d'], T0 + t);
      const stats = await e.sweep(T0 + t + 1_000);
      expect(stats.reduce((n, s) => n + s.merged, 0)).toBe(1);
    }
    expect(e.writes()).toBe(registered); // heartbeats: no item write

    await e.sweep(T0 + 60_000 + TRACKER - 1);
    expect(e.events.of('d', 'device.offline')).toEqual([]);
    await e.sweep(T0 + 60_000 + TRACKER);
    expect(e.events.of('d', 'device.offline').map((ev) => [ev.since - T0, ev.lastSeen - T0])).toEqual([
      [60_000 + TRACKER, 60_000],
    ]);

    await e.send(['d'], T0 + 200_000);
    await e.sweep(T0 + 201_000);
    expect(e.events.of('d').map((ev) => ev.type)).toEqual(['device.online', 'device.offline', 'device.online']);
  });

  it('a job that finds its state saved by another job in the meantime saves its changes over it', async () => {
    const e = engine();
    await e.send(['a', 'b']);
    await e.sweep(T0 + 1_000);
    const shard = shardOf('a', SHARDS);
    // Another container's job of the same shard saves first.
    const stored = (await e.states.load(shard))!;
    expect(await e.states.save(shard, stored.version, { journal: new Map() })).toBe(true);
    // This container's warm state is now a version behind: it loads the newer one instead of trusting its own.
    const [stats] = (await e.sweep(T0 + 2_000)).filter((s) => s.shard === shard);
    expect(stats!.warm).toBe(false);
  });
});

describe('a mass reconnect', () => {
  it('is paced by the sweeps: a job writes items within its budget, the next ones take the rest', async () => {
    const e = engine();
    e.deps.settings = { ...e.deps.settings, budgetMs: 0 };
    const devices = Array.from({ length: 600 }, (_, i) => `d${i}`);
    await e.send(devices);
    const chunk = e.config.writeConcurrency * 4;
    const [first] = await e.sweep(T0 + 1_000);
    expect(first!.slow).toBeGreaterThan(chunk);
    expect(first!.merge.written).toBe(chunk); // the rest waits for the next job
    for (let tick = 2; tick <= 4; tick++) await e.sweep(T0 + tick * 1_000);
    expect(new Set(e.events.events.filter((ev) => ev.type === 'device.online').map((ev) => ev.deviceId)).size).toBe(
      600,
    );
  });
});

describe('merging a sighting into the shard state', () => {
  const config = loadIngestConfig({ TABLE_NAME: 'memory', DEVICE_TYPES: JSON.stringify(TYPES) });
  const settings = { shardCount: 1, lookbackMs: 5_000, checkpointEveryMs: 60_000, refreshAfterMs: 86_400_000 };
  const state = () => {
    const s = new ShardState('0', 1, new Map(), T0, 0);
    const item = {
      deviceId: 'd',
      deviceType: 'tracker',
      ...TYPES.tracker,
      lastSeen: T0,
      status: 'ONLINE' as const,
      since: T0,
      seq: 1,
      shard: '0',
      deadline: T0 + TRACKER,
      outbox: [],
    };
    s.observe('d', item);
    return s;
  };

  it('merges a heartbeat within the deadline in memory, and moves the deadline with it', () => {
    const s = state();
    expect(s.merge({ deviceId: 'd', lastSeen: T0 + 60_000 }, config, settings)).toBe('merged');
    expect(s.expired(T0 + 60_000 + TRACKER - 1, 10).items).toEqual([]);
    expect(s.merge({ deviceId: 'd', lastSeen: T0 + 1_000 }, config, settings)).toBe('stale');
  });

  it('sends through the item what only the item can decide', () => {
    // Silent long enough to have been declared offline by a job whose save was lost: a return or a heartbeat?
    expect(state().merge({ deviceId: 'd', lastSeen: T0 + TRACKER }, config, settings)).toBe('slow');
    // Unknown here: a new device (or one this state never saw).
    expect(state().merge({ deviceId: 'x', lastSeen: T0 + 1 }, config, settings)).toBe('slow');
    // Another type than the item's.
    expect(state().merge({ deviceId: 'd', lastSeen: T0 + 1, deviceType: 'meter' }, config, settings)).toBe('slow');
    // Its item's lastSeen and expiry are due a refresh.
    const refresh = { ...settings, refreshAfterMs: 1_000 };
    expect(state().merge({ deviceId: 'd', lastSeen: T0 + 1_000 }, config, refresh)).toBe('slow');
  });

  it('tells a late sighting of a device that went offline from its return, without the item', () => {
    const s = state();
    s.observe('d', {
      ...(s.entries.get('d') as IndexedEntry).item,
      status: 'OFFLINE',
      since: T0 + TRACKER,
      seq: 2,
      deadline: undefined,
    });
    expect(s.merge({ deviceId: 'd', lastSeen: T0 + TRACKER }, config, settings)).toBe('stale');
    expect(s.merge({ deviceId: 'd', lastSeen: T0 + TRACKER + 1 }, config, settings)).toBe('slow');
  });
});

describe('the state of a shard over time', () => {
  it('a container keeps at most four shard states warm, the least recently loaded leaving first', async () => {
    const e = engine();
    const cache = e.deps.cache!;
    for (let shard = 0; shard < 6; shard++) {
      await sweepBatchedShard({ shard: String(shard) }, { ...e.deps, batched: { ...e.deps.batched, shardCount: 6 } });
    }
    expect([...cache.keys()]).toEqual(['2', '3', '4', '5']);
  });

  it('forgets the devices that left the index an hour before a checkpoint, and keeps the others', async () => {
    const e = engine();
    await e.send(['a', 'b']);
    await e.sweep(T0 + 1_000);
    await e.send(['b'], T0 + 3_600_000);
    await e.sweep(T0 + 3_600_000 + 1_000); // a is offline, b is back
    // Two checkpoint periods later a's entry (offline an hour and more) is gone; b is still indexed.
    await e.send(['b'], T0 + 7_300_000);
    await e.sweep(T0 + 7_300_000 + 1_000);
    const entries = [...(await Promise.all(['0', '1'].map((s) => e.states.load(s))))].flatMap((st) => [
      ...(st?.entries.keys() ?? []),
    ]);
    expect(entries).toEqual(['b']);
    expect(e.events.of('a').map((ev) => ev.type)).toEqual(['device.online', 'device.offline']);
  });
});

describe('operator API on the batched engine', () => {
  it('says that lastSeen is as of the last transition', async () => {
    const e = engine();
    await e.send(['d']);
    await e.sweep(T0 + 1_000);
    const deps = {
      store: e.table,
      deviceTypes: e.config.deviceTypes,
      housekeepingTtlMs: 30 * 86_400_000,
      now: () => T0,
    };
    expect(await getDevice({ ...deps, engine: 'batched' }, 'd')).toMatchObject({ lastSeenAsOf: 'last-transition' });
    expect(await getDevice(deps, 'd')).not.toHaveProperty('lastSeenAsOf');
  });
});

describe('batchedSizing', () => {
  it('gives shards by devices and ingest batches of about 200 sightings per shard at the fleet rate', () => {
    expect(batchedSizing({ devices: 1_000, messagesPerSecond: 1_000 / 60 })).toEqual({
      shardCount: 1,
      batchSize: 200,
      batchWindowSeconds: 12,
    });
    expect(batchedSizing({ devices: 1_000_000, messagesPerSecond: 1_000_000 / 60 })).toEqual({
      shardCount: 8,
      batchSize: 1_600,
      batchWindowSeconds: 1,
    });
    expect(batchedSizing({ devices: 10_000_000, messagesPerSecond: 10_000_000 / 60 })).toEqual({
      shardCount: 80,
      batchSize: 10_000,
      batchWindowSeconds: 1,
    });
  });
});
