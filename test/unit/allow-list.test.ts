// Allow-list mode (ALLOW_LIST): only registered devices are tracked, every other device's messages are rejected
// (UNREGISTERED), on both engines, through the real ingest, sweep and operator cores on the in-memory stores.
// (test/integration/allow-list.test.ts runs the handlers and the API on the embedded engines.)
import { describe, expect, it } from 'vitest';
import { type AdminDeps, forget, getDevice, register } from '../../lambdas/core/admin.js';
import { type BatchedSweepDeps, notingAdminStore, sweepBatchedShard } from '../../lambdas/core/batched.js';
import { type IngestConfig, loadIngestConfig } from '../../lambdas/core/config.js';
import { DeviceCache } from '../../lambdas/core/device-cache.js';
import { type IngestRecord, ingestBatch } from '../../lambdas/core/ingest.js';
import type { RejectedRecord, RejectSink } from '../../lambdas/core/ports.js';
import { MemoryDeviceStore } from '../../sim/memory/device-store.js';
import { MemoryWatermarks } from '../../sim/memory/watermark-store.js';
import { RecordingRejects } from '../support/ingest-fixtures.js';
import { MemoryShardStates, MemorySightingLog } from '../support/memory-batched.js';
import { EventLog, MemoryJobQueue, T0, TYPES } from '../support/sweep-harness.js';

const SHARDS = 2;
const HOUSEKEEPING_TTL_MS = 30 * 86_400_000;

/** One detector in memory on either engine: ingest, (batched) sweep, operator API core, rejects recorded. */
function detector(options: { engine: 'per-device' | 'batched'; config?: Partial<IngestConfig> }) {
  const clock = { t: T0 };
  const now = () => clock.t;
  const config: IngestConfig = {
    ...loadIngestConfig({ TABLE_NAME: 'memory', DEVICE_TYPES: JSON.stringify(TYPES) }),
    shardCount: SHARDS,
    allowList: true,
    ...options.config,
  };
  const table = new MemoryDeviceStore();
  const events = new EventLog();
  const rejects = new RecordingRejects();
  const log = new MemorySightingLog(now);
  const batched = options.engine === 'batched';
  const cache = new DeviceCache(config.cacheSize);
  let id = 0;
  const records = (messages: unknown[], at: number): IngestRecord[] =>
    messages.map((message) => ({
      id: `m${++id}`,
      body: typeof message === 'string' ? message : JSON.stringify(message),
      enteredAt: at,
      partition: 'queue',
    }));
  const ingest = (batch: IngestRecord[], deps: { rejects?: RejectSink; ordered?: boolean } = {}) =>
    ingestBatch(
      batch,
      {
        config,
        store: table,
        publisher: events,
        rejects: deps.rejects ?? rejects,
        cache,
        now,
        ...(batched ? { sightings: { log, shardCount: SHARDS } } : {}),
      },
      { ordered: deps.ordered ?? false },
    );
  const sweepDeps: BatchedSweepDeps = {
    settings: { toleranceMs: 0, budgetMs: 60_000, pageSize: 50, concurrency: 4, republishAfterMs: 10_000 },
    table,
    log,
    states: new MemoryShardStates(),
    ingest: config,
    batched: { shardCount: SHARDS, lookbackMs: 5_000, checkpointEveryMs: 60_000, refreshAfterMs: 15 * 86_400_000 },
    cache: new Map(),
    publisher: events,
    watermarks: new MemoryWatermarks(),
    queue: new MemoryJobQueue(),
    now,
    rejects,
  };
  const admin: AdminDeps = {
    // As the API builds it: on the batched engine a change leaves a note for the sweep of the device's shard.
    store: batched ? notingAdminStore(table, log, SHARDS) : table,
    deviceTypes: config.deviceTypes,
    housekeepingTtlMs: HOUSEKEEPING_TTL_MS,
    now,
    ...(batched ? { engine: 'batched' as const } : {}),
  };
  return {
    clock,
    config,
    table,
    events,
    rejects,
    admin,
    sweepDeps,
    /** One message per device, entered at `at`; on the batched engine, then a sweep of every shard a second later
     * (where its item is written, or the device rejected). */
    async send(deviceIds: string[], at = clock.t) {
      clock.t = at;
      const result = await ingest(
        records(
          deviceIds.map((deviceId) => ({ deviceId })),
          at,
        ),
      );
      const swept = batched ? await this.sweep(at + 1_000) : [];
      return { result, swept };
    },
    async sweep(at: number) {
      clock.t = at;
      const stats = [];
      for (let shard = 0; shard < SHARDS; shard++)
        stats.push(await sweepBatchedShard({ shard: String(shard) }, sweepDeps));
      return stats;
    },
    ingest,
    records,
  };
}

const reasons = (rejected: RejectedRecord[]) => rejected.map((r) => [r.reason, JSON.parse(r.body).deviceId]);

describe.each(['per-device', 'batched'] as const)('allow-list mode, %s engine', (engine) => {
  it('rejects the messages of a device that is not registered (UNREGISTERED), writes nothing, retries nothing', async () => {
    const d = detector({ engine });
    const { result, swept } = await d.send(['stranger']);
    expect(result.failedRecordIds.size).toBe(0);
    expect(d.table.items.has('stranger')).toBe(false);
    expect(d.events.events).toEqual([]);
    expect(reasons(d.rejects.rejected)).toEqual([['UNREGISTERED', 'stranger']]);
    expect(d.rejects.rejected[0]!.detail).toContain('not registered');
    // Counted where it was rejected: by the ingest's MessagesRejected, or the batched sweep's.
    const counted = engine === 'batched' ? swept.map((s) => s.merge) : [result.stats];
    expect(counted.reduce((n, s) => n + (s.rejected.UNREGISTERED ?? 0), 0)).toBe(1);
    expect(counted.reduce((n, s) => n + s.rejectedTotal, 0)).toBe(1);
    expect(swept.every((s) => s.errors.length === 0)).toBe(true);
  });

  it('a registered device turns online with its first message, as a new device does', async () => {
    const d = detector({ engine });
    const out = await register(d.admin, 'meter-1', 'meter');
    expect(out).toMatchObject({ registered: true, device: { status: 'REGISTERED', deviceType: 'meter', seq: 0 } });
    expect(out.device.lastSeen).toBeUndefined();
    const { result, swept } = await d.send(['meter-1'], T0 + 10_000);
    expect(d.rejects.rejected).toEqual([]);
    expect(d.events.of('meter-1').map((e) => [e.eventId, e.type, e.deviceType, e.since - T0])).toEqual([
      ['meter-1#1', 'device.online', 'meter', 10_000],
    ]);
    const stats = engine === 'batched' ? swept.map((s) => s.merge) : [result.stats];
    expect(stats.reduce((n, s) => n + s.newDevices, 0)).toBe(1);
    expect(await getDevice(d.admin, 'meter-1')).toMatchObject({ status: 'ONLINE', lastSeen: T0 + 10_000 });
  });

  it('a registered device respects ANNOUNCE_NEW_DEVICES=false: online, no event', async () => {
    const d = detector({ engine, config: { announceNewDevices: false } });
    await register(d.admin, 'quiet', undefined);
    await d.send(['quiet'], T0 + 1_000);
    expect(d.events.events).toEqual([]);
    expect(d.table.items.get('quiet')).toMatchObject({ status: 'ONLINE', seq: 0, deviceType: 'tracker' });
  });

  it('a decommissioned device that keeps sending is rejected; registered again, it continues its seq', async () => {
    const d = detector({ engine });
    await register(d.admin, 'd', undefined);
    await d.send(['d'], T0 + 1_000);
    d.clock.t = T0 + 5_000;
    await forget(d.admin, 'd');
    await d.send(['d'], T0 + 10_000);
    expect(reasons(d.rejects.rejected)).toEqual([['UNREGISTERED', 'd']]);
    expect(d.table.items.get('d')).toMatchObject({ status: 'RETIRED', seq: 1 });

    d.clock.t = T0 + 20_000;
    expect(await register(d.admin, 'd', undefined)).toMatchObject({
      registered: true,
      device: { status: 'REGISTERED', seq: 1, since: T0 + 20_000 },
    });
    await d.send(['d'], T0 + 30_000);
    expect(d.events.of('d').map((e) => [e.eventId, e.type, e.since - T0])).toEqual([
      ['d#1', 'device.online', 1_000],
      ['d#2', 'device.online', 30_000],
    ]);
    expect(d.rejects.rejected).toHaveLength(1);
  });

  it('with ALLOW_LIST off, unknown devices register themselves as before, and registered ones too', async () => {
    const d = detector({ engine, config: { allowList: false } });
    await register(d.admin, 'known', undefined);
    await d.send(['known', 'stranger'], T0 + 1_000);
    expect(d.rejects.rejected).toEqual([]);
    expect(d.events.events.map((e) => [e.eventId, e.type]).sort()).toEqual([
      ['known#1', 'device.online'],
      ['stranger#1', 'device.online'],
    ]);
  });
});

describe('allow-list mode, per-device engine', () => {
  it('rejects each record of an unregistered device with its own body, beside the registered ones of an array', async () => {
    const d = detector({ engine: 'per-device' });
    await register(d.admin, 'known', undefined);
    const body = JSON.stringify([{ deviceId: 'known' }, { deviceId: 'stranger' }]);
    const batch = d.records([body, { deviceId: 'stranger' }], T0 + 1_000);
    const result = await d.ingest(batch);
    expect(result.failedRecordIds.size).toBe(0);
    expect(d.rejects.rejected.map((r) => [r.reason, r.recordId, r.body, r.source])).toEqual([
      ['UNREGISTERED', batch[0]!.id, body, 'queue'],
      ['UNREGISTERED', batch[1]!.id, JSON.stringify({ deviceId: 'stranger' }), 'queue'],
    ]);
    expect(result.stats).toMatchObject({ rejectedTotal: 2, rejected: { UNREGISTERED: 2 }, newDevices: 1 });
    expect(d.table.items.get('known')?.status).toBe('ONLINE');
  });

  it('an undelivered rejection fails its SQS record (retried), and is handed to the handler to log from Kinesis', async () => {
    const d = detector({ engine: 'per-device' });
    const refusing: RejectSink = { send: async (rejections) => ({ failed: rejections }) };
    const sqs = d.records([{ deviceId: 'stranger' }], T0);
    expect([...(await d.ingest(sqs, { rejects: refusing })).failedRecordIds]).toEqual([sqs[0]!.id]);
    const kinesis = d.records([{ deviceId: 'stranger' }], T0 + 1);
    const shard = await d.ingest(kinesis, { rejects: refusing, ordered: true });
    expect(shard.failedRecordIds.size).toBe(0);
    expect(shard.undeliveredRejections?.map((r) => [r.reason, r.recordId])).toEqual([['UNREGISTERED', kinesis[0]!.id]]);
  });

  it('messages that entered before the decommission stay stale, not rejected', async () => {
    const d = detector({ engine: 'per-device' });
    await register(d.admin, 'd', undefined);
    await d.send(['d'], T0 + 1_000);
    d.clock.t = T0 + 5_000;
    await forget(d.admin, 'd');
    const { result } = await d.send(['d'], T0 + 4_000);
    expect(result.stats).toMatchObject({ stale: 1, rejectedTotal: 0 });
    expect(d.rejects.rejected).toEqual([]);
  });
});

describe('allow-list mode, batched engine', () => {
  it('rejects a sighting once though the look back reads it again, and each later one again', async () => {
    const d = detector({ engine: 'batched' });
    await d.send(['stranger'], T0);
    // The next job's read reaches back over the same record (look back 5 s).
    await d.sweep(T0 + 2_000);
    expect(reasons(d.rejects.rejected)).toEqual([['UNREGISTERED', 'stranger']]);
    expect(JSON.parse(d.rejects.rejected[0]!.body)).toEqual({ deviceId: 'stranger', lastSeen: T0 });
    expect(d.rejects.rejected[0]!.source).toMatch(/^log\//);
    await d.send(['stranger'], T0 + 60_000);
    expect(d.rejects.rejected).toHaveLength(2);
  });

  it('rejects once also while a decommission note sends the device through its item again', async () => {
    const d = detector({ engine: 'batched' });
    await register(d.admin, 'd', undefined);
    await d.send(['d'], T0 + 1_000);
    d.clock.t = T0 + 5_000;
    await forget(d.admin, 'd');
    await d.send(['d'], T0 + 6_000);
    // The note and the sighting are both still within the next read's look back.
    await d.sweep(T0 + 9_000);
    expect(reasons(d.rejects.rejected)).toEqual([['UNREGISTERED', 'd']]);
  });

  it('hands back a rejection it could not deliver for the handler to log, and goes on', async () => {
    const d = detector({ engine: 'batched' });
    d.sweepDeps.rejects = { send: async (rejections) => ({ failed: rejections }) };
    const { swept } = await d.send(['stranger'], T0);
    expect(swept.flatMap((s) => s.undeliveredRejections.map((r) => r.reason))).toEqual(['UNREGISTERED']);
    expect(swept.every((s) => s.errors.length === 0)).toBe(true);
  });

  it('registration leaves a note: a device rejected before is taken from its next message on', async () => {
    const d = detector({ engine: 'batched' });
    await d.send(['late'], T0);
    d.clock.t = T0 + 3_000;
    await register(d.admin, 'late', 'meter');
    await d.send(['late'], T0 + 4_000);
    expect(d.rejects.rejected).toHaveLength(1);
    expect(d.events.of('late').map((e) => [e.type, e.since - T0])).toEqual([['device.online', 4_000]]);
  });
});

describe('registration (operator core)', () => {
  it('is idempotent, and leaves a registered or tracked device as it is', async () => {
    const d = detector({ engine: 'per-device' });
    const first = await register(d.admin, 'd', 'meter');
    d.clock.t = T0 + 1_000;
    expect(await register(d.admin, 'd', 'tracker')).toEqual({ registered: false, device: first.device });
    await d.send(['d'], T0 + 2_000);
    const online = await register(d.admin, 'd', undefined);
    expect(online).toMatchObject({ registered: false, device: { status: 'ONLINE', deviceType: 'meter' } });
    expect(d.table.items.get('d')?.expiresAt).toBeGreaterThan(T0);
  });

  it('writes the registered device in no index and with no expiry, nor counted', async () => {
    const d = detector({ engine: 'per-device' });
    await register(d.admin, 'd', undefined);
    const item = d.table.items.get('d')!;
    expect(item).toMatchObject({ status: 'REGISTERED', deviceType: 'tracker', ...TYPES.tracker });
    for (const key of ['shard', 'deadline', 'offlineShard', 'offlineKey', 'outboxShard', 'expiresAt'] as const) {
      expect(item[key]).toBeUndefined();
    }
    expect(await d.table.counts(['tracker', 'meter'])).toEqual({
      tracker: { online: 0, offline: 0 },
      meter: { online: 0, offline: 0 },
    });
  });

  it('re-registers a tombstone keeping messages before it out', async () => {
    const d = detector({ engine: 'per-device' });
    await register(d.admin, 'd', undefined);
    await d.send(['d'], T0 + 1_000);
    d.clock.t = T0 + 10_000;
    await forget(d.admin, 'd');
    d.clock.t = T0 + 11_000;
    await register(d.admin, 'd', undefined);
    // Entered before the registration: not a message of this life.
    const { result } = await d.send(['d'], T0 + 10_500);
    expect(result.stats.stale).toBe(1);
    expect(d.table.items.get('d')?.status).toBe('REGISTERED');
  });
});
