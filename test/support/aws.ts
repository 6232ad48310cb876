// Clients and throwaway resources for integration tests, on the engines the global setup started (or on
// AWS_ENDPOINT_URL, e.g. LocalStack). Every resource gets a unique name and is deleted after the test file.
import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { SNSClient } from '@aws-sdk/client-sns';
import { type Message, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { inject } from 'vitest';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../local/engines.js';
import {
  createDeviceTable,
  createQueue,
  createTopic,
  type Queue,
  subscribeQueue,
  type Topic,
} from '../../local/resources.js';

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

/** Receives everything currently in a queue (deleting nothing: tests read each queue once). Stops after
 * `emptyPolls` consecutive empty receives. */
export async function drainQueue(sqs: SQSClient, queueUrl: string, emptyPolls = 2): Promise<Message[]> {
  const messages: Message[] = [];
  let empty = 0;
  while (empty < emptyPolls) {
    const out = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
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
