// Allow-list mode (ALLOW_LIST=true) through the real handlers on the engines: devices registered with the admin
// API's PUT /devices/{id} (or the CLI) are tracked, any other device's messages land on the rejects queue with reason
// UNREGISTERED. Both engines: on the batched one the sweep handler is where a device that is not registered shows.
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import type { LambdaFunctionURLEvent, LambdaFunctionURLResult, SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../bin/cli.js';
import { DynamoDeviceStore } from '../../lambdas/adapters/device-store.js';
import { apiDepsFromEnv, apiHandler } from '../../lambdas/api.js';
import { A, KEY } from '../../lambdas/core/table-schema.js';
import { ingestDepsFromEnv, sqsIngestHandler } from '../../lambdas/ingest-handler.js';
import { sweepDepsFromEnv, sweepHandler } from '../../lambdas/sweep.js';
import { createDeviceTable, createShardTable } from '../../sim/engines/resources.js';
import { MemoryWatermarks } from '../../sim/memory/watermark-store.js';
import { createTestStack, drainQueue, type TestStack, testClients, uniqueName } from '../support/aws.js';
import { lambdaContext, syntheticSqsRecord } from '../support/lambda-events.js';
import { MemoryJobQueue, T0 } from '../support/sweep-harness.js';

const clients = testClients();
const drops: Array<() => Promise<void>> = [];
let stack: TestStack;
const INGEST_QUEUE_ARN = 'arn:aws:sqs:us-east-1:000000000000:ingest';
const DEVICE_TYPES = { tracker: { timeoutMs: 90_000 }, meter: { timeoutMs: 900_000, precisionMs: 60_000 } };

beforeAll(async () => {
  stack = await createTestStack(clients, 'allow');
});
afterAll(async () => {
  await Promise.allSettled([stack.cleanup(), ...drops.map((drop) => drop())]);
});

/** A fresh device table (and shard table, batched) with the ingest, sweep and API handlers over it, as deployed
 * with ALLOW_LIST=true, all on one settable clock. */
async function detector(engine: 'per-device' | 'batched', access: 'admin' | 'read' = 'admin') {
  const tableName = uniqueName('allow-devices');
  drops.push(await createDeviceTable(clients.dynamodb, tableName));
  const shardTable = uniqueName('allow-shards');
  if (engine === 'batched') drops.push(await createShardTable(clients.dynamodb, shardTable));
  const clock = { t: T0 };
  const now = () => clock.t;
  const env = {
    TABLE_NAME: tableName,
    SHARD_COUNT: '1',
    DEVICE_TYPES: JSON.stringify(DEVICE_TYPES),
    ALLOW_LIST: 'true',
    REJECTS_QUEUE_URL: stack.rejects.url,
    ONLINE_TOPIC_ARN: stack.onlineTopic.arn,
    OFFLINE_TOPIC_ARN: stack.offlineTopic.arn,
    SWEEP_QUEUE_URL: 'http://unused.invalid/sweep-jobs',
    API_ACCESS: access,
    ...(engine === 'batched' ? { ENGINE: 'batched', SHARD_TABLE_NAME: shardTable, BATCHED_SHARD_COUNT: '1' } : {}),
  };
  const ingest = sqsIngestHandler(() => ({ ...ingestDepsFromEnv(env, clients), now }));
  const sweepDeps = {
    ...sweepDepsFromEnv(env, clients),
    watermarks: new MemoryWatermarks(), // no live partitions: the cutoff is the clock
    queue: new MemoryJobQueue(),
    now,
  };
  const sweep = sweepHandler(() => sweepDeps);
  const apiDeps = { ...apiDepsFromEnv(env, clients), now };
  const api = apiHandler(() => apiDeps);
  let n = 0;
  return {
    env,
    clock,
    store: new DynamoDeviceStore(clients.dynamodb, { tableName }),
    /** Messages sent (SQS SentTimestamp) and processed at `at`; on the batched engine a sweep job follows. */
    async send(bodies: unknown[], at: number) {
      clock.t = at;
      const records = bodies.map((body) =>
        syntheticSqsRecord(typeof body === 'string' ? body : JSON.stringify(body), at, INGEST_QUEUE_ARN, `m${++n}`),
      );
      const response = (await ingest({ Records: records }, lambdaContext())) as SQSBatchResponse;
      expect(response.batchItemFailures).toEqual([]);
      if (engine === 'batched') {
        clock.t = at + 1_000;
        const job = syntheticSqsRecord('{"shard":"0"}', clock.t, 'arn:aws:sqs:us-east-1:000000000000:jobs', `j${++n}`);
        expect(await sweep({ Records: [job] }, lambdaContext())).toEqual({ batchItemFailures: [] });
      }
      return records;
    },
    async call(method: string, deviceId: string, body?: string) {
      const path = `/devices/${encodeURIComponent(deviceId)}`;
      const result = (await api(urlEvent(method, path, body), lambdaContext())) as LambdaFunctionURLResult & {
        statusCode: number;
        body?: string;
      };
      return { status: result.statusCode, body: result.body ? JSON.parse(result.body) : undefined };
    },
  };
}

function urlEvent(method: string, path: string, body?: string): LambdaFunctionURLEvent {
  const http = { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' };
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: { 'content-type': 'application/json' },
    requestContext: { http, requestId: 'r', routeKey: '$default', stage: '$default' },
    isBase64Encoded: false,
    ...(body !== undefined ? { body } : {}),
  } as unknown as LambdaFunctionURLEvent;
}

/** The rejects queue's messages about these devices: reason, device id of the body, and the body. */
async function rejectsOf(deviceIds: string[]) {
  const messages = await drainQueue(clients.sqs, stack.rejects.url);
  return messages
    .map((m) => ({
      reason: m.MessageAttributes?.reason?.StringValue,
      body: m.Body!,
      detail: m.MessageAttributes?.detail,
    }))
    .filter((m) => deviceIds.some((id) => m.body.includes(`"${id}"`)));
}

async function onlineEventsOf(deviceIds: string[]) {
  const messages = await drainQueue(clients.sqs, stack.onlineEvents.url);
  return messages
    .map((m) => JSON.parse(m.Body!) as { eventId: string; deviceId: string; deviceType: string; since: number })
    .filter((e) => deviceIds.includes(e.deviceId));
}

describe.each(['per-device', 'batched'] as const)('allow-list mode through the handlers, %s engine', (engine) => {
  it('PUT /devices/{id} then a message: online; an unknown id: on the rejects queue (UNREGISTERED), not retried', async () => {
    const d = await detector(engine);
    const known = uniqueName('known');
    const stranger = uniqueName('stranger');
    const put = await d.call('PUT', known, JSON.stringify({ deviceType: 'meter' }));
    expect(put).toMatchObject({ status: 201, body: { deviceId: known, status: 'REGISTERED', deviceType: 'meter' } });
    expect((await d.call('PUT', known, '{"deviceType":"meter"}')).status).toBe(200); // idempotent
    expect(await d.call('GET', known)).toMatchObject({ status: 200, body: { status: 'REGISTERED', seq: 0 } });

    await d.send([{ deviceId: known }, { deviceId: stranger, deviceType: 'tracker' }], T0 + 10_000);
    expect(await d.store.get(known)).toMatchObject({ status: 'ONLINE', deviceType: 'meter', since: T0 + 10_000 });
    expect(await d.store.get(stranger)).toBeUndefined();
    expect((await onlineEventsOf([known, stranger])).map((e) => [e.eventId, e.deviceType])).toEqual([
      [`${known}#1`, 'meter'],
    ]);
    const rejected = await rejectsOf([known, stranger]);
    expect(rejected.map((r) => [r.reason, JSON.parse(r.body).deviceId])).toEqual([['UNREGISTERED', stranger]]);
    if (engine === 'per-device')
      expect(JSON.parse(rejected[0]!.body)).toEqual({ deviceId: stranger, deviceType: 'tracker' });

    // Decommissioned: un-registered too. Its next message (past lastSeen + its precision, 60 s: messages up to then
    // count as sent before the decommission) is rejected, and nothing of it is tracked.
    d.clock.t = T0 + 20_000;
    expect((await d.call('DELETE', known)).status).toBe(204);
    await d.send([{ deviceId: known }], T0 + 100_000);
    expect((await rejectsOf([known])).map((r) => r.reason)).toEqual(['UNREGISTERED']);
    expect(await d.store.get(known)).toMatchObject({ status: 'RETIRED', seq: 1 });
    expect(await onlineEventsOf([known])).toEqual([]);

    // Registered again: a new life that continues the seq, kept with no expiry until it sends.
    d.clock.t = T0 + 110_000;
    expect(await d.call('PUT', known)).toMatchObject({
      status: 201,
      body: { status: 'REGISTERED', seq: 1, deviceType: 'tracker', since: T0 + 110_000 },
    });
    const item = await clients.dynamodb.send(
      new GetItemCommand({ TableName: d.env.TABLE_NAME, Key: { [KEY]: { S: known } }, ConsistentRead: true }),
    );
    expect(item.Item?.[A.expiresAt]).toBeUndefined();
    await d.send([{ deviceId: known }], T0 + 120_000);
    expect((await onlineEventsOf([known])).map((e) => [e.eventId, e.since - T0])).toEqual([[`${known}#2`, 120_000]]);
  });
});

describe('PUT /devices/{id}', () => {
  it('refuses bad input with 400 and writes nothing; the read API refuses it with 403', async () => {
    const d = await detector('per-device');
    const cases: Array<[string, string | undefined, string]> = [
      ['bad id!', undefined, 'bad-device-id'],
      ['x'.repeat(129), undefined, 'bad-device-id'],
      ['ok-1', '{"deviceType":"toaster"}', 'unknown-device-type'],
      ['ok-1', '{"deviceType":7}', 'unknown-device-type'],
      ['ok-1', '{"deviceType":"__proto__"}', 'unknown-device-type'],
      ['ok-1', '{"type":"meter"}', 'unknown-field'],
      ['ok-1', 'meter', 'bad-json'],
      ['ok-1', '[]', 'bad-json'],
    ];
    for (const [deviceId, body, error] of cases) {
      expect(await d.call('PUT', deviceId, body), `${deviceId} ${body}`).toMatchObject({
        status: 400,
        body: { error },
      });
    }
    expect(await d.store.get('ok-1')).toBeUndefined();

    const read = await detector('per-device', 'read');
    expect(await read.call('PUT', 'ok-2')).toMatchObject({ status: 403, body: { error: 'read-only' } });
    expect(await read.store.get('ok-2')).toBeUndefined();
  });

  it('registers through the CLI (devices register), straight on the table', async () => {
    const d = await detector('per-device');
    const saved = process.env.DEVICE_TYPES;
    process.env.DEVICE_TYPES = JSON.stringify(DEVICE_TYPES);
    try {
      const lines: string[] = [];
      const local = ['--endpoint', clients.endpoints.dynamodb, '--table', d.env.TABLE_NAME];
      const code = await main(['devices', 'register', 'pump/7', '--type', 'meter', ...local], (l) => lines.push(l));
      expect(code).toBe(0);
      expect(JSON.parse(lines.join('\n'))).toMatchObject({
        deviceId: 'pump/7',
        status: 'REGISTERED',
        deviceType: 'meter',
      });
      expect(await main(['devices', 'register', 'pump/8', '--type', 'toaster', ...local], () => {})).toBe(1);
      expect(await main(['devices', 'register', ...local], () => {})).toBe(2);
    } finally {
      if (saved === undefined) delete process.env.DEVICE_TYPES;
      else process.env.DEVICE_TYPES = saved;
    }
    expect(await d.store.get('pump/7')).toMatchObject({ status: 'REGISTERED', deviceType: 'meter' });
    expect(await d.store.get('pump/8')).toBeUndefined();
  });
});
