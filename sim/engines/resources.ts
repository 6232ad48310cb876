// Creates the detector's resources on an AWS-API endpoint (the embedded engines, LocalStack) from the same table
// definition the CDK construct uses.
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DeleteTableCommand,
  type DynamoDBClient,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import { CreateTopicCommand, DeleteTopicCommand, type SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import { CreateQueueCommand, DeleteQueueCommand, GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { A, DEADLINE_INDEX, KEY, OFFLINE_INDEX, OUTBOX_INDEX, SHARD_TABLE } from '../../lambdas/core/table-schema.js';

export function deviceTableInput(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: KEY, AttributeType: 'S' },
      { AttributeName: A.shard, AttributeType: 'S' },
      { AttributeName: A.deadline, AttributeType: 'N' },
      { AttributeName: A.outboxShard, AttributeType: 'S' },
      { AttributeName: A.outboxAt, AttributeType: 'N' },
      { AttributeName: A.offlineShard, AttributeType: 'S' },
      { AttributeName: A.offlineKey, AttributeType: 'S' },
    ],
    KeySchema: [{ AttributeName: KEY, KeyType: 'HASH' }],
    GlobalSecondaryIndexes: [
      {
        IndexName: DEADLINE_INDEX.name,
        KeySchema: [
          { AttributeName: DEADLINE_INDEX.partitionKey, KeyType: 'HASH' },
          { AttributeName: DEADLINE_INDEX.sortKey, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: [...DEADLINE_INDEX.projected] },
      },
      {
        IndexName: OUTBOX_INDEX.name,
        KeySchema: [
          { AttributeName: OUTBOX_INDEX.partitionKey, KeyType: 'HASH' },
          { AttributeName: OUTBOX_INDEX.sortKey, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
      {
        IndexName: OFFLINE_INDEX.name,
        KeySchema: [
          { AttributeName: OFFLINE_INDEX.partitionKey, KeyType: 'HASH' },
          { AttributeName: OFFLINE_INDEX.sortKey, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: [...OFFLINE_INDEX.projected] },
      },
    ],
  };
}

export async function createDeviceTable(dynamodb: DynamoDBClient, tableName: string): Promise<() => Promise<void>> {
  await dynamodb.send(new CreateTableCommand(deviceTableInput(tableName)));
  await waitUntilTableExists({ client: dynamodb, maxWaitTime: 60 }, { TableName: tableName });
  return async () => {
    await dynamodb.send(new DeleteTableCommand({ TableName: tableName }));
  };
}

/** The batched engine's shard table (table-schema.ts SHARD_TABLE). */
export function shardTableInput(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: SHARD_TABLE.partitionKey, AttributeType: 'S' },
      { AttributeName: SHARD_TABLE.sortKey, AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: SHARD_TABLE.partitionKey, KeyType: 'HASH' },
      { AttributeName: SHARD_TABLE.sortKey, KeyType: 'RANGE' },
    ],
  };
}

export async function createShardTable(dynamodb: DynamoDBClient, tableName: string): Promise<() => Promise<void>> {
  await dynamodb.send(new CreateTableCommand(shardTableInput(tableName)));
  await waitUntilTableExists({ client: dynamodb, maxWaitTime: 60 }, { TableName: tableName });
  return async () => {
    await dynamodb.send(new DeleteTableCommand({ TableName: tableName }));
  };
}

export interface Queue {
  url: string;
  arn: string;
  delete(): Promise<void>;
}

export async function createQueue(
  sqs: SQSClient,
  name: string,
  attributes: Record<string, string> = {},
): Promise<Queue> {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
  const url = QueueUrl!;
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }));
  return {
    url,
    arn: Attributes!.QueueArn!,
    delete: async () => {
      await sqs.send(new DeleteQueueCommand({ QueueUrl: url }));
    },
  };
}

export interface Topic {
  arn: string;
  delete(): Promise<void>;
}

export async function createTopic(sns: SNSClient, name: string): Promise<Topic> {
  const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: name }));
  return {
    arn: TopicArn!,
    delete: async () => {
      await sns.send(new DeleteTopicCommand({ TopicArn }));
    },
  };
}

/** Subscribes a queue to a topic with raw delivery, as a user's consumer would. */
export async function subscribeQueue(sns: SNSClient, topicArn: string, queueArn: string): Promise<void> {
  await sns.send(
    new SubscribeCommand({
      TopicArn: topicArn,
      Protocol: 'sqs',
      Endpoint: queueArn,
      Attributes: { RawMessageDelivery: 'true' },
    }),
  );
}
