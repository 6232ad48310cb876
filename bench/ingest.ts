// npm run bench:ingest — prints one JSON object:
// - the ingest core's CPU cost per message (parse, validate, coalesce, decide) against a store that answers
//   instantly, so only our code is measured;
// - DynamoDB write units per message for a simulated fleet, once every device has registered: the real handlers in
//   virtual time (sim/simulator.ts) on DynamoDB Local (units as it reports them with ReturnConsumedCapacity, which
//   applies DynamoDB's billing rules: 1 per started KB of item, an index key change 2, a projected-attribute change
//   1; failed conditional writes, which DynamoDB bills but does not report, are added at 1 per started KB),
//   including the sweep's re-arms, next to the naive design (every message moves the deadline) on the same engine;
// - the same, with tags in use (every message carries tag `site`, FIELD_MAP tags) next to the same fleet without,
//   on both engines: a message's tags ride on the write it makes anyway, so the heartbeat path's units must not move.
// BENCH_DEVICES and BENCH_FLEET_MINUTES make the fleet smaller or shorter (2,000 devices, 30 minutes after a 6-minute
// warm-up by default).
import '../sim/handler-env.js';
import { type EngineName, loadIngestConfig } from '../lambdas/core/config.js';
import type { DeviceState } from '../lambdas/core/device.js';
import { DeviceCache } from '../lambdas/core/device-cache.js';
import { type IngestRecord, ingestBatch } from '../lambdas/core/ingest.js';
import type { DeviceStore } from '../lambdas/core/ports.js';
import { RunConsole } from '../sim/console.js';
import { startDynamoDbLocal } from '../sim/engines/engines.js';
import { random } from '../sim/random.js';
import { steadyScenario } from '../sim/scenario.js';
import { runVirtual } from '../sim/simulator.js';

const MIN = 60_000;
const FLEET_DEVICES = Number(process.env.BENCH_DEVICES ?? 2_000);
const FLEET_MINUTES = Number(process.env.BENCH_FLEET_MINUTES ?? 30);
/** Sites of the tagged fleet: tag values vary across devices, as a real fleet's do. */
const TAGGED_SITES = 10;

async function cpuOfCore() {
  const config = loadIngestConfig({ TABLE_NAME: 'bench', DEVICE_TYPES: '{"meter":{"timeoutMs":300000}}' });
  const state = (deviceId: string): DeviceState => ({
    deviceId,
    deviceType: 'meter',
    timeoutMs: 300_000,
    precisionMs: 0,
    lastSeen: 0,
    status: 'ONLINE',
    since: 0,
    seq: 1,
    shard: '1',
    deadline: 1e15,
    outbox: [],
  });
  let reads = 0;
  const instant: DeviceStore = {
    touch: async (r) => ({ applied: true, before: state(r.deviceId), units: 1 }),
    commit: async () => {
      throw new Error('not reached');
    },
    rearm: async () => ({ applied: true, before: state('x') }),
    park: async () => ({ applied: true, before: state('x') }),
    clearOutbox: async () => true,
    get: async () => {
      reads++;
      return undefined;
    },
    queryExpired: async () => ({ items: [] }),
    queryOutbox: async () => ({ items: [] }),
  };
  const deps = {
    config,
    store: instant,
    publisher: { publish: async () => ({ failed: [] }) },
    rejects: { send: async () => ({ failed: [] }) },
    cache: new DeviceCache(config.cacheSize),
    now: Date.now,
  };
  const rand = random(7);
  const batches: IngestRecord[][] = [];
  const t0 = 1_800_000_000_000;
  for (let b = 0; b < 2_000; b++) {
    batches.push(
      Array.from({ length: 100 }, (_, i) => {
        const t = t0 + (b * 100 + i) * 3;
        return {
          id: `${b}-${i}`,
          body: JSON.stringify({ deviceId: `device-${Math.floor(rand() * 2_000)}`, ts: t }),
          enteredAt: t,
          partition: 'q',
        };
      }),
    );
  }
  for (const batch of batches.slice(0, 200)) await ingestBatch(batch, deps, { ordered: false }); // warm up the JIT
  const cpu = process.cpuUsage();
  const wall = performance.now();
  for (const batch of batches) await ingestBatch(batch, deps, { ordered: false });
  const used = process.cpuUsage(cpu);
  const seconds = (performance.now() - wall) / 1000;
  const messages = batches.length * 100;
  return {
    messagesPerSecond: Math.round(messages / seconds),
    cpuMicrosPerMessage: Number(((used.user + used.system) / messages).toFixed(2)),
    coreReadsPerMessage: reads / messages,
  };
}

/** The fleet through the real handlers in virtual time (sim/simulator.ts), on one DynamoDB Local. */
async function fleetOnDynamoDbLocal() {
  const engine = await startDynamoDbLocal();
  const fleet = { devices: FLEET_DEVICES, warmUpMs: 6 * MIN, measuredMs: FLEET_MINUTES * MIN, shardCount: 4 };
  const run = async (
    name: string,
    precisionMs: number,
    affinity: 'device' | 'sqs',
    variant: { naive?: boolean; sites?: number; engine?: EngineName } = {},
  ) => {
    const report = await runVirtual({
      scenario: steadyScenario(fleet.devices, precisionMs, fleet.shardCount, variant.sites),
      durationMs: fleet.warmUpMs + fleet.measuredMs,
      warmUpMs: fleet.warmUpMs,
      seed: 1,
      console: new RunConsole(process.stderr, 0, true),
      signal: new AbortController().signal,
      dynamodbEndpoint: engine.endpoint,
      tableName: `bench-${name}`,
      affinity,
      containers: affinity === 'device' ? 4 : 20,
      naive: variant.naive,
      engine: variant.engine,
    });
    const s = report.summary;
    // After the warm-up: every device registered, as a deployed fleet's steady state.
    return {
      messages: s.messages,
      wruPerMessage: s.steadyWruPerMessage as number,
      rruPerMessage: s.steadyRruPerMessage as number,
      allInWruPerMessage: s.wruPerMessage,
      readsPerMessage: s.readsPerMessage as number,
    };
  };
  try {
    const precision0 = await run('p0-kinesis', 0, 'device');
    const precision0Sqs = await run('p0-sqs', 0, 'sqs');
    const precision60 = await run('p60-kinesis', MIN, 'device');
    const precision60Sqs = await run('p60-sqs', MIN, 'sqs');
    const naive = await run('naive', 0, 'sqs', { naive: true });
    const sites = TAGGED_SITES;
    const precision0SqsTags = await run('p0-sqs-tags', 0, 'sqs', { sites });
    const precision60Tags = await run('p60-kinesis-tags', MIN, 'device', { sites });
    const batched = await run('batched', 0, 'sqs', { engine: 'batched' });
    const batchedTags = await run('batched-tags', 0, 'sqs', { engine: 'batched', sites });
    const round = (n: number) => Number(n.toFixed(3));
    const sideBySide = (without: { wruPerMessage: number }, withTags: { wruPerMessage: number }) => ({
      withoutTags: round(without.wruPerMessage),
      withTags: round(withTags.wruPerMessage),
    });
    return {
      readsPerMessage: Math.max(precision0.readsPerMessage, precision0Sqs.readsPerMessage, precision60.readsPerMessage),
      wruPerMessage: {
        precision0: round(precision0.wruPerMessage),
        precision60s: round(precision60.wruPerMessage),
        precision0NoAffinity: round(precision0Sqs.wruPerMessage),
        precision60sNoAffinity: round(precision60Sqs.wruPerMessage),
      },
      naiveWruPerMessage: round(naive.wruPerMessage),
      /** Write units per message after every device registered, every message carrying tag `site` or none. */
      tagsFleet: `every message carries tag site (${sites} sites, FIELD_MAP {"tags": {"site": "site"}})`,
      tagsWruPerMessage: {
        perDevicePrecision0Sqs: sideBySide(precision0Sqs, precision0SqsTags),
        perDevicePrecision60sKinesis: sideBySide(precision60, precision60Tags),
        batched: sideBySide(batched, batchedTags),
      },
      ratioToNaive: {
        precision0: round(precision0.wruPerMessage / naive.wruPerMessage),
        precision60s: round(precision60.wruPerMessage / naive.wruPerMessage),
        precision0NoAffinity: round(precision0Sqs.wruPerMessage / naive.wruPerMessage),
        precision60sNoAffinity: round(precision60Sqs.wruPerMessage / naive.wruPerMessage),
      },
      fleet: {
        ...fleet,
        scenario: steadyScenario(fleet.devices, 0, fleet.shardCount).description,
        engine: 'DynamoDB Local (units from ReturnConsumedCapacity; failed conditional writes 1 unit each)',
        affinity: 'Kinesis: a device always reaches the same container (4); NoAffinity: SQS, batches spread over 20',
      },
      runs: {
        precision0,
        precision0Sqs,
        precision60,
        precision60Sqs,
        naive,
        precision0SqsTags,
        precision60Tags,
        batched,
        batchedTags,
      },
    };
  } finally {
    await engine.stop();
  }
}

const core = await cpuOfCore();
const fleet = await fleetOnDynamoDbLocal();
console.log(JSON.stringify({ benchmark: 'ingest', ...core, ...fleet }, null, 2));
