// The dispatch Lambda and probe crediting, end to end on the engines: sweep jobs on a fauxqs sweep queue, probes in
// a fauxqs ingest queue and in every open shard of a kinesis-local stream (also after a split), the live partitions
// and watermarks in DynamoDB Local, and both ingest handlers crediting the probes they read. A fake clock runs the
// dispatcher's minute instantly.
import {
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamSummaryCommand,
  type KinesisClient,
  ListShardsCommand,
  SplitShardCommand,
} from '@aws-sdk/client-kinesis';
import { GetQueueAttributesCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import type { KinesisStreamEvent, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoProbeKey } from '../../lambdas/adapters/probe-key.js';
import { DynamoWatermarkStore } from '../../lambdas/adapters/watermark-store.js';
import { probeBody } from '../../lambdas/core/probe.js';
import { dispatchDepsFromEnv, dispatchHandler } from '../../lambdas/dispatch.js';
import { ingestDepsFromEnv, kinesisIngestHandler, sqsIngestHandler } from '../../lambdas/ingest-handler.js';
import { createDeviceTable, createQueue, type Queue } from '../../sim/engines/resources.js';
import { drainQueue, SUITE, testClients, uniqueName, waitForStreamActive } from '../support/aws.js';
import { lambdaContext, readKinesisEvent, receiveSqsEvent, syntheticSqsRecord } from '../support/lambda-events.js';

const clients = testClients();
const kinesis = clients.kinesis as KinesisClient;
const SHARDS = 3;
const T0 = Date.now() - 120_000;

let tableName: string;
let dropTable: () => Promise<void>;
let sweepQueue: Queue;
let ingestQueue: Queue;
let streamName: string;
let streamArn: string;
let env: Record<string, string>;
let watermarks: DynamoWatermarkStore;

beforeAll(async () => {
  tableName = uniqueName('dispatch');
  streamName = uniqueName('probes');
  [dropTable, sweepQueue, ingestQueue] = await Promise.all([
    createDeviceTable(clients.dynamodb, tableName),
    createQueue(clients.sqs, uniqueName('sweep')),
    createQueue(clients.sqs, uniqueName('ingest')),
    kinesis.send(new CreateStreamCommand({ StreamName: streamName, ShardCount: 2 })),
  ]);
  // Created in the background (CREATING for seconds on AWS): probes can be put once it is ACTIVE.
  await waitForStreamActive(kinesis, streamName);
  const summary = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: streamName }));
  streamArn = summary.StreamDescriptionSummary!.StreamARN!;
  env = {
    TABLE_NAME: tableName,
    SHARD_COUNT: String(SHARDS),
    SWEEP_QUEUE_URL: sweepQueue.url,
    SWEEP_TICK_SECONDS: '10',
    INGEST_QUEUE_URLS: ingestQueue.url,
    INGEST_STREAM_ARNS: streamArn,
  };
  watermarks = new DynamoWatermarkStore(clients.dynamodb, tableName);
});
afterAll(async () => {
  await Promise.allSettled([
    dropTable(),
    sweepQueue.delete(),
    ingestQueue.delete(),
    kinesis.send(new DeleteStreamCommand({ StreamName: streamName })),
  ]);
});

/** Runs the dispatch Lambda for one minute starting at `start`, on a clock its sleeps advance. */
async function dispatchAt(start: number) {
  let clock = start;
  const deps = {
    ...dispatchDepsFromEnv(env, clients),
    now: () => clock,
    sleep: async (ms: number) => {
      clock += ms;
    },
  };
  await dispatchHandler(() => deps)({}, lambdaContext(70_000));
  return clock;
}

async function attributes(queueUrl: string) {
  const { Attributes } = await clients.sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: queueUrl,
      AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesDelayed'],
    }),
  );
  return {
    visible: Number(Attributes?.ApproximateNumberOfMessages),
    delayed: Number(Attributes?.ApproximateNumberOfMessagesDelayed),
  };
}

const shardIds = async () =>
  ((await kinesis.send(new ListShardsCommand({ StreamName: streamName }))).Shards ?? []).map((s) => s.ShardId!);
const partitionOf = (shardId: string) => `${streamArn}/${shardId}`;
/** Stamp and target of each probe (the signature is the ingest's to check). */
const probesIn = (event: KinesisStreamEvent) =>
  event.Records.map((r) => {
    const { probe, partition } = JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString()) as {
      probe: number;
      partition: string;
    };
    return { probe, partition };
  });

describe('dispatch Lambda', () => {
  let shardEvents: Map<string, KinesisStreamEvent>;

  it('enqueues one sweep job per shard per tick, probes every queue and open shard, and records them as live', async () => {
    await dispatchAt(T0);

    // Six ticks: tick 0 visible now, ticks 10..50 s delayed on both queues.
    expect(await attributes(sweepQueue.url)).toEqual({ visible: SHARDS, delayed: 5 * SHARDS });
    const jobs = (await drainQueue(clients.sqs, sweepQueue.url)).map((m) => JSON.parse(m.Body!));
    expect(jobs.sort((a, b) => a.shard.localeCompare(b.shard))).toEqual([
      { shard: '0' },
      { shard: '1' },
      { shard: '2' },
    ]);
    expect(await attributes(ingestQueue.url)).toEqual({ visible: 1, delayed: 5 });

    const [shard0, shard1] = await shardIds();
    expect((await watermarks.read()).live).toEqual([ingestQueue.arn, partitionOf(shard0!), partitionOf(shard1!)]);

    // Each open shard got one probe per tick, stamped when it was put, naming that shard.
    shardEvents = new Map();
    for (const shardId of [shard0!, shard1!]) {
      const event = await readKinesisEvent(kinesis, streamName, streamArn, shardId);
      shardEvents.set(shardId, event);
      expect(probesIn(event)).toEqual(
        [0, 10, 20, 30, 40, 50].map((s) => ({ probe: T0 + s * 1000, partition: partitionOf(shardId) })),
      );
    }
  });

  it('the Kinesis ingest credits each shard with the newest probe it committed', async () => {
    const deps = { ...ingestDepsFromEnv(env, clients), now: () => T0 + 60_000 };
    const handler = kinesisIngestHandler(() => deps);
    for (const event of shardEvents.values()) await handler(event, lambdaContext());
    const { marks } = await watermarks.read();
    for (const shardId of shardEvents.keys()) expect(marks[partitionOf(shardId)]).toBe(T0 + 50_000);
  });

  it('the SQS ingest credits a probe when the queue has no visible backlog (its own delayed probes do not count)', async () => {
    const event = await receiveSqsEvent(clients.sqs, ingestQueue.url, ingestQueue.arn);
    expect(event.Records.map((r) => JSON.parse(r.body))).toMatchObject([{ probe: T0, partition: ingestQueue.arn }]);
    const deps = { ...ingestDepsFromEnv(env, clients), now: () => T0 + 5_000 };
    await sqsIngestHandler(() => deps)(event, lambdaContext());
    expect((await watermarks.read()).marks[ingestQueue.arn]).toBe(T0);
  });

  it('the SQS ingest does not credit a probe that overtook a visible backlog', async () => {
    await clients.sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: ingestQueue.url,
        Entries: Array.from({ length: 10 }, (_, i) => ({
          Id: String(i),
          MessageBody: JSON.stringify({ deviceId: `d${i}` }),
        })),
      }),
    );
    await clients.sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: ingestQueue.url,
        Entries: [{ Id: 'x', MessageBody: '{"deviceId":"d10"}' }],
      }),
    );
    const key = await new DynamoProbeKey(clients.dynamodb, tableName).getOrCreate();
    const probe = (at: number, id: string): SQSEvent => ({
      Records: [syntheticSqsRecord(probeBody(key, at, ingestQueue.arn, ingestQueue.arn), at, ingestQueue.arn, id)],
    });
    const deps = { ...ingestDepsFromEnv(env, clients), now: () => T0 + 30_000 };
    const handler = sqsIngestHandler(() => deps);
    // 11 older messages still visible: the default threshold (10) refuses the credit.
    await handler(probe(T0 + 20_000, 'p1'), lambdaContext());
    expect((await watermarks.read()).marks[ingestQueue.arn]).toBe(T0);
    // Once they are taken (10 left visible, within one receive), the next probe is credited.
    await receiveSqsEvent(clients.sqs, ingestQueue.url, ingestQueue.arn, 1);
    await handler(probe(T0 + 25_000, 'p2'), lambdaContext());
    expect((await watermarks.read()).marks[ingestQueue.arn]).toBe(T0 + 25_000);
  });

  it('after a split, probes go to the open children only and the closed parent stops counting', async () => {
    const before = await kinesis.send(new ListShardsCommand({ StreamName: streamName }));
    const parent = before.Shards![0]!;
    const middle = (BigInt(parent.HashKeyRange!.StartingHashKey!) + BigInt(parent.HashKeyRange!.EndingHashKey!)) / 2n;
    await kinesis.send(
      new SplitShardCommand({
        StreamName: streamName,
        ShardToSplit: parent.ShardId!,
        NewStartingHashKey: String(middle),
      }),
    );
    // The split runs in the background (UPDATING for seconds on AWS, whatever an emulator's own delay): wait for it
    // by time, not by a count of calls. Once done, the parent is listed closed (an ending sequence number).
    await waitForStreamActive(kinesis, streamName);
    const openShards = async () =>
      ((await kinesis.send(new ListShardsCommand({ StreamName: streamName }))).Shards ?? [])
        .filter((s) => s.SequenceNumberRange?.EndingSequenceNumber === undefined)
        .map((s) => s.ShardId!);
    let open = await openShards();
    for (const until = Date.now() + SUITE.streamActiveSeconds * 1000; open.length < 3 && Date.now() < until; ) {
      await new Promise((resolve) => setTimeout(resolve, 500)); // polling a resource, not timing a behaviour
      open = await openShards();
    }
    expect(open).toHaveLength(3);
    expect(open).not.toContain(parent.ShardId);

    const T1 = T0 + 60_000;
    await dispatchAt(T1);
    const snapshot = await watermarks.read();
    expect(snapshot.live).toEqual([ingestQueue.arn, ...open.map(partitionOf)]);
    // The parent's watermark is forgotten; the children have none yet, which holds the cutoff until credited.
    expect(Object.keys(snapshot.marks)).not.toContain(partitionOf(parent.ShardId!));

    const parentProbes = probesIn(await readKinesisEvent(kinesis, streamName, streamArn, parent.ShardId!));
    expect(parentProbes.every((p) => p.probe < T1)).toBe(true);
    for (const shardId of open) {
      const probes = probesIn(await readKinesisEvent(kinesis, streamName, streamArn, shardId)).filter(
        (p) => p.probe >= T1,
      );
      expect(probes).toEqual(
        [0, 10, 20, 30, 40, 50].map((s) => ({ probe: T1 + s * 1000, partition: partitionOf(shardId) })),
      );
    }
  });
});
