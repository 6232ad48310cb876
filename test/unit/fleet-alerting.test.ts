// Device tags and maintenance windows through the real ingest and sweep cores of both engines, on the in-memory
// table, with an injected clock: the events that come out are exactly the expected ones.
import { describe, expect, it } from 'vitest';
import { getDevice, listOffline } from '../../lambdas/core/admin.js';
import { handleApi } from '../../lambdas/core/api.js';
import { type BatchedSweepDeps, sweepBatchedShard } from '../../lambdas/core/batched.js';
import { type IngestConfig, loadIngestConfig } from '../../lambdas/core/config.js';
import { DeviceCache } from '../../lambdas/core/device-cache.js';
import { type IngestRecord, ingestBatch } from '../../lambdas/core/ingest.js';
import { addWindow, applyEdge, endWindow, type WindowRequest } from '../../lambdas/core/maintenance.js';
import { sweepShard } from '../../lambdas/core/sweep.js';
import { MemoryDeviceStore } from '../../sim/memory/device-store.js';
import { MemoryWatermarks } from '../../sim/memory/watermark-store.js';
import { MemoryShardStates, MemorySightingLog } from '../support/memory-batched.js';
import { MemoryMaintenanceStore, RecordedSchedules } from '../support/memory-maintenance.js';
import { EventLog, MemoryJobQueue, T0, TYPES } from '../support/sweep-harness.js';

const TRACKER = TYPES.tracker.timeoutMs;
const SHARDS = 2;
const RECHECK = 60_000;
const GRACE = 60_000;
const MIN = 60_000;
type Engine = 'per-device' | 'batched';

/** A detector on one engine: send messages (with tags), sweep every shard at a time, run maintenance windows. */
function detector(engine: Engine) {
  const clock = { t: T0 };
  const now = () => clock.t;
  const config: IngestConfig = {
    ...loadIngestConfig({
      TABLE_NAME: 'memory',
      DEVICE_TYPES: JSON.stringify(TYPES),
      FIELD_MAP: JSON.stringify({ tags: { site: 'site', gatewayId: 'meta.gw' } }),
    }),
    shardCount: SHARDS,
  };
  const table = new MemoryDeviceStore();
  const events = new EventLog();
  const log = new MemorySightingLog(now);
  const maintenance = new MemoryMaintenanceStore();
  const schedules = new RecordedSchedules();
  const cache = new DeviceCache(engine === 'batched' ? 0 : 1000);
  let id = 0;
  const send = async (messages: Array<Record<string, unknown>>, at = clock.t) => {
    clock.t = Math.max(clock.t, at);
    const records: IngestRecord[] = messages.map((body) => ({
      id: `m${++id}`,
      body: JSON.stringify({ deviceType: 'tracker', ...body }),
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
        cache,
        now,
        ...(engine === 'batched' ? { sightings: { log, shardCount: SHARDS } } : {}),
      },
      { ordered: false },
    );
  };
  const settings = {
    toleranceMs: 0,
    budgetMs: 60_000,
    pageSize: 50,
    concurrency: 4,
    republishAfterMs: 10_000,
    maintenanceRecheckMs: RECHECK,
    parentTag: 'gatewayId',
    parentGraceMs: GRACE,
  };
  const common = { settings, publisher: events, watermarks: new MemoryWatermarks(), queue: new MemoryJobQueue(), now };
  const batchedDeps: BatchedSweepDeps = {
    ...common,
    table,
    log,
    states: new MemoryShardStates(),
    ingest: config,
    batched: { shardCount: SHARDS, lookbackMs: 5_000, checkpointEveryMs: 60_000, refreshAfterMs: 15 * 86_400_000 },
    cache: new Map(),
    maintenance,
  };
  /** The schedules due by `at` fire, then every shard is swept with the clock at `at`. */
  const sweepAt = async (at: number) => {
    clock.t = at;
    for (const edge of schedules.due(at)) await applyEdge(maintenance, edge);
    for (let shard = 0; shard < SHARDS; shard++) {
      if (engine === 'batched') await sweepBatchedShard({ shard: String(shard) }, batchedDeps);
      else await sweepShard({ shard: String(shard) }, { ...common, store: table, maintenance });
    }
  };
  const admin = { store: table, deviceTypes: config.deviceTypes, housekeepingTtlMs: 30 * 86_400_000, now };
  const windows = { maintenance, schedules, now, newId: () => `w${++id}` };
  return { clock, table, events, send, sweepAt, admin, windows, maintenance, schedules, log };
}

const offline = (d: ReturnType<typeof detector>) =>
  d.events.events.filter((e) => e.type === 'device.offline').map((e) => [e.deviceId, e.since - T0, e.detectedAt - T0]);

describe.each<Engine>(['per-device', 'batched'])('device tags (%s engine)', (engine) => {
  it('are stored from the messages that carry them, shown, filtered on, and carried by the events', async () => {
    const d = detector(engine);
    await d.send([
      { deviceId: 'a', site: 'berlin', meta: { gw: 'gw-1' } },
      { deviceId: 'b', site: 'paris' },
      { deviceId: 'c' },
    ]);
    // A message without tags leaves the device's as they are; one with tags replaces them.
    await d.send([{ deviceId: 'a' }, { deviceId: 'b', site: 'lyon' }], T0 + 10_000);
    await d.sweepAt(T0 + 10_000);
    expect((await getDevice(d.admin, 'a')).tags).toEqual({ site: 'berlin', gatewayId: 'gw-1' });
    expect((await getDevice(d.admin, 'b')).tags).toEqual({ site: 'lyon' });
    expect((await getDevice(d.admin, 'c')).tags).toBeUndefined();

    await d.sweepAt(T0 + 10_000 + TRACKER);
    const tagsOf = (id: string) => d.events.of(id, 'device.offline')[0]?.tags;
    expect(tagsOf('a')).toEqual({ site: 'berlin', gatewayId: 'gw-1' });
    expect(tagsOf('b')).toEqual({ site: 'lyon' });
    expect(tagsOf('c')).toBeUndefined();
    const listed = await listOffline(d.admin, { limit: 10, tags: { site: 'lyon' } });
    expect(listed.devices.map((x) => x.deviceId)).toEqual(['b']);
    expect(listed.devices[0]!.tags).toEqual({ site: 'lyon' });
  });

  it('a changed tag reaches the item, the same tags again cost no write', async () => {
    const d = detector(engine);
    await d.send([{ deviceId: 'a', site: 'berlin' }]);
    await d.sweepAt(T0);
    const writes = () => d.table.calls.touch + d.table.calls.commit;
    const before = writes();
    await d.send([{ deviceId: 'a', site: 'berlin' }], T0 + 1_000);
    await d.sweepAt(T0 + 1_000);
    await d.send([{ deviceId: 'a', site: 'paris' }], T0 + 2_000);
    await d.sweepAt(T0 + 2_000);
    expect((await getDevice(d.admin, 'a')).tags).toEqual({ site: 'paris' });
    if (engine === 'batched') {
      // The state learned the new tags from the write: the same new tags again merge in memory.
      await d.send([{ deviceId: 'a', site: 'paris' }], T0 + 3_000);
      await d.sweepAt(T0 + 3_000);
    }
    // Batched: the same tags are merged in memory (no write), the changed ones take the item's write path once.
    // Per-device: each message is its touch anyway (tracker has no precision to coalesce by).
    expect(writes() - before).toBe(engine === 'batched' ? 1 : 2);
  });
});

describe('device tags: validation', () => {
  it('a tag value that is not a short id-like string rejects the message with INVALID_TAG', async () => {
    const d = detector('per-device');
    const result = await d.send([
      { deviceId: 'a', site: 'x'.repeat(65) },
      { deviceId: 'b', site: { nested: 1 } },
    ]);
    expect(result.stats.rejected).toEqual({ INVALID_TAG: 2 });
    expect(d.table.items.size).toBe(0);
  });
});

describe.each<Engine>(['per-device', 'batched'])('maintenance windows (%s engine)', (engine) => {
  const berlin = (from: number, until?: number): WindowRequest => ({
    selector: { tags: { site: 'berlin' } },
    from,
    ...(until !== undefined ? { until } : {}),
    reason: 'router swap',
  });

  it('a window scheduled ahead holds exactly its group, and reports the still-silent devices once at its end', async () => {
    const d = detector(engine);
    await addWindow(d.windows, berlin(T0 + 10 * MIN, T0 + 60 * MIN));
    expect(d.schedules.pending.size).toBe(1);
    await d.send([
      { deviceId: 'early', site: 'berlin' }, // silent before the window starts: reported as usual
      { deviceId: 'other', site: 'paris' },
    ]);
    await d.send(
      [
        { deviceId: 'held', site: 'berlin' },
        { deviceId: 'back', site: 'berlin' },
      ],
      T0 + 9 * MIN,
    );
    for (let t = T0; t <= T0 + 70 * MIN; t += 30_000) {
      // `back` is silent through most of the window and is back before it ends: nothing is published for it.
      if (t >= T0 + 40 * MIN && (t - T0) % MIN === 0) await d.send([{ deviceId: 'back' }], t);
      await d.sweepAt(t);
    }
    expect(offline(d)).toEqual(
      expect.arrayContaining([
        ['early', TRACKER, TRACKER],
        ['other', TRACKER, TRACKER],
        // since: when it really went silent; reported at the window's end
        ['held', 9 * MIN + TRACKER, 60 * MIN],
      ]),
    );
    expect(offline(d)).toHaveLength(3);
    expect(d.events.of('back').map((e) => e.type)).toEqual(['device.online']); // its registration only
    expect(d.maintenance.windows).toEqual([]); // its end schedule took it away
  });

  it('the window becomes active by its start schedule, and the sweep holds by its times alone', async () => {
    const d = detector(engine);
    const window = await addWindow(d.windows, berlin(T0 + 5 * MIN, T0 + 30 * MIN));
    expect(window.state).toBe('scheduled');
    await d.send([{ deviceId: 'held', site: 'berlin' }], T0 + 4 * MIN);
    d.schedules.pending.clear(); // schedules lost: the window is never marked active, and never taken away
    for (let t = T0; t <= T0 + 31 * MIN; t += 30_000) await d.sweepAt(t);
    expect(offline(d)).toEqual([['held', 4 * MIN + TRACKER, 30 * MIN]]);
  });

  it('ending a window early reports its still-silent devices within the recheck interval', async () => {
    const d = detector(engine);
    const window = await addWindow(d.windows, berlin(T0, T0 + 600 * MIN));
    expect(window.state).toBe('active');
    await d.send([{ deviceId: 'held', site: 'berlin' }]);
    for (let t = T0; t <= T0 + 10 * MIN; t += 30_000) await d.sweepAt(t);
    expect(offline(d)).toEqual([]);
    d.clock.t = T0 + 10 * MIN;
    await endWindow(d.windows, window.id);
    expect(d.schedules.pending.size).toBe(0);
    for (let t = T0 + 10 * MIN; t <= T0 + 12 * MIN; t += 30_000) await d.sweepAt(t);
    const [[, since, detected]] = offline(d) as [[string, number, number]];
    expect(since).toBe(TRACKER);
    expect(detected).toBeGreaterThan(10 * MIN);
    expect(detected).toBeLessThanOrEqual(10 * MIN + RECHECK);
  });

  it('an open-ended window holds until it is ended', async () => {
    const d = detector(engine);
    const window = await addWindow(d.windows, { selector: { deviceIds: ['held'] }, from: T0, reason: '' });
    await d.send([{ deviceId: 'held' }, { deviceId: 'free' }]);
    for (let t = T0; t <= T0 + 120 * MIN; t += MIN) await d.sweepAt(t);
    expect(offline(d)).toEqual([['free', TRACKER, 2 * MIN]]);
    await endWindow(d.windows, window.id);
    for (let t = T0 + 121 * MIN; t <= T0 + 123 * MIN; t += MIN) await d.sweepAt(t);
    expect(offline(d).map(([id]) => id)).toEqual(['free', 'held']);
  });
});

describe('maintenance API', () => {
  const api = (d: ReturnType<typeof detector>, method: string, path: string, body?: unknown) =>
    handleApi(
      { method, path, query: {}, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) },
      {
        ...d.admin,
        maintenance: { maintenance: d.maintenance, schedules: d.schedules, newId: () => 'w1' },
      },
    );

  it('adds, lists and ends a window', async () => {
    const d = detector('per-device');
    const created = await api(d, 'POST', '/maintenance', {
      selector: { deviceTypes: ['tracker'] },
      from: new Date(T0 + MIN).toISOString(),
      until: T0 + 2 * MIN,
      reason: 'firmware rollout',
    });
    expect(created).toMatchObject({ status: 201, body: { id: 'w1', from: T0 + MIN, until: T0 + 2 * MIN } });
    expect((await api(d, 'GET', '/maintenance')).body).toMatchObject({ windows: [{ id: 'w1', state: 'scheduled' }] });
    expect(await api(d, 'DELETE', '/maintenance/w1')).toMatchObject({ status: 200, body: { id: 'w1' } });
    expect(await api(d, 'DELETE', '/maintenance/w1')).toMatchObject({ status: 404 });
    expect(d.maintenance.windows).toEqual([]);
  });

  it.each([
    ['an unknown selector', { selector: { site: 'x' } }, 'bad-selector'],
    ['two selectors', { selector: { all: true, deviceIds: ['a'] } }, 'bad-selector'],
    ['an unknown device type', { selector: { deviceTypes: ['toaster'] } }, 'unknown-device-type'],
    ['from after until', { selector: { all: true }, from: T0 + 2 * MIN, until: T0 + MIN }, 'bad-time'],
    ['a window over a year', { selector: { all: true }, until: T0 + 367 * 86_400_000 }, 'bad-time'],
    ['an end in the past', { selector: { all: true }, from: T0 - 2 * MIN, until: T0 - MIN }, 'bad-time'],
    ['too many tags', { selector: { tags: { a: '1', b: '2', c: '3', d: '4', e: '5', f: '6' } } }, 'bad-selector'],
    ['an oversized tag value', { selector: { tags: { site: 'x'.repeat(65) } } }, 'bad-selector'],
    ['too many devices', { selector: { deviceIds: Array.from({ length: 101 }, (_, i) => `d${i}`) } }, 'bad-selector'],
    ['an unknown field', { selector: { all: true }, owner: 'me' }, 'unknown-field'],
    ['a long reason', { selector: { all: true }, reason: 'x'.repeat(201) }, 'bad-selector'],
  ])('refuses %s with a 4xx and changes nothing', async (_name, body, code) => {
    const d = detector('per-device');
    const out = await api(d, 'POST', '/maintenance', body);
    expect(out.status).toBeGreaterThanOrEqual(400);
    expect(out.status).toBeLessThan(500);
    expect(out.body).toMatchObject({ error: code });
    expect(d.maintenance.version).toBe(0);
    expect(d.schedules.pending.size).toBe(0);
  });

  it('takes the window back when its schedules cannot be created', async () => {
    const d = detector('per-device');
    d.schedules.create = async () => {
      throw new Error('scheduler down');
    };
    await expect(api(d, 'POST', '/maintenance', { selector: { all: true }, until: T0 + MIN })).rejects.toThrow(
      'scheduler down',
    );
    expect(d.maintenance.windows).toEqual([]);
  });
});

describe.each<Engine>(['per-device', 'batched'])('gateway dependency (%s engine)', (engine) => {
  const child = (deviceId: string) => ({ deviceId, meta: { gw: 'gw' } });
  const byDevice = (d: ReturnType<typeof detector>) =>
    d.events.events
      .filter((e) => e.deviceId !== 'gw' && e.type === 'device.offline')
      .map((e) => [e.deviceId, e.cause, e.parentId, e.since - T0])
      .sort((a, b) => String(a[0]).localeCompare(String(b[0])));

  it('children of an offline gateway carry cause=parent-offline; still silent after it is back, they are reported without', async () => {
    const d = detector(engine);
    await d.send([{ deviceId: 'gw' }, child('c1'), child('c2'), child('c3')]);
    for (let t = T0 + 30_000; t <= T0 + 10 * MIN; t += 30_000) await d.sweepAt(t);
    expect(d.events.of('gw', 'device.offline').map((e) => [e.since - T0, e.cause])).toEqual([[TRACKER, undefined]]);
    expect(byDevice(d)).toEqual([
      ['c1', 'parent-offline', 'gw', TRACKER],
      ['c2', 'parent-offline', 'gw', TRACKER],
      ['c3', 'parent-offline', 'gw', TRACKER],
    ]);
    // The gateway is back, and c3 with it; c1 and c2 stay silent.
    await d.send([{ deviceId: 'gw' }, child('c3')], T0 + 10 * MIN);
    for (let t = T0 + 10 * MIN + 30_000; t <= T0 + 20 * MIN; t += 30_000) {
      if ((t - T0) % MIN === 0) await d.send([{ deviceId: 'gw' }, child('c3')], t);
      await d.sweepAt(t);
    }
    const reported = d.events.events.filter((e) => e.type === 'device.offline' && e.cause === undefined);
    const children = reported.filter((e) => e.deviceId !== 'gw');
    expect(children.map((e) => [e.deviceId, e.since - T0]).sort()).toEqual([
      ['c1', TRACKER],
      ['c2', TRACKER],
    ]);
    for (const e of children) {
      // A timeout after the gateway's return, within the recheck.
      expect(e.detectedAt).toBeGreaterThanOrEqual(T0 + 10 * MIN + TRACKER);
      expect(e.detectedAt).toBeLessThanOrEqual(T0 + 10 * MIN + TRACKER + RECHECK);
    }
    expect(d.events.of('c3').map((e) => e.type)).toEqual(['device.online', 'device.offline', 'device.online']);
    expect((await getDevice(d.admin, 'c1')).status).toBe('OFFLINE');
  });

  it('a child of a live gateway is reported without a cause, at most the grace late', async () => {
    const d = detector(engine);
    await d.send([{ deviceId: 'gw' }, child('c1')]);
    for (let t = T0 + 30_000; t <= T0 + 5 * MIN; t += 30_000) {
      await d.send([{ deviceId: 'gw' }], t);
      await d.sweepAt(t);
    }
    expect(byDevice(d)).toEqual([['c1', undefined, undefined, TRACKER]]);
    const detected = d.events.of('c1', 'device.offline')[0]!.detectedAt - T0;
    expect(detected).toBeLessThanOrEqual(TRACKER + GRACE);
    if (engine === 'per-device') expect(detected).toBe(TRACKER); // its item shows the gateway alive: no wait
  });

  it('a child heard after its gateway went silent was not behind it: no cause', async () => {
    const d = detector(engine);
    await d.send([{ deviceId: 'gw' }, child('c1')]);
    for (let t = T0 + 30_000; t <= T0 + 10 * MIN; t += 30_000) {
      if (t <= T0 + 4 * MIN) await d.send([child('c1')], t);
      await d.sweepAt(t);
    }
    expect(byDevice(d)).toEqual([['c1', undefined, undefined, 4 * MIN + TRACKER]]);
  });
});
