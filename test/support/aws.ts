// Clients and throwaway resources for integration tests, on the engines the global setup started (or on
// AWS_ENDPOINT_URL, e.g. LocalStack). Every resource gets a unique name and is deleted after the test file.
import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KinesisClient, waitUntilStreamExists } from '@aws-sdk/client-kinesis';
import { SNSClient } from '@aws-sdk/client-sns';
import { type Message, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { inject, vi } from 'vitest';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../sim/engines/engines.js';
import {
  createDeviceTable,
  createQueue,
  createTopic,
  type Queue,
  subscribeQueue,
  type Topic,
} from '../../sim/engines/resources.js';

/** Where the suite runs: the embedded engines the global setup starts, or the endpoint in AWS_ENDPOINT_URL (such as
 * LocalStack). An external endpoint answers SQS, SNS and Kinesis in ~20 ms a call, 10–50× the embedded engines, and,
 * as AWS does, delivers SNS to SQS after the publish returns, creates and reshards streams in the background, and
 * answers a short poll from a sample of its queue. Every size and time that depends on the endpoint is decided
 * here, so the suite runs unchanged against either. */
export const EXTERNAL_ENDPOINT = Boolean(process.env.AWS_ENDPOINT_URL);

export const SUITE = EXTERNAL_ENDPOINT
  ? {
      /** Devices the mass-disconnect sweep test silences at once (a write, a publish and a receive each). */
      massDisconnectDevices: 1_000,
      /** Records of the fuzzed-input ingest test (most of them rejected to a queue, one send and receive each). */
      fuzzRecords: 400,
      /** Time for a test of ordinary size, and for one that makes thousands of calls. */
      testTimeoutMs: 180_000,
      largeTestTimeoutMs: 600_000,
      /** How long a stream may take to become ACTIVE after it is created or resharded (tens of seconds on AWS). */
      streamActiveSeconds: 300,
      /** Long polls: every server of the queue is asked, and SNS's delivery to it has time to land. */
      receiveWaitSeconds: 1,
    }
  : {
      massDisconnectDevices: 5_000,
      fuzzRecords: 1_400,
      testTimeoutMs: 60_000,
      largeTestTimeoutMs: 120_000,
      streamActiveSeconds: 30,
      receiveWaitSeconds: 0,
    };

// Every integration test file gets its clients here: the endpoint's test and hook timeouts come with them.
if (EXTERNAL_ENDPOINT) vi.setConfig({ testTimeout: SUITE.testTimeoutMs, hookTimeout: SUITE.testTimeoutMs });

export function testClients() {
  const endpoints = inject('endpoints');
  const common = { region: process.env.AWS_REGION ?? LOCAL_REGION, credentials: LOCAL_CREDENTIALS };
  return {
    endpoints,
    dynamodb: new DynamoDBClient({ ...common, endpoint: endpoints.dynamodb, maxAttempts: 3 }),
    sqs: new SQSClient({ ...common, endpoint: endpoints.sqs }),
    sns: new SNSClient({ ...common, endpoint: endpoints.sns }),
    kinesis: endpoints.kinesis
      ? new KinesisClient({ ...common, endpoint: endpoints.kinesis, requestHandler: new NodeHttpHandler() })
      : undefined,
  };
}
export type TestClients = ReturnType<typeof testClients>;

export const uniqueName = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

/** A device table, rejects queue, and the two event topics each subscribed by a queue, as a user would consume. */
export interface TestStack {
  tableName: string;
  rejects: Queue;
  onlineTopic: Topic;
  offlineTopic: Topic;
  onlineEvents: Queue;
  offlineEvents: Queue;
  cleanup(): Promise<void>;
}

export async function createTestStack(clients: TestClients, prefix = 'od'): Promise<TestStack> {
  const tableName = uniqueName(`${prefix}-devices`);
  const dropTable = await createDeviceTable(clients.dynamodb, tableName);
  const rejects = await createQueue(clients.sqs, uniqueName(`${prefix}-rejects`));
  const onlineTopic = await createTopic(clients.sns, uniqueName(`${prefix}-online`));
  const offlineTopic = await createTopic(clients.sns, uniqueName(`${prefix}-offline`));
  const onlineEvents = await createQueue(clients.sqs, uniqueName(`${prefix}-online-events`));
  const offlineEvents = await createQueue(clients.sqs, uniqueName(`${prefix}-offline-events`));
  await subscribeQueue(clients.sns, onlineTopic.arn, onlineEvents.arn);
  await subscribeQueue(clients.sns, offlineTopic.arn, offlineEvents.arn);
  return {
    tableName,
    rejects,
    onlineTopic,
    offlineTopic,
    onlineEvents,
    offlineEvents,
    cleanup: async () => {
      await Promise.allSettled([
        dropTable(),
        ...[rejects, onlineEvents, offlineEvents, onlineTopic, offlineTopic].map((r) => r.delete()),
      ]);
    },
  };
}

/** Waits until a stream just created or resharded is ACTIVE again (on AWS and LocalStack both take a while). */
export async function waitForStreamActive(kinesis: KinesisClient, streamName: string): Promise<void> {
  await waitUntilStreamExists(
    { client: kinesis, maxWaitTime: SUITE.streamActiveSeconds, minDelay: 1, maxDelay: 5 },
    { StreamName: streamName },
  );
}

/** Receives everything currently in a queue (deleting nothing: tests read each queue once). Stops after
 * `emptyPolls` consecutive empty receives; on an external endpoint after one empty long poll, which asks every
 * server of the queue and leaves a second for SNS deliveries still on their way. */
export async function drainQueue(sqs: SQSClient, queueUrl: string, emptyPolls = 2): Promise<Message[]> {
  const messages: Message[] = [];
  const quiet = SUITE.receiveWaitSeconds > 0 ? 1 : emptyPolls;
  let empty = 0;
  while (empty < quiet) {
    const out = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: SUITE.receiveWaitSeconds,
        VisibilityTimeout: 300,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
      }),
    );
    const batch = out.Messages ?? [];
    if (batch.length === 0) empty++;
    else {
      empty = 0;
      messages.push(...batch);
    }
  }
  return messages;
}
