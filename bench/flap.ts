// npm run bench:flap — prints one JSON object: what flap damping does to a fleet of flapping devices, measured on
// DynamoDB Local with the real ingest and sweep cores in virtual time. The same fleet runs twice, damping off and on:
// every device sends every 20 s for 2 min, falls silent for 2 min (offline after 60 s), five times over, then stays
// online. Reported per run: events published, write units (as DynamoDB Local bills them, failed conditional writes
// estimated by the adapter) per message and per committed transition, outbox clears, and, with damping, how late the
// settled event came after the device had been stable for the window.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDeviceStore } from '../lambdas/adapters/device-store.js';
import { loadIngestConfig } from '../lambdas/core/config.js';
import type { DeviceEvent } from '../lambdas/core/device.js';
import { DeviceCache } from '../lambdas/core/device-cache.js';
import { flapDampingByType } from '../lambdas/core/flap.js';
import { type IngestRecord, ingestBatch } from '../lambdas/core/ingest.js';
import type { DeviceStore } from '../lambdas/core/ports.js';
import { sweepShard } from '../lambdas/core/sweep.js';
import { VirtualClock } from '../sim/clock.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, startDynamoDbLocal } from '../sim/engines/engines.js';
import { createDeviceTable } from '../sim/engines/resources.js';
import { MemoryWatermarks } from '../sim/memory/watermark-store.js';

const DEVICES = Number(process.env.BENCH_DEVICES ?? 300);
const T0 = 1_700_000_000_000;
const S = 1_000;
const MIN = 60 * S;
const TIMEOUT = MIN;
const HEARTBEAT = 20 * S;
const FLAP = { transitions: 4, windowMs: 10 * MIN };
const CYCLES = 5;
/** Up 2 min, down 2 min, CYCLES times, then up for the rest. */
const FLAPPING_UNTIL = CYCLES * 4 * MIN;
const END = FLAPPING_UNTIL + 15 * MIN;
const TICK = 10 * S;
const SHARDS = 4;

const up = (t: number) => t >= FLAPPING_UNTIL || t % (4 * MIN) < 2 * MIN;

async function run(endpoint: string, damping: boolean) {
  const dynamodb = new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  const tableName = `flap-${damping ? 'on' : 'off'}-${Date.now()}`;
  const drop = await createDeviceTable(dynamodb, tableName);
  const config = {
    ...loadIngestConfig({
      TABLE_NAME: tableName,
      SHARD_COUNT: String(SHARDS),
      DEVICE_TYPES: JSON.stringify({
        flappy: { timeoutMs: TIMEOUT, precisionMs: 0, ...(damping ? { flap: FLAP } : {}) },
      }),
    }),
  };
  const adapter = new DynamoDeviceStore(dynamodb, { tableName });
  let clears = 0;
  const store: DeviceStore = Object.assign(Object.create(adapter) as DeviceStore, {
    clearOutbox: (id: string, seq: number) => {
      clears++;
      return adapter.clearOutbox(id, seq);
    },
  });
  const events: DeviceEvent[] = [];
  const publisher = {
    publish: async (batch: DeviceEvent[]) => {
      events.push(...batch);
      return { failed: [] };
    },
  };
  const clock = new VirtualClock(T0);
  const now = clock.now;
  const cache = new DeviceCache(config.cacheSize);
  const watermarks = new MemoryWatermarks();
  const settings = {
    toleranceMs: 0,
    budgetMs: 60 * MIN,
    pageSize: 100,
    concurrency: 16,
    republishAfterMs: 15 * S,
    flapDamping: flapDampingByType(config.deviceTypes),
  };
  const queue = { enqueue: async () => undefined };
  let messages = 0;
  let units = 0;
  let transitions = 0;
  let settled = 0;
  let id = 0;
  for (let offset = 0; offset <= END; offset += TICK) {
    clock.t = T0 + offset;
    const records: IngestRecord[] = [];
    if (up(offset) && offset % HEARTBEAT === 0) {
      for (let d = 0; d < DEVICES; d++) {
        records.push({
          id: String(++id),
          body: JSON.stringify({ deviceId: `dev-${d}`, deviceType: 'flappy' }),
          enteredAt: clock.t,
          partition: 'p',
        });
      }
    }
    if (records.length > 0) {
      const result = await ingestBatch(
        records,
        { config, store, publisher, rejects: nobody, cache, now },
        {
          ordered: false,
        },
      );
      if (result.failedRecordIds.size > 0) throw new Error(`${result.failedRecordIds.size} records failed`);
      messages += result.stats.messages;
      units += result.stats.writeUnits;
      transitions += result.stats.onlineTransitions;
    }
    for (let shard = 0; shard < SHARDS; shard++) {
      const stats = await sweepShard({ shard: String(shard) }, { settings, store, publisher, watermarks, queue, now });
      if (stats.errors.length > 0) throw new Error(String(stats.errors[0]));
      units += stats.writeUnits;
      transitions += stats.offline;
      settled += stats.settled;
    }
  }
  await drop();
  dynamodb.destroy();
  const byType = (type: DeviceEvent['type']) => events.filter((e) => e.type === type).length;
  // Settled late = detected - (last transition + window): the sweep tick and the park bound it.
  const settleLateness = events.filter((e) => e.settled).map((e) => e.detectedAt - (e.since + FLAP.windowMs));
  return {
    damping: damping ? FLAP : 'off',
    messages,
    transitionsCommitted: transitions,
    eventsPublished: events.length,
    eventsPerDevice: round(events.length / DEVICES),
    events: { online: byType('device.online'), offline: byType('device.offline'), flapping: byType('device.flapping') },
    settled,
    writeUnits: round(units),
    writeUnitsPerMessage: round(units / messages),
    writeUnitsPerTransition: round(units / transitions),
    outboxClears: clears,
    ...(settleLateness.length > 0
      ? { settleLatenessMs: { min: Math.min(...settleLateness), max: Math.max(...settleLateness) } }
      : {}),
  };
}

const nobody = { send: async () => ({ failed: [] }) };
const round = (n: number) => Math.round(n * 1000) / 1000;

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const engine = await startDynamoDbLocal();
try {
  const off = await run(engine.endpoint, false);
  const on = await run(engine.endpoint, true);
  const result = {
    benchmark: 'flap-damping',
    engine: 'DynamoDB Local',
    devices: DEVICES,
    scenario: `timeout ${TIMEOUT / S} s, heartbeat ${HEARTBEAT / S} s; ${CYCLES} cycles of 2 min up / 2 min silent, then ${(END - FLAPPING_UNTIL) / MIN} min up; sweep every ${TICK / S} s`,
    runs: [off, on],
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  await engine.stop();
}
