import { CreateTableCommand, DeleteTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { expect, inject, it } from 'vitest';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../sim/engines/engines.js';

it('starts DynamoDB Local', async () => {
  const client = new DynamoDBClient({
    endpoint: inject('endpoints').dynamodb,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
  });
  const name = `t-${Date.now()}`;
  const out = await client.send(
    new CreateTableCommand({
      TableName: name,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
    }),
  );
  expect(out.TableDescription?.TableName).toBe(name);
  await client.send(new DeleteTableCommand({ TableName: name }));
});
