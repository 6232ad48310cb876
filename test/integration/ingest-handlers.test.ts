// Both ingest Lambdas, end to end on the engines: real queue/stream records in Lambda's event shape, device state
// in DynamoDB Local, rejects in an SQS queue, online events on an SNS topic read through a subscribed queue.
import {
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamCommand,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDeviceStore } from '../../lambdas/adapters/device-store.js';
import { ingestDepsFromEnv, kinesisIngestHandler, sqsIngestHandler } from '../../lambdas/ingest-handler.js';
import { createQueue, type Queue } from '../../sim/engines/resources.js';
import {
  createTestStack,
  drainQueue,
  type TestStack,
  testClients,
  uniqueName,
  waitForStreamActive,
} from '../support/aws.js';
import { lambdaContext, readKinesisEvent, receiveSqsEvent } from '../support/lambda-events.js';

const clients = testClients();
let stack: TestStack;
let ingestQueue: Queue;
let env: Record<string, string>;

beforeAll(async () => {
  stack = await createTestStack(clients, 'ingest');
  ingestQueue = await createQueue(clients.sqs, uniqueName('ingest-queue'));
  env = {
    TABLE_NAME: stack.tableName,
    REJECTS_QUEUE_URL: stack.rejects.url,
    ONLINE_TOPIC_ARN: stack.onlineTopic.arn,
    OFFLINE_TOPIC_ARN: stack.offlineTopic.arn,
    DEVICE_TYPES: JSON.stringify({
      tracker: { timeoutMs: 90_000 },
      meter: { timeoutMs: 900_000, precisionMs: 60_000 },
    }),
    DEFAULT_DEVICE_TYPE: 'tracker',
    FIELD_MAP: JSON.stringify({ deviceId: 'thingName' }),
  };
});
afterAll(async () => {
  await Promise.allSettled([stack.cleanup(), ingestQueue.delete()]);
});

const store = () => new DynamoDeviceStore(clients.dynamodb, { tableName: stack.tableName });
const eventsOf = async (queueUrl: string) =>
  (await drainQueue(clients.sqs, queueUrl)).map((m) => ({
    event: JSON.parse(m.Body!) as { eventId: string; type: string; deviceId: string; since: number },
    attributes: m.MessageAttributes,
  }));

describe('SQS ingest handler', () => {
  it('writes devices, rejects bad records with their reason, and announces new devices', async () => {
    const bodies = [
      JSON.stringify({ thingName: 'sqs-1' }),
      JSON.stringify({ thingName: 'sqs-2', deviceType: 'meter' }),
      JSON.stringify({ thingName: 'sqs-1' }),
      'not json at all',
      JSON.stringify({ thingName: 'bad id!' }),
      JSON.stringify({ deviceId: 'wrong-field' }),
    ];
    await clients.sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: ingestQueue.url,
        Entries: bodies.map((body, i) => ({ Id: String(i), MessageBody: body })),
      }),
    );
    const event = await receiveSqsEvent(clients.sqs, ingestQueue.url, ingestQueue.arn);
    expect(event.Records).toHaveLength(6);
    const deps = ingestDepsFromEnv(env, clients);
    const handler = sqsIngestHandler(() => deps);
    const response = (await handler(event, lambdaContext())) as SQSBatchResponse;
    expect(response.batchItemFailures).toEqual([]);

    const sqs1 = await store().get('sqs-1');
    const sentAt = Math.max(
      ...event.Records.filter((r) => r.body.includes('"sqs-1"')).map((r) => Number(r.attributes.SentTimestamp)),
    );
    expect(sqs1).toMatchObject({
      status: 'ONLINE',
      deviceType: 'tracker',
      lastSeen: sentAt,
      timeoutMs: 90_000,
      outbox: [],
    });
    expect(await store().get('sqs-2')).toMatchObject({ deviceType: 'meter', timeoutMs: 900_000, precisionMs: 60_000 });

    const rejects = await drainQueue(clients.sqs, stack.rejects.url);
    expect(rejects.map((m) => [m.Body, m.MessageAttributes?.reason?.StringValue]).sort()).toEqual(
      [
        ['not json at all', 'NOT_JSON'],
        [JSON.stringify({ thingName: 'bad id!' }), 'INVALID_DEVICE_ID'],
        [JSON.stringify({ deviceId: 'wrong-field' }), 'MISSING_DEVICE_ID'],
      ].sort(),
    );
    expect(rejects[0]?.MessageAttributes?.source?.StringValue).toBe(ingestQueue.arn);

    const online = await eventsOf(stack.onlineEvents.url);
    expect(online.map((o) => o.event.eventId).sort()).toEqual(['sqs-1#1', 'sqs-2#1']);
    const meter = online.find((o) => o.event.deviceId === 'sqs-2')!;
    expect(meter.event).toMatchObject({ type: 'device.online', deviceType: 'meter', seq: 1, timeoutMs: 900_000 });
    expect(meter.attributes?.type?.StringValue).toBe('device.online');
    expect(meter.attributes?.deviceType?.StringValue).toBe('meter');
  });

  it('reads its configuration from the environment in the deployed module', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, env, {
      AWS_ENDPOINT_URL_DYNAMODB: clients.endpoints.dynamodb,
      AWS_ENDPOINT_URL_SQS: clients.endpoints.sqs,
      AWS_ENDPOINT_URL_SNS: clients.endpoints.sns,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
    });
    try {
      const { handler } = await import('../../lambdas/ingest-sqs.js');
      await clients.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: ingestQueue.url,
          Entries: [{ Id: '0', MessageBody: '{"thingName":"env-1"}' }],
        }),
      );
      const event = await receiveSqsEvent(clients.sqs, ingestQueue.url, ingestQueue.arn);
      const response = (await handler(event, lambdaContext())) as SQSBatchResponse;
      expect(response.batchItemFailures).toEqual([]);
      expect(await store().get('env-1')).toMatchObject({ status: 'ONLINE' });
    } finally {
      process.env = saved;
    }
  });
});

describe('Kinesis ingest handler', () => {
  it('writes devices from single and aggregated records and rejects bad ones', async () => {
    const kinesis = clients.kinesis!;
    const streamName = uniqueName('ingest-stream');
    await kinesis.send(new CreateStreamCommand({ StreamName: streamName, ShardCount: 1 }));
    try {
      await waitForStreamActive(kinesis, streamName);
      const description = await kinesis.send(new DescribeStreamCommand({ StreamName: streamName }));
      const { StreamARN, Shards } = description.StreamDescription!;
      const data = [
        JSON.stringify({ thingName: 'kin-1' }),
        JSON.stringify([{ thingName: 'kin-2' }, { thingName: 'kin-3', ts: 'not a time' }, { thingName: 'kin-4' }]),
        '{"thingName": "kin-5"',
      ];
      await kinesis.send(
        new PutRecordsCommand({
          StreamName: streamName,
          Records: data.map((d, i) => ({ Data: Buffer.from(d), PartitionKey: `p${i}` })),
        }),
      );
      const event = await readKinesisEvent(kinesis, streamName, StreamARN!, Shards![0]!.ShardId!);
      expect(event.Records).toHaveLength(3);
      const handler = kinesisIngestHandler(() => ingestDepsFromEnv(env, clients));
      const response = (await handler(event, lambdaContext())) as SQSBatchResponse;
      expect(response.batchItemFailures).toEqual([]);

      const arrival = Math.round(event.Records[0]!.kinesis.approximateArrivalTimestamp * 1000);
      expect(await store().get('kin-1')).toMatchObject({ status: 'ONLINE', lastSeen: arrival });
      for (const id of ['kin-2', 'kin-4']) expect(await store().get(id)).toMatchObject({ status: 'ONLINE' });
      expect(await store().get('kin-3')).toBeUndefined();
      const rejects = await drainQueue(clients.sqs, stack.rejects.url);
      expect(rejects.map((m) => m.MessageAttributes?.reason?.StringValue).sort()).toEqual([
        'INVALID_TIMESTAMP',
        'NOT_JSON',
      ]);
      expect(rejects.find((m) => m.MessageAttributes?.reason?.StringValue === 'INVALID_TIMESTAMP')?.Body).toBe(
        JSON.stringify({ thingName: 'kin-3', ts: 'not a time' }),
      );
    } finally {
      await kinesis.send(new DeleteStreamCommand({ StreamName: streamName }));
    }
  });
});
