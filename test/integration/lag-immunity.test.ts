// I5, lag immunity, end to end on the engines: devices keep sending into a fauxqs ingest queue while the ingest is
// stopped for 15 simulated minutes; the dispatcher and the sweeps keep running. No device is reported offline
// during the stall. When the ingest resumes (probes overtaking the backlog first, then the backlog in order, with
// sweeps between batches), only the devices that really went silent are reported, each once.
//
// Simulated time: every Lambda gets the same injected clock, and the harness plays Lambda's SQS poller, giving each
// record the simulated time its device sent it as SentTimestamp (the ingest's time basis).
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { chunks } from '../../lambdas/adapters/chunks.js';
import { DynamoDeviceStore } from '../../lambdas/adapters/device-store.js';
import { DynamoWatermarkStore } from '../../lambdas/adapters/watermark-store.js';
import type { DeviceEvent } from '../../lambdas/core/device.js';
import { dispatchDepsFromEnv, dispatchHandler } from '../../lambdas/dispatch.js';
import { ingestDepsFromEnv, sqsIngestHandler } from '../../lambdas/ingest-handler.js';
import { sweepDepsFromEnv, sweepHandler } from '../../lambdas/sweep.js';
import { createQueue, type Queue } from '../../sim/engines/resources.js';
import { createTestStack, drainQueue, type TestStack, testClients, uniqueName } from '../support/aws.js';
import { lambdaContext, sqsRecord } from '../support/lambda-events.js';

const clients = testClients();
const MINUTE = 60_000;
const STEP = 10_000;
const TIMEOUT = 3 * MINUTE;
const HEARTBEAT = MINUTE;
const TOLERANCE = 90_000; // covers the one-minute probe interval; below timeout − heartbeat (120 s)
const T0 = Math.floor((Date.now() - 3_600_000) / MINUTE) * MINUTE;
const STALL_START = T0 + 3 * MINUTE;
const STALL_END = STALL_START + 15 * MINUTE;
const SILENT_FROM = T0 + 5 * MINUTE;
const END = STALL_END + 4 * MINUTE;

const KEEP_SENDING = Array.from({ length: 16 }, (_, i) => `alive-${i}`);
const GO_SILENT = Array.from({ length: 4 }, (_, i) => `silent-${i}`);
const DEVICES = [...KEEP_SENDING, ...GO_SILENT];
/** Each device sends every minute at its own second. */
const phaseOf = (i: number) => ((i * 3) % 60) * 1000;

let stack: TestStack;
let ingestQueue: Queue;
let sweepQueue: Queue;
let env: Record<string, string>;

beforeAll(async () => {
  stack = await createTestStack(clients, 'lag');
  [ingestQueue, sweepQueue] = await Promise.all([
    createQueue(clients.sqs, uniqueName('lag-ingest')),
    createQueue(clients.sqs, uniqueName('lag-sweep')),
  ]);
  env = {
    TABLE_NAME: stack.tableName,
    SHARD_COUNT: '4',
    DEVICE_TYPES: JSON.stringify({ tracker: { timeoutMs: TIMEOUT, precisionMs: 0, heartbeatMs: HEARTBEAT } }),
    ANNOUNCE_NEW_DEVICES: 'false',
    REJECTS_QUEUE_URL: stack.rejects.url,
    ONLINE_TOPIC_ARN: stack.onlineTopic.arn,
    OFFLINE_TOPIC_ARN: stack.offlineTopic.arn,
    SWEEP_QUEUE_URL: sweepQueue.url,
    // One tick a minute: SQS delays are real seconds, which a simulated minute does not have.
    SWEEP_TICK_SECONDS: '60',
    WATERMARK_TOLERANCE_MS: String(TOLERANCE),
    INGEST_QUEUE_URLS: ingestQueue.url,
  };
});
afterAll(async () => {
  await Promise.allSettled([stack.cleanup(), ingestQueue.delete(), sweepQueue.delete()]);
});

async function receiveAll(queueUrl: string): Promise<Message[]> {
  const messages: Message[] = [];
  for (;;) {
    const out = await clients.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        VisibilityTimeout: 300,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
      }),
    );
    if (!out.Messages?.length) return messages;
    messages.push(...out.Messages);
  }
}

async function remove(queueUrl: string, messages: Message[]) {
  for (const chunk of chunks(messages, 10)) {
    await clients.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: chunk.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
      }),
    );
  }
}

it('an ingest stall of 15 minutes reports no device that kept sending; afterwards only the silent ones, once', async () => {
  let now = T0;
  const clock = () => now;
  const ingestDeps = { ...ingestDepsFromEnv(env, clients), now: clock };
  const ingest = sqsIngestHandler(() => ingestDeps);
  const sweepDeps = { ...sweepDepsFromEnv(env, clients), now: clock };
  const sweep = sweepHandler(() => sweepDeps);
  const dispatchDeps = { ...dispatchDepsFromEnv(env, clients), now: clock, sleep: async () => {} };
  const dispatch = dispatchHandler(() => dispatchDeps);
  const watermarks = new DynamoWatermarkStore(clients.dynamodb, stack.tableName);
  const store = new DynamoDeviceStore(clients.dynamodb, { tableName: stack.tableName });

  /** Lambda's SQS poller: the record enters the pipeline when the device sent it (probes: when stamped). */
  const toRecord = (m: Message) => {
    const record = sqsRecord(m, ingestQueue.arn);
    const sentAt = m.MessageAttributes?.simSentAt?.StringValue ?? String(JSON.parse(m.Body!).probe);
    record.attributes.SentTimestamp = sentAt;
    return record;
  };
  const ingestBatch = async (messages: Message[]) => {
    const event: SQSEvent = { Records: messages.map(toRecord) };
    const response = (await ingest(event, lambdaContext())) as SQSBatchResponse;
    expect(response.batchItemFailures).toEqual([]);
    await remove(ingestQueue.url, messages);
  };
  const sweepShards = async (jobs: string[]) => {
    for (const body of jobs) {
      const event: SQSEvent = {
        Records: [sqsRecord({ MessageId: uniqueName('job'), ReceiptHandle: 'rh', Body: body }, sweepQueue.arn)],
      };
      const response = (await sweep(event, lambdaContext())) as SQSBatchResponse;
      expect(response.batchItemFailures).toEqual([]);
    }
  };
  /** The sweep Lambda: every job on the sweep queue, including continuations. */
  const runSweeps = async () => {
    for (let jobs = await receiveAll(sweepQueue.url); jobs.length > 0; jobs = await receiveAll(sweepQueue.url)) {
      await remove(sweepQueue.url, jobs);
      await sweepShards(jobs.map((m) => m.Body!));
    }
  };
  const devicesSending = (from: number, to: number) =>
    DEVICES.flatMap((deviceId, i) => {
      if (GO_SILENT.includes(deviceId) && from >= SILENT_FROM) return [];
      const sendAt = Math.floor(from / MINUTE) * MINUTE + phaseOf(i);
      return sendAt >= from && sendAt < to ? [{ deviceId, sendAt }] : [];
    });

  let lastSeenAtStallEnd = new Map<string, number>();
  for (; now < END; now += STEP) {
    const sending = devicesSending(now, now + STEP);
    for (const chunk of chunks(sending, 10)) {
      await clients.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: ingestQueue.url,
          Entries: chunk.map(({ deviceId, sendAt }, i) => ({
            Id: String(i),
            MessageBody: JSON.stringify({ deviceId }),
            MessageAttributes: { simSentAt: { DataType: 'Number', StringValue: String(sendAt) } },
          })),
        }),
      );
    }
    if ((now - T0) % MINUTE === 0) await dispatch({}, lambdaContext(70_000));

    const stalled = now >= STALL_START && now < STALL_END;
    if (now === STALL_END) {
      // Evidence the stall mattered: by the wall clock every device's stored state is long expired.
      const states = await Promise.all(DEVICES.map((id) => store.get(id)));
      lastSeenAtStallEnd = new Map(states.map((s, i) => [DEVICES[i]!, s!.lastSeen]));
      for (const lastSeen of lastSeenAtStallEnd.values()) expect(lastSeen + TIMEOUT).toBeLessThan(STALL_END);
      expect((await watermarks.read()).marks[ingestQueue.arn]).toBeLessThanOrEqual(STALL_START);

      // Recovery, the hard way first: the probes overtake the whole backlog (SQS standard does not keep order).
      const backlog = await receiveAll(ingestQueue.url);
      const probes = backlog.filter((m) => m.Body!.includes('"probe"'));
      const messages = backlog.filter((m) => !m.Body!.includes('"probe"'));
      expect(probes.length).toBeGreaterThanOrEqual(15);
      for (const chunk of chunks(messages, 10)) {
        await clients.sqs.send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: ingestQueue.url,
            Entries: chunk.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle!, VisibilityTimeout: 0 })),
          }),
        );
      }
      for (const chunk of chunks(probes, 10)) await ingestBatch(chunk);
      expect((await watermarks.read()).marks[ingestQueue.arn]).toBeLessThanOrEqual(STALL_START);
    }
    if (!stalled) {
      // The poller takes what is visible, ten at a time; the sweeps keep running between batches of the drain.
      const draining = now === STALL_END;
      for (;;) {
        const out = await clients.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: ingestQueue.url,
            MaxNumberOfMessages: 10,
            VisibilityTimeout: 300,
            MessageAttributeNames: ['All'],
          }),
        );
        if (!out.Messages?.length) break;
        await ingestBatch(out.Messages);
        if (draining) await sweepShards(['0', '1', '2', '3'].map((shard) => JSON.stringify({ shard })));
      }
    }
    await runSweeps();
  }

  const offline = (await drainQueue(clients.sqs, stack.offlineEvents.url)).map(
    (m) => JSON.parse(m.Body!) as DeviceEvent,
  );
  const online = await drainQueue(clients.sqs, stack.onlineEvents.url);
  // Nothing while ingest was stopped or draining; then exactly the devices that went silent, each once.
  expect(offline.every((e) => e.detectedAt > STALL_END)).toBe(true);
  expect(offline.map((e) => e.deviceId).sort()).toEqual([...GO_SILENT].sort());
  expect(new Set(offline.map((e) => e.eventId)).size).toBe(GO_SILENT.length);
  // Judged by what they really sent: their last message, which was stuck in the queue during the stall.
  for (const event of offline) {
    expect(event.lastSeen).toBeGreaterThanOrEqual(SILENT_FROM - MINUTE);
    expect(event.lastSeen).toBeLessThan(SILENT_FROM);
    expect(event.since).toBe(event.lastSeen + TIMEOUT);
  }
  // No device that kept sending flapped offline and back.
  expect(online).toEqual([]);
  const alive = await Promise.all(KEEP_SENDING.map((id) => store.get(id)));
  expect(alive.every((s) => s?.status === 'ONLINE' && s.lastSeen > STALL_END)).toBe(true);
});
