// What happens when things go wrong: a device's writes throttled past the SDK's retries, and a flood of bad input.
import { DynamoDBClient, ProvisionedThroughputExceededException } from '@aws-sdk/client-dynamodb';
import type { KinesisStreamBatchResponse, SQSBatchResponse } from 'aws-lambda';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDeviceStore } from '../../lambdas/adapters/device-store.js';
import { ingestDepsFromEnv, kinesisIngestHandler, sqsIngestHandler } from '../../lambdas/ingest-handler.js';
import { LOCAL_CREDENTIALS } from '../../sim/engines/engines.js';
import { createTestStack, drainQueue, SUITE, type TestStack, testClients } from '../support/aws.js';
import { lambdaContext, syntheticKinesisRecord, syntheticSqsRecord } from '../support/lambda-events.js';

const clients = testClients();
const QUEUE_ARN = 'arn:aws:sqs:us-east-1:000000000000:ingest';
const STREAM_ARN = 'arn:aws:kinesis:us-east-1:000000000000:stream/ingest';
let stack: TestStack;
let env: Record<string, string>;

beforeAll(async () => {
  stack = await createTestStack(clients, 'failures');
  env = {
    TABLE_NAME: stack.tableName,
    REJECTS_QUEUE_URL: stack.rejects.url,
    ONLINE_TOPIC_ARN: stack.onlineTopic.arn,
    OFFLINE_TOPIC_ARN: stack.offlineTopic.arn,
    DEVICE_TYPES: JSON.stringify({ tracker: { timeoutMs: 90_000 } }),
  };
});
afterAll(() => stack.cleanup());

/** A real DynamoDB client whose requests for one device are answered with throttling, after the SDK's own retry
 * loop has seen them (the middleware sits inside the retry step), so the handler sees what it would after retries. */
function throttlingClient(deviceId: string) {
  const client = new DynamoDBClient({
    endpoint: clients.endpoints.dynamodb,
    region: 'us-east-1',
    credentials: LOCAL_CREDENTIALS,
    maxAttempts: 2,
  });
  const attempts = { count: 0 };
  client.middlewareStack.add(
    (next) => async (args) => {
      const input = args.input as { Key?: { pk?: { S?: string } } };
      if (input.Key?.pk?.S === deviceId) {
        attempts.count++;
        throw new ProvisionedThroughputExceededException({ message: 'throttled (injected)', $metadata: {} });
      }
      return next(args);
    },
    { step: 'finalizeRequest', name: 'injectThrottling', priority: 'low' },
  );
  return { client, attempts };
}

describe('partial batch failure', () => {
  it('SQS: only the throttled device’s records are reported failed', async () => {
    const { client, attempts } = throttlingClient('throttled-sqs');
    const handler = sqsIngestHandler(() => ingestDepsFromEnv(env, { ...clients, dynamodb: client }));
    const now = Date.now();
    const event = {
      Records: [
        syntheticSqsRecord('{"deviceId":"fine-sqs-1"}', now, QUEUE_ARN, 'm1'),
        syntheticSqsRecord('{"deviceId":"throttled-sqs"}', now, QUEUE_ARN, 'm2'),
        syntheticSqsRecord('{"deviceId":"fine-sqs-2"}', now, QUEUE_ARN, 'm3'),
        syntheticSqsRecord('{"deviceId":"throttled-sqs"}', now + 1, QUEUE_ARN, 'm4'),
      ],
    };
    const response = (await handler(event, lambdaContext())) as SQSBatchResponse;
    expect(response.batchItemFailures.map((f) => f.itemIdentifier).sort()).toEqual(['m2', 'm4']);
    expect(attempts.count).toBeGreaterThan(1);
    const store = new DynamoDeviceStore(clients.dynamodb, { tableName: stack.tableName });
    expect(await store.get('fine-sqs-1')).toMatchObject({ status: 'ONLINE' });
    expect(await store.get('fine-sqs-2')).toMatchObject({ status: 'ONLINE' });
    expect(await store.get('throttled-sqs')).toBeUndefined();
  });

  it('Kinesis: only the throttled device’s sequence numbers are reported failed', async () => {
    const { client } = throttlingClient('throttled-kin');
    const handler = kinesisIngestHandler(() => ingestDepsFromEnv(env, { ...clients, dynamodb: client }));
    const now = Date.now();
    const data = (id: string) => Buffer.from(JSON.stringify({ deviceId: id }));
    const event = {
      Records: [
        syntheticKinesisRecord(data('fine-kin-1'), now, STREAM_ARN, '100'),
        syntheticKinesisRecord(data('throttled-kin'), now, STREAM_ARN, '101'),
        syntheticKinesisRecord(data('fine-kin-2'), now, STREAM_ARN, '102'),
      ],
    };
    const response = (await handler(event, lambdaContext())) as KinesisStreamBatchResponse;
    expect(response.batchItemFailures.map((f) => f.itemIdentifier)).toEqual(['101']);
    const store = new DynamoDeviceStore(clients.dynamodb, { tableName: stack.tableName });
    expect(await store.get('fine-kin-2')).toMatchObject({ status: 'ONLINE' });
  });
});

type Case = { body: string; reason?: string };
const badCase: fc.Arbitrary<Case> = fc.oneof(
  fc
    .string({ minLength: 1 })
    .filter((s) => {
      try {
        JSON.parse(s);
        return false;
      } catch {
        return true;
      }
    })
    .map((body) => ({ body, reason: 'NOT_JSON' })),
  fc
    .oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.string())
    .map((v) => ({ body: JSON.stringify(v), reason: 'NOT_AN_OBJECT' })),
  fc
    .string()
    .filter((s) => !/^[A-Za-z0-9._:@/-]{1,128}$/.test(s))
    .map((id) => ({
      body: JSON.stringify({ deviceId: id }),
      reason: 'INVALID_DEVICE_ID',
    })),
  fc
    .oneof(fc.integer(), fc.boolean(), fc.array(fc.nat()))
    .map((id) => ({ body: JSON.stringify({ deviceId: id }), reason: 'INVALID_DEVICE_ID' })),
  fc
    .dictionary(
      fc.string().filter((k) => k !== 'deviceId' && k !== 'probe'),
      fc.jsonValue(),
      { maxKeys: 3 },
    )
    .map((o) => ({
      body: JSON.stringify(o),
      reason: 'MISSING_DEVICE_ID',
    })),
  fc.oneof(fc.integer({ max: -1 }), fc.constant('tomorrow-ish'), fc.boolean()).map((ts) => ({
    body: JSON.stringify({ deviceId: 'fuzz-ok', ts }),
    reason: 'INVALID_TIMESTAMP',
  })),
  fc.integer({ min: 2, max: 1000 }).map((days) => ({
    body: JSON.stringify({ deviceId: 'fuzz-ok', ts: Date.now() + days * 86_400_000 }),
    reason: 'TIMESTAMP_IN_FUTURE',
  })),
  fc
    .string({ minLength: 1, maxLength: 20 })
    .filter((t) => t !== 'tracker')
    .map((t) => ({
      body: JSON.stringify({ deviceId: 'fuzz-ok', deviceType: t }),
      reason: 'UNKNOWN_DEVICE_TYPE',
    })),
  fc.constant({ body: JSON.stringify({ deviceId: 'big', pad: 'x'.repeat(70 * 1024) }), reason: 'PAYLOAD_TOO_LARGE' }),
);

describe('fuzzed input', () => {
  it('sends every bad record to the rejects queue with its reason and commits every good one', {
    timeout: SUITE.largeTestTimeoutMs,
  }, async () => {
    const cases = fc.sample(
      fc.oneof(
        { weight: 3, arbitrary: badCase },
        { weight: 1, arbitrary: fc.nat(1_000_000).map((n): Case => ({ body: `{"deviceId":"fuzz-${n}"}` })) },
      ),
      { numRuns: SUITE.fuzzRecords, seed: 42 },
    );
    const bad = cases.filter((c) => c.reason);
    expect(bad.length).toBeGreaterThanOrEqual(SUITE.fuzzRecords * 0.7);
    const handler = sqsIngestHandler(() => ingestDepsFromEnv(env, clients));
    const now = Date.now();
    for (let i = 0; i < cases.length; i += 100) {
      const records = cases.slice(i, i + 100).map((c, j) => syntheticSqsRecord(c.body, now, QUEUE_ARN, `f-${i + j}`));
      const response = (await handler({ Records: records }, lambdaContext())) as SQSBatchResponse;
      expect(response.batchItemFailures).toEqual([]);
    }
    const rejects = await drainQueue(clients.sqs, stack.rejects.url, 3);
    const byRecord = new Map(rejects.map((m) => [m.MessageAttributes?.recordId?.StringValue, m]));
    expect(rejects).toHaveLength(bad.length);
    cases.forEach((c, i) => {
      if (!c.reason) return;
      const rejected = byRecord.get(`f-${i}`);
      expect(rejected?.MessageAttributes?.reason?.StringValue, c.body).toBe(c.reason);
    });
    const store = new DynamoDeviceStore(clients.dynamodb, { tableName: stack.tableName });
    const good = [
      ...new Set(cases.filter((c) => !c.reason).map((c) => (JSON.parse(c.body) as { deviceId: string }).deviceId)),
    ];
    for (const id of good) expect(await store.get(id), id).toMatchObject({ status: 'ONLINE' });
  });
});
