// The DynamoDB engine of `npm start` on a machine without Java: dynalite behind the front that makes up for what it
// lacks (sim/engines/dynalite.ts), in its child process. CI has Java, so this file starts the fallback itself, as
// npm start does: the device store's outbox contract (conditional commits that return the stored item, spills in a
// transaction) runs on it, and the front's two additions are checked the way DynamoDB answers them. The whole
// integration suite also passes on it: OFFLINE_DETECTOR_LOCAL_DYNAMODB=dynalite npx vitest run test/integration
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  PutItemCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDeviceStore } from '../../lambdas/adapters/device-store.js';
import { KEY } from '../../lambdas/core/table-schema.js';
import { dynamoEngineFor, LOCAL_CREDENTIALS, LOCAL_REGION, startDynamoDb } from '../../sim/engines/engines.js';
import { createDeviceTable } from '../../sim/engines/resources.js';
import { dynamoOutboxSetup } from '../support/dynamo-outbox.js';
import { outboxContract } from '../support/outbox-contract.js';

const tableName = 'devices';
let engine: Awaited<ReturnType<typeof startDynamoDb>>;
let client: DynamoDBClient;
let store: DynamoDeviceStore;

beforeAll(async () => {
  engine = await startDynamoDb('dynalite');
  expect(engine.engine).toBe('dynalite');
  client = new DynamoDBClient({ endpoint: engine.endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  store = new DynamoDeviceStore(client, { tableName });
  await createDeviceTable(client, tableName);
});
afterAll(async () => {
  client?.destroy();
  await engine?.stop();
});

it('is what npm start takes when OFFLINE_DETECTOR_LOCAL_DYNAMODB says so (or Java 17 is missing)', () => {
  const saved = process.env.OFFLINE_DETECTOR_LOCAL_DYNAMODB;
  try {
    process.env.OFFLINE_DETECTOR_LOCAL_DYNAMODB = 'dynalite';
    expect(dynamoEngineFor('auto')).toBe('dynalite');
    // Forced everywhere, the test engines included.
    expect(dynamoEngineFor('dynamodb-local')).toBe('dynalite');
    process.env.OFFLINE_DETECTOR_LOCAL_DYNAMODB = 'dynamodb-local';
    expect(dynamoEngineFor('auto')).toBe('dynamodb-local');
    process.env.OFFLINE_DETECTOR_LOCAL_DYNAMODB = 'java';
    expect(() => dynamoEngineFor('auto')).toThrow(/dynalite or dynamodb-local/);
    delete process.env.OFFLINE_DETECTOR_LOCAL_DYNAMODB;
    expect(dynamoEngineFor()).toBe('dynamodb-local');
  } finally {
    if (saved === undefined) delete process.env.OFFLINE_DETECTOR_LOCAL_DYNAMODB;
    else process.env.OFFLINE_DETECTOR_LOCAL_DYNAMODB = saved;
  }
});

describe('the dynalite front', () => {
  it('returns the stored item with a failed condition (ReturnValuesOnConditionCheckFailure: ALL_OLD)', async () => {
    await client.send(new PutItemCommand({ TableName: tableName, Item: { [KEY]: { S: 'front-1' }, n: { N: '1' } } }));
    const update = (returnOld: boolean) =>
      client.send(
        new UpdateItemCommand({
          TableName: tableName,
          Key: { [KEY]: { S: 'front-1' } },
          UpdateExpression: 'SET n = :two',
          ConditionExpression: 'n = :zero',
          ExpressionAttributeValues: { ':zero': { N: '0' }, ':two': { N: '2' } },
          ...(returnOld ? { ReturnValuesOnConditionCheckFailure: 'ALL_OLD' as const } : {}),
        }),
      );
    const failure = await update(true).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ConditionalCheckFailedException);
    expect((failure as ConditionalCheckFailedException).Item).toEqual({ [KEY]: { S: 'front-1' }, n: { N: '1' } });
    const plain = await update(false).catch((error: unknown) => error);
    expect(plain).toBeInstanceOf(ConditionalCheckFailedException);
    expect((plain as ConditionalCheckFailedException).Item).toBeUndefined();
  });

  it('applies a transaction whole, or not at all with a reason per item', async () => {
    const write = (expected: string) =>
      client.send(
        new TransactWriteItemsCommand({
          ReturnConsumedCapacity: 'TOTAL',
          TransactItems: [
            { Put: { TableName: tableName, Item: { [KEY]: { S: 'tx-a' }, v: { S: expected } } } },
            {
              Update: {
                TableName: tableName,
                Key: { [KEY]: { S: 'tx-b' } },
                UpdateExpression: 'SET v = :next',
                ConditionExpression: 'attribute_not_exists(v) OR v = :expected',
                ExpressionAttributeValues: { ':expected': { S: expected }, ':next': { S: `${expected}+` } },
                ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
              },
            },
          ],
        }),
      );
    const doc = DynamoDBDocumentClient.from(client);
    const get = async (key: string) =>
      (await doc.send(new GetCommand({ TableName: tableName, Key: { [KEY]: key }, ConsistentRead: true }))).Item;

    const first = await write('x');
    expect(first.ConsumedCapacity?.[0]).toMatchObject({ TableName: tableName, CapacityUnits: 4 });
    expect([await get('tx-a'), await get('tx-b')]).toEqual([
      { [KEY]: 'tx-a', v: 'x' },
      { [KEY]: 'tx-b', v: 'x+' },
    ]);

    const failure = await write('y').catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TransactionCanceledException);
    expect((failure as TransactionCanceledException).CancellationReasons).toEqual([
      { Code: 'None' },
      {
        Code: 'ConditionalCheckFailed',
        Message: 'The conditional request failed',
        Item: { [KEY]: { S: 'tx-b' }, v: { S: 'x+' } },
      },
    ]);
    // The Put that succeeded on its own was put back.
    expect([await get('tx-a'), await get('tx-b')]).toEqual([
      { [KEY]: 'tx-a', v: 'x' },
      { [KEY]: 'tx-b', v: 'x+' },
    ]);
  });
});

describe('DynamoDeviceStore on dynalite: the bounded outbox', () => {
  outboxContract(
    dynamoOutboxSetup(
      () => client,
      tableName,
      () => store,
    ),
  );
});
