// npm run bench:sweep — prints one JSON object: how fast one sweep worker turns expired devices into committed and
// published offline transitions against DynamoDB Local, what each detected device costs in read and write units by
// DynamoDB's billing rules, and the projected time for 1,000,000 simultaneous expiries over 64 shards.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { startFauxqs } from 'fauxqs';
import { DynamoDeviceStore } from '../lambdas/adapters/device-store.js';
import { EventTopics } from '../lambdas/adapters/event-topics.js';
import { mapLimit } from '../lambdas/core/concurrency.js';
import { offlineAt } from '../lambdas/core/policy.js';
import type { DeviceStore, EventPublisher } from '../lambdas/core/ports.js';
import { batchedSizing, batchedSweepConcurrency } from '../lambdas/core/sizing.js';
import { type SweepDeps, type SweepSettings, sweepShard } from '../lambdas/core/sweep.js';
import { A, KEY } from '../lambdas/core/table-schema.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION, startDynamoDbLocal } from '../sim/engines/engines.js';
import { createDeviceTable, createQueue, createTopic, subscribeQueue } from '../sim/engines/resources.js';
import { MemoryDeviceStore } from '../sim/memory/device-store.js';
import { itemSize } from '../sim/memory/item-size.js';

const DEVICES = Number(process.env.BENCH_DEVICES ?? 2_000);
const POLICY = { timeoutMs: 300_000, precisionMs: 0 };
const T0 = 1_700_000_000_000;
const SETTINGS: SweepSettings = {
  toleranceMs: 0,
  budgetMs: 10 * 60_000,
  pageSize: Number(process.env.BENCH_PAGE_SIZE ?? 100),
  concurrency: Number(process.env.BENCH_CONCURRENCY ?? 16),
  republishAfterMs: 15_000,
};
// Design figures the projection uses.
const EXPIRIES = 1_000_000;
const SHARDS = 64;
const PARTITION_WCU = 1_000;
const PARTITION_RCU = 3_000;
/** Base-table partitions: the table must absorb the design's 100k messages/s reconnect bursts at ≥1 WRU each. */
const BASE_TABLE_WCU = 100_000;
/** SNS Publish quota, messages per second per account (us-east-1; other regions are lower). */
const SNS_MESSAGES_PER_SECOND = 30_000;
/** A DynamoDB request's latency from a Lambda in the region, for the batched engine's projection. */
const REQUEST_LATENCY_MS = 10;

interface Counts {
  rearmApplied: number;
  rearmFailed: number;
  commitApplied: number;
  commitFailed: number;
  clears: number;
  gets: number;
  expiredPages: number;
  expiredEntries: number;
  outboxPages: number;
  readUnits: number;
  engineUnits: number;
}

/** Counts every request and prices the queries by the read rules: eventually consistent, 0.5 RCU per started 4 KB
 * of the entries a page returns (at least 0.5 per page). */
function counting(store: DeviceStore, counts: Counts): DeviceStore {
  const pageUnits = (bytes: number) => Math.max(1, Math.ceil(bytes / 4096)) * 0.5;
  return {
    touch: (r) => store.touch(r),
    park: (r) => store.park(r),
    rearm: async (id, policy, cutoff) => {
      const out = await store.rearm(id, policy, cutoff);
      if (out.applied) counts.rearmApplied++;
      else counts.rearmFailed++;
      counts.engineUnits += out.units ?? 0;
      return out;
    },
    commit: async (request) => {
      const out = await store.commit(request);
      if (out.applied) counts.commitApplied++;
      else counts.commitFailed++;
      counts.engineUnits += out.units ?? 0;
      return out;
    },
    clearOutbox: async (id, seq) => {
      counts.clears++;
      return store.clearOutbox(id, seq);
    },
    get: async (id) => {
      counts.gets++;
      counts.readUnits += 1; // strongly consistent, items under 4 KB
      return store.get(id);
    },
    queryExpired: async (shard, cutoff, limit, cursor) => {
      const page = await store.queryExpired(shard, cutoff, limit, cursor);
      counts.expiredPages++;
      counts.expiredEntries += page.items.length;
      // An index entry: table key, index keys, projected attributes.
      const bytes = page.items.reduce(
        (n, e) =>
          n +
          itemSize({
            [KEY]: e.deviceId,
            [A.shard]: shard,
            [A.deadline]: e.deadline,
            [A.timeoutMs]: e.timeoutMs,
            [A.precisionMs]: e.precisionMs,
          }),
        0,
      );
      counts.readUnits += pageUnits(bytes);
      return page;
    },
    queryOutbox: async (shard, before, limit, cursor) => {
      const page = await store.queryOutbox(shard, before, limit, cursor);
      counts.outboxPages++;
      const bytes = page.items.reduce(
        (n, id) => n + itemSize({ [KEY]: id, [A.outboxShard]: shard, [A.outboxAt]: before }),
        0,
      );
      counts.readUnits += pageUnits(bytes);
      return page;
    },
  };
}

const emptyCounts = (): Counts => ({
  rearmApplied: 0,
  rearmFailed: 0,
  commitApplied: 0,
  commitFailed: 0,
  clears: 0,
  gets: 0,
  expiredPages: 0,
  expiredEntries: 0,
  outboxPages: 0,
  readUnits: 0,
  engineUnits: 0,
});

async function seed(store: DeviceStore, prefix: string, count: number) {
  const ids = Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(7, '0')}`);
  await mapLimit(ids, 32, async (deviceId) => {
    const state = {
      deviceType: 'meter',
      ...POLICY,
      lastSeen: T0,
      status: 'ONLINE' as const,
      since: T0,
      seq: 1,
      shard: prefix,
      deadline: offlineAt(T0, POLICY),
    };
    const out = await store.commit({
      deviceId,
      expect: { absent: true },
      state,
      append: [],
      outboxShard: prefix,
      outboxAt: T0,
    });
    if (!out.applied) throw new Error(`seed ${deviceId} failed`);
  });
  return ids;
}

/** One worker sweeping one shard of `count` expired devices; returns transitions per second and the counts. */
async function sweepRun(store: DeviceStore, publisher: EventPublisher, shard: string, count: number) {
  await seed(store, shard, count);
  const counts = emptyCounts();
  const deps: SweepDeps = {
    settings: SETTINGS,
    store: counting(store, counts),
    publisher,
    watermarks: { read: async () => ({ live: [], marks: {} }) },
    queue: { enqueue: async () => undefined },
    now: () => T0 + POLICY.timeoutMs + 1_000,
  };
  const started = process.hrtime.bigint();
  const stats = await sweepShard({ shard }, deps);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (stats.offline !== count || stats.published !== count) {
    throw new Error(`expected ${count} transitions published, got ${stats.offline} / ${stats.published}`);
  }
  return { rate: count / seconds, seconds, counts };
}

async function main() {
  const dynamo = await startDynamoDbLocal();
  const fauxqs = await startFauxqs({ port: 0, logger: false });
  const common = { region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS };
  const client = new DynamoDBClient({ ...common, endpoint: dynamo.endpoint });
  try {
    const tableName = 'bench-sweep';
    await createDeviceTable(client, tableName);
    const store = new DynamoDeviceStore(client, { tableName });

    const noop: EventPublisher = { publish: async () => ({ failed: [] }) };
    await sweepRun(store, noop, 'warm', 200); // JIT and engine warm-up, not reported
    const run = await sweepRun(store, noop, 'noop', DEVICES);
    // The same worker over the in-memory model: our own CPU per transition, no I/O (an upper bound the engine hides).
    const inMemory = await sweepRun(new MemoryDeviceStore(), noop, 'memory', DEVICES);

    const { SNSClient } = await import('@aws-sdk/client-sns');
    const { SQSClient } = await import('@aws-sdk/client-sqs');
    const sqsEndpoint = `http://127.0.0.1:${fauxqs.port}`;
    const sns = new SNSClient({ ...common, endpoint: sqsEndpoint });
    const sqs = new SQSClient({ ...common, endpoint: sqsEndpoint });
    const topic = await createTopic(sns, 'bench-offline');
    const queue = await createQueue(sqs, 'bench-offline-events');
    await subscribeQueue(sns, topic.arn, queue.arn);
    const topics = new EventTopics(sns, { online: topic.arn, offline: topic.arn });
    const viaFauxqs = await sweepRun(store, topics, 'sns', Math.min(DEVICES, 1_000));

    // Item sizes for the write rules, measured on a real committed item with its outbox entry.
    const doc = DynamoDBDocumentClient.from(client);
    await seed(store, 'size', 1);
    const committed = await store.commit({
      deviceId: 'size-0000000',
      expect: { seq: 1, status: 'ONLINE', lastSeenAtMost: T0 },
      state: { deviceType: 'meter', ...POLICY, lastSeen: T0, status: 'OFFLINE', since: T0 + POLICY.timeoutMs, seq: 2 },
      append: [
        {
          eventId: 'size-0000000#2',
          type: 'device.offline',
          deviceId: 'size-0000000',
          deviceType: 'meter',
          seq: 2,
          since: T0 + POLICY.timeoutMs,
          lastSeen: T0,
          timeoutMs: POLICY.timeoutMs,
          detectedAt: T0 + POLICY.timeoutMs + 1_000,
        },
      ],
      outboxShard: 'size',
      outboxAt: T0,
    });
    if (!committed.applied) throw new Error('size probe commit failed');
    const raw = (await doc.send(new GetCommand({ TableName: tableName, Key: { [KEY]: 'size-0000000' } }))).Item!;
    const itemBytes = itemSize(raw);
    const baseUnits = Math.max(1, Math.ceil(itemBytes / 1024));

    const c = run.counts;
    const detected = c.commitApplied;
    // Billing rules: a write costs 1 WRU per started KB of the item (the larger of before and after); a failed
    // condition costs the same; removing an index's keys costs that index 1 (delete), adding them 1 (put).
    const wru = {
      failedRearm: baseUnits,
      offlineCommit: baseUnits + 1 /* byDeadline delete */ + 1 /* byOutbox put */ + 1 /* byOffline put */,
      clearOutbox: baseUnits + 1 /* byOutbox delete */,
    };
    const writeUnits =
      (c.rearmFailed + c.commitFailed) * baseUnits +
      c.rearmApplied * (baseUnits + 2) +
      c.commitApplied * wru.offlineCommit +
      c.clears * wru.clearOutbox;
    // Cross-check: DynamoDB Local reports consumed units for the re-arm and the commit (the adapter adds the failed
    // condition's unit); the clear's units are not returned, so the check leaves it out.
    const rulesRearmCommit =
      (c.rearmFailed + c.commitFailed) * baseUnits +
      c.rearmApplied * (baseUnits + 2) +
      c.commitApplied * wru.offlineCommit;
    const writeUnitsPerDetectedDevice = writeUnits / detected;
    const readUnitsPerDetectedDevice = c.readUnits / detected;

    // Projection: 1M expiries spread evenly over 64 shards, one worker per shard in parallel.
    const perShard = EXPIRIES / SHARDS;
    const bounds = {
      workerSeconds: perShard / run.rate,
      deadlineIndexPartitionSeconds: (perShard * 1) / PARTITION_WCU,
      outboxIndexPartitionSeconds: (perShard * 2) / PARTITION_WCU,
      // byOffline has as many partitions per device type as the deadline index has shards (one type, worst case).
      offlineIndexPartitionSeconds: (perShard * 1) / PARTITION_WCU,
      // Index queries only: the sweep's item reads (read-first in a storm) go to the base table's partitions.
      deadlineIndexReadSeconds: (perShard * ((c.readUnits - c.gets) / detected)) / PARTITION_RCU,
      baseTableSeconds: (EXPIRIES * baseUnits * 3) / BASE_TABLE_WCU,
      snsPublishSeconds: EXPIRIES / SNS_MESSAGES_PER_SECOND,
    };
    const projected = Math.max(...Object.values(bounds));

    // The batched engine at 1M devices: 8 shards (batchedSizing), each job settling batchedSweepConcurrency(8) = 128
    // devices at once. Its per-device commits are the per-device engine's (same requests, same index writes, spread
    // over the same 64 index shards); only the workers differ: 8 instead of 64, each bounded by request latency
    // (3 sequential requests a device: read, commit, clear) or by our own code's in-memory rate, whichever is lower.
    const batchedSizingAt1M = batchedSizing({ devices: EXPIRIES, messagesPerSecond: EXPIRIES / 60 });
    const batchedConcurrency = batchedSweepConcurrency(batchedSizingAt1M.shardCount);
    const batchedWorkerRate = Math.min(
      batchedConcurrency / ((3 * REQUEST_LATENCY_MS) / 1000),
      inMemory.rate * (batchedConcurrency / SETTINGS.concurrency),
    );
    const batchedBounds = {
      ...bounds,
      workerSeconds: EXPIRIES / batchedSizingAt1M.shardCount / batchedWorkerRate,
    };
    const batchedProjected = Math.max(...Object.values(batchedBounds));

    const result = {
      benchmark: 'sweep',
      devicesPerRun: DEVICES,
      transitionsPerSecondPerWorker: Math.round(run.rate),
      publisher: 'no-op (counts events; isolates DynamoDB + our code)',
      transitionsPerSecondPerWorkerWithFauxqsSns: Math.round(viaFauxqs.rate),
      transitionsPerSecondPerWorkerInMemoryStore: Math.round(inMemory.rate),
      workerSettings: { pageSize: SETTINGS.pageSize, concurrency: SETTINGS.concurrency },
      readUnitsPerDetectedDevice: Number(readUnitsPerDetectedDevice.toFixed(4)),
      writeUnitsPerDetectedDevice: Number(writeUnitsPerDetectedDevice.toFixed(3)),
      writeUnitsBreakdown: { ...wru, itemBytesWithOutbox: itemBytes },
      crossCheckRearmPlusCommitUnitsPerDevice: {
        byRules: Number((rulesRearmCommit / detected).toFixed(3)),
        reportedByDynamoDbLocal: Number((c.engineUnits / detected).toFixed(3)),
      },
      requestsPerDetectedDevice: Number(
        ((c.rearmApplied + c.rearmFailed + c.commitApplied + c.commitFailed + c.clears) / detected).toFixed(3),
      ),
      projectedSecondsFor1MExpiries: Number(projected.toFixed(1)),
      projectionBounds: Object.fromEntries(Object.entries(bounds).map(([k, v]) => [k, Number(v.toFixed(1))])),
      batchedEngine: {
        shards: batchedSizingAt1M.shardCount,
        concurrencyPerJob: batchedConcurrency,
        workerRatePerSecond: Math.round(batchedWorkerRate),
        projectedSecondsFor1MExpiries: Number(batchedProjected.toFixed(1)),
        projectionBounds: Object.fromEntries(Object.entries(batchedBounds).map(([k, v]) => [k, Number(v.toFixed(1))])),
        assumption: `a worker (one batched sweep job) settles ${batchedConcurrency} devices at once, each 3 sequential requests of ${REQUEST_LATENCY_MS} ms (DynamoDB's single-digit-ms latency from Lambda in the region, rounded up), capped by our code's in-memory rate scaled to that concurrency; the other bounds are the per-device engine's (same writes, same 64 index shards)`,
      },
      goalSeconds: 60,
      assumptions: [
        `Measured on DynamoDB Local (in memory) on this machine: one worker = one sweepShard job, ${SETTINGS.concurrency} devices in parallel, pages of ${SETTINGS.pageSize}; publisher no-op (the fauxqs figure adds SNS PublishBatch to fauxqs). The engine is the limit here (about 3 writes per transition at its ~1k writes/s on 2 cores; concurrency 8 to 64 measures the same), so this understates a worker against DynamoDB; the in-memory figure is our own code's ceiling.`,
        'Every device found is expired (a mass disconnect): on the first page of a job each costs a failed re-arm, then (the job having found mostly expired devices) a strongly consistent read instead; then the offline commit and the outbox clear.',
        'Reads: Query is eventually consistent, 0.5 RCU per started 4 KB of the entries a page returns (min 0.5 per page); an entry is its table key + index keys + projected timeoutMs/precisionMs, sized by the attribute-name+value rules without the 100-byte storage overhead. The per-job outbox re-publish query (empty here) is included.',
        `Writes: 1 WRU per started KB of the item (${itemBytes} bytes with its outbox entry); a failed conditional write costs the same; the offline commit removes the byDeadline keys (1) and adds the byOutbox and byOffline keys (1 each); the clear removes the byOutbox keys (1).`,
        `Projection: ${EXPIRIES} expiries spread evenly over ${SHARDS} shards, one sweep worker per shard at once (sweepMaxConcurrency >= ${SHARDS}; the construct's default of 20 would take ${SHARDS}/20 as long on the worker bound), each at the measured per-worker rate; continuations add nothing but one SQS hop per budget.`,
        `Per-partition limits: ${PARTITION_WCU} WCU/s and ${PARTITION_RCU} RCU/s; each shard's byDeadline and byOutbox key sits in its own index partition (true once the indexes have split or were pre-warmed: an on-demand index that never saw storm traffic starts near 4,000 WCU/s in total and must be warmed, e.g. with WarmThroughput).`,
        `Base table: 3 writes per detected device against ${BASE_TABLE_WCU} WCU/s, the capacity the design's 100k messages/s reconnect bursts already require; SNS: ${SNS_MESSAGES_PER_SECOND} messages/s account quota (us-east-1).`,
        'projectedSecondsFor1MExpiries = the largest bound: time from the first sweep job to the last event published, not counting the up-to-one tick before the first job.',
      ],
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    client.destroy();
    await fauxqs.stop();
    await dynamo.stop();
  }
}

await main();
