// Flap damping end to end through the real Lambda handlers (SQS ingest, sweep, operator API) on the engines: device
// state in DynamoDB Local, events on the two SNS topics (fauxqs) read back through their subscribed queues. Every
// handler's clock is one injected clock, and message times are the SQS SentTimestamp: nothing sleeps.
import type { LambdaFunctionURLEvent, LambdaFunctionURLResult, SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDeviceStore } from '../../lambdas/adapters/device-store.js';
import { apiDepsFromEnv, apiHandler } from '../../lambdas/api.js';
import type { DeviceEvent } from '../../lambdas/core/device.js';
import { ingestDepsFromEnv, sqsIngestHandler } from '../../lambdas/ingest-handler.js';
import { sweepDepsFromEnv, sweepHandler } from '../../lambdas/sweep.js';
import { createDeviceTable } from '../../sim/engines/resources.js';
import { MemoryWatermarks } from '../../sim/memory/watermark-store.js';
import { createTestStack, drainQueue, type TestStack, testClients, uniqueName } from '../support/aws.js';
import { lambdaContext, syntheticSqsRecord } from '../support/lambda-events.js';
import { MemoryJobQueue, T0 } from '../support/sweep-harness.js';

const clients = testClients();
const S = 1_000;
const TIMEOUT = 60 * S;
const W = 300 * S;
const DEVICE_TYPES = {
  flappy: { timeoutMs: TIMEOUT, precisionMs: 0, flap: { transitions: 3, windowMs: W } },
  plain: { timeoutMs: TIMEOUT, precisionMs: 0 },
};
const INGEST_QUEUE_ARN = 'arn:aws:sqs:us-east-1:000000000000:flap-ingest';
let stack: TestStack;
const drops: Array<() => Promise<void>> = [];
/** Every event the topics delivered so far, with the topic it came on (a queue hides what it delivered once). */
const delivered: Array<{ topic: 'online' | 'offline'; event: DeviceEvent }> = [];

beforeAll(async () => {
  stack = await createTestStack(clients, 'flap');
});
afterAll(async () => {
  await Promise.allSettled([stack.cleanup(), ...drops.map((drop) => drop())]);
});

async function eventsOf(deviceId: string): Promise<DeviceEvent[]> {
  for (const [topic, queue] of [
    ['online', stack.onlineEvents],
    ['offline', stack.offlineEvents],
  ] as const) {
    for (const m of await drainQueue(clients.sqs, queue.url)) delivered.push({ topic, event: JSON.parse(m.Body!) });
  }
  // Two topics, two queues: no order across them; consumers order by seq.
  return delivered
    .filter((d) => d.event.deviceId === deviceId)
    .map((d) => d.event)
    .sort((a, b) => a.seq - b.seq);
}
const topicOf = (eventId: string) => delivered.find((d) => d.event.eventId === eventId)?.topic;

/** What the assertions compare of an event (absent fields stay absent: toEqual ignores undefined). */
const brief = (e: DeviceEvent) => ({
  type: e.type,
  seq: e.seq,
  since: e.since,
  status: e.status,
  windowMs: e.windowMs,
  settled: e.settled,
});

/** A fresh table and the three handlers over it, all on one settable clock. */
async function detector() {
  const tableName = uniqueName('flap-devices');
  drops.push(await createDeviceTable(clients.dynamodb, tableName));
  const clock = { t: T0 };
  const now = () => clock.t;
  const env = {
    TABLE_NAME: tableName,
    SHARD_COUNT: '1',
    DEVICE_TYPES: JSON.stringify(DEVICE_TYPES),
    REJECTS_QUEUE_URL: stack.rejects.url,
    ONLINE_TOPIC_ARN: stack.onlineTopic.arn,
    OFFLINE_TOPIC_ARN: stack.offlineTopic.arn,
    SWEEP_QUEUE_URL: 'http://unused.invalid/sweep-jobs', // replaced below: one page per job, no continuation
    OUTBOX_REPUBLISH_AFTER_MS: '15000',
    STATS_CACHE_SECONDS: '0', // each GET /stats must see the transition just made (the cache has its own tests)
  };
  const ingestDeps = { ...ingestDepsFromEnv(env, clients), now }; // built once: a warm container keeps its cache
  const sweepDeps = {
    ...sweepDepsFromEnv(env, clients),
    watermarks: new MemoryWatermarks(), // no live partitions: the cutoff is the clock
    queue: new MemoryJobQueue(),
    now,
  };
  const apiDeps = { ...apiDepsFromEnv(env, clients), now };
  const ingest = sqsIngestHandler(() => ingestDeps);
  const sweep = sweepHandler(() => sweepDeps);
  const api = apiHandler(() => apiDeps);
  let n = 0;
  return {
    clock,
    store: new DynamoDeviceStore(clients.dynamodb, { tableName }),
    /** One message from the device, sent (SQS SentTimestamp) and processed at `at`. */
    async send(deviceId: string, at: number, deviceType = 'flappy') {
      clock.t = at;
      const body = JSON.stringify({ deviceId, deviceType });
      const record = syntheticSqsRecord(body, at, INGEST_QUEUE_ARN, `m${++n}`);
      const response = (await ingest({ Records: [record] }, lambdaContext())) as SQSBatchResponse;
      expect(response.batchItemFailures).toEqual([]);
    },
    /** A sweep job for the only shard, run by the sweep handler at `at` (the cutoff). */
    async sweepAt(at: number) {
      clock.t = at;
      const record = syntheticSqsRecord('{"shard":"0"}', at, 'arn:aws:sqs:us-east-1:000000000000:jobs', `j${++n}`);
      expect(await sweep({ Records: [record] }, lambdaContext())).toEqual({ batchItemFailures: [] });
    },
    async get(path: string) {
      const result = (await api(urlEvent(path), lambdaContext())) as LambdaFunctionURLResult & { statusCode: number };
      expect(result.statusCode).toBe(200);
      return JSON.parse((result as { body: string }).body);
    },
  };
}

function urlEvent(path: string): LambdaFunctionURLEvent {
  const http = { method: 'GET', path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' };
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: {},
    requestContext: { http, requestId: 'r', routeKey: '$default', stage: '$default' },
    isBase64Encoded: false,
  } as unknown as LambdaFunctionURLEvent;
}

describe('flap damping through the handlers', () => {
  it('online → offline → online within W: flapping once, silent while flapping, settles online after W', async () => {
    const d = await detector();
    const id = uniqueName('flap-online');
    await d.send(id, T0);
    await d.sweepAt(T0 + TIMEOUT); // offline at lastSeen + timeout
    await d.send(id, T0 + 90 * S); // 3rd transition within W: device.flapping instead of device.online
    expect((await eventsOf(id)).map(brief)).toEqual([
      { type: 'device.online', seq: 1, since: T0 },
      { type: 'device.offline', seq: 2, since: T0 + TIMEOUT },
      { type: 'device.flapping', seq: 3, since: T0 + 90 * S, status: 'ONLINE', windowMs: W },
    ]);
    expect((await eventsOf(id))[2]).toEqual({
      eventId: `${id}#3`,
      type: 'device.flapping',
      deviceId: id,
      deviceType: 'flappy',
      seq: 3,
      since: T0 + 90 * S,
      lastSeen: T0 + 90 * S,
      timeoutMs: TIMEOUT,
      detectedAt: T0 + 90 * S,
      status: 'ONLINE',
      windowMs: W,
    });
    expect(topicOf(`${id}#3`)).toBe('offline');
    expect(await d.get(`/devices/${id}`)).toMatchObject({
      status: 'ONLINE',
      seq: 3,
      flapping: { since: T0 + 90 * S, settlesAt: T0 + 390 * S },
    });
    expect((await d.get('/stats')).deviceTypes.flappy).toEqual({ online: 1, offline: 0 });

    // Silent again, then back: both transitions commit (seq 4, 5) and publish nothing.
    await d.sweepAt(T0 + 150 * S);
    const offlineFlapping = await d.store.get(id);
    expect(offlineFlapping).toMatchObject({ status: 'OFFLINE', seq: 4, since: T0 + 150 * S, outbox: [] });
    expect(offlineFlapping?.deadline).toBe(T0 + 150 * S + W); // stays in the deadline index, at since + W
    expect(await d.get(`/devices/${id}`)).toMatchObject({
      status: 'OFFLINE',
      flapping: { since: T0 + 90 * S, settlesAt: T0 + 450 * S },
    });
    expect((await d.get('/stats')).deviceTypes.flappy).toEqual({ online: 0, offline: 1 });
    await d.send(id, T0 + 200 * S);
    expect(await d.store.get(id)).toMatchObject({ status: 'ONLINE', seq: 5, deadline: T0 + 260 * S });
    expect((await d.get('/stats')).deviceTypes.flappy).toEqual({ online: 1, offline: 0 });
    expect(await eventsOf(id)).toHaveLength(3);

    // Keeps sending for W: the sweep parks it (never offline), and settles it at since + W, not before.
    for (let t = T0 + 230 * S; t <= T0 + 470 * S; t += 30 * S) {
      await d.send(id, t);
      await d.sweepAt(t);
    }
    await d.sweepAt(T0 + 500 * S - 1);
    expect(await eventsOf(id)).toHaveLength(3);
    await d.send(id, T0 + 500 * S);
    await d.sweepAt(T0 + 500 * S);
    const settled = (await eventsOf(id))[3];
    expect(settled).toEqual({
      eventId: `${id}#6`,
      type: 'device.online',
      deviceId: id,
      deviceType: 'flappy',
      seq: 6,
      since: T0 + 200 * S, // its last transition
      lastSeen: T0 + 500 * S,
      timeoutMs: TIMEOUT,
      detectedAt: T0 + 500 * S,
      settled: true,
    });
    expect(topicOf(`${id}#6`)).toBe('online');
    const view = await d.get(`/devices/${id}`);
    expect(view).toMatchObject({ status: 'ONLINE', seq: 6, since: T0 + 200 * S });
    expect(view.flapping).toBeUndefined();
    expect(await d.store.get(id)).toMatchObject({ deadline: T0 + 560 * S, outbox: [] });

    // Normal again: a later silence is an ordinary device.offline.
    await d.sweepAt(T0 + 560 * S);
    expect((await eventsOf(id)).map(brief).slice(3)).toEqual([
      { type: 'device.online', seq: 6, since: T0 + 200 * S, settled: true },
      { type: 'device.offline', seq: 7, since: T0 + 560 * S },
    ]);
    expect((await d.get('/stats')).deviceTypes.flappy).toEqual({ online: 0, offline: 1 });
  });

  it('flaps, then goes silent: settles offline at its offline time + W, with since = the offline time', async () => {
    const d = await detector();
    const id = uniqueName('flap-silent');
    await d.send(id, T0);
    await d.sweepAt(T0 + TIMEOUT);
    await d.send(id, T0 + 90 * S);
    await d.sweepAt(T0 + 150 * S); // offline while flapping: held
    await d.sweepAt(T0 + 450 * S - 1);
    expect((await eventsOf(id)).map(brief)).toEqual([
      { type: 'device.online', seq: 1, since: T0 },
      { type: 'device.offline', seq: 2, since: T0 + TIMEOUT },
      { type: 'device.flapping', seq: 3, since: T0 + 90 * S, status: 'ONLINE', windowMs: W },
    ]);
    expect(await d.store.get(id)).toMatchObject({ status: 'OFFLINE', seq: 4 });

    await d.sweepAt(T0 + 450 * S);
    const events = await eventsOf(id);
    expect(events.map(brief).slice(3)).toEqual([
      { type: 'device.offline', seq: 5, since: T0 + 150 * S, settled: true },
    ]);
    expect(events[3]).toMatchObject({ eventId: `${id}#5`, lastSeen: T0 + 90 * S, detectedAt: T0 + 450 * S });
    expect(topicOf(`${id}#5`)).toBe('offline');
    const state = await d.store.get(id);
    expect(state).toMatchObject({ status: 'OFFLINE', seq: 5, outbox: [] });
    expect(state?.flapping).toBeUndefined();
    expect(state?.deadline).toBeUndefined(); // out of the deadline index once settled offline
    expect((await d.get(`/devices/${id}`)).flapping).toBeUndefined();
    expect((await d.get('/stats')).deviceTypes.flappy).toEqual({ online: 0, offline: 1 });
    await d.sweepAt(T0 + 900 * S);
    expect(await eventsOf(id)).toHaveLength(4);
  });

  it('an offline transition found by the sweep can start the flapping (status OFFLINE), then settles offline', async () => {
    const d = await detector();
    const id = uniqueName('flap-offline');
    for (let t = T0; t <= T0 + 100 * S; t += 20 * S) {
      await d.send(id, t);
      await d.sweepAt(t);
    }
    await d.sweepAt(T0 + 160 * S); // offline #2
    await d.send(id, T0 + 301 * S); // online #3: T0..301 s is more than W, no flapping yet
    await d.sweepAt(T0 + 361 * S); // offline #4: 160..361 s within W, the 3rd transition
    await d.sweepAt(T0 + 661 * S - 1);
    expect((await eventsOf(id)).map(brief)).toEqual([
      { type: 'device.online', seq: 1, since: T0 },
      { type: 'device.offline', seq: 2, since: T0 + 160 * S },
      { type: 'device.online', seq: 3, since: T0 + 301 * S },
      { type: 'device.flapping', seq: 4, since: T0 + 361 * S, status: 'OFFLINE', windowMs: W },
    ]);
    expect((await d.get('/stats')).deviceTypes.flappy).toEqual({ online: 0, offline: 1 });
    await d.sweepAt(T0 + 661 * S);
    expect((await eventsOf(id)).map(brief).slice(4)).toEqual([
      { type: 'device.offline', seq: 5, since: T0 + 361 * S, settled: true },
    ]);
  });

  it('a type without flap config publishes every transition', async () => {
    const d = await detector();
    const id = uniqueName('plain');
    await d.send(id, T0, 'plain');
    await d.sweepAt(T0 + TIMEOUT);
    await d.send(id, T0 + 90 * S, 'plain');
    await d.sweepAt(T0 + 150 * S);
    await d.send(id, T0 + 200 * S, 'plain');
    expect((await eventsOf(id)).map(brief)).toEqual([
      { type: 'device.online', seq: 1, since: T0 },
      { type: 'device.offline', seq: 2, since: T0 + TIMEOUT },
      { type: 'device.online', seq: 3, since: T0 + 90 * S },
      { type: 'device.offline', seq: 4, since: T0 + 150 * S },
      { type: 'device.online', seq: 5, since: T0 + 200 * S },
    ]);
    const state = await d.store.get(id);
    expect(state?.flapping).toBeUndefined();
    expect(state?.transitions).toBeUndefined();
    expect((await d.get(`/devices/${id}`)).flapping).toBeUndefined();
  });
});
