// `offline-detector redrive` on the engines: dead-lettered ingest messages go back into the ingest queue and are
// judged by the time they first entered; an entry time a producer claims without the signature is ignored.
import { ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../bin/cli.js';
import { DynamoDeviceStore } from '../../lambdas/adapters/device-store.js';
import { DynamoProbeKey } from '../../lambdas/adapters/probe-key.js';
import { ENTRY_ATTRIBUTES } from '../../lambdas/core/probe.js';
import { ingestDepsFromEnv, sqsIngestHandler } from '../../lambdas/ingest-handler.js';
import { LOCAL_CREDENTIALS } from '../../sim/engines/engines.js';
import { createDeviceTable, createQueue, type Queue } from '../../sim/engines/resources.js';
import { createTestStack, type TestStack, testClients, uniqueName } from '../support/aws.js';
import { lambdaContext, receiveSqsEvent } from '../support/lambda-events.js';

const clients = testClients();
let stack: TestStack;
let dlq: Queue;
let ingest: Queue;

beforeAll(async () => {
  stack = await createTestStack(clients, 'redrive');
  dlq = await createQueue(clients.sqs, uniqueName('ingest-dlq'));
  ingest = await createQueue(clients.sqs, uniqueName('ingest'));
});
afterAll(async () => {
  await Promise.allSettled([stack.cleanup(), dlq.delete(), ingest.delete()]);
});

/** Runs the CLI with the engines as its endpoints, as an operator would with AWS_ENDPOINT_URL_*. */
async function cli(argv: string[]) {
  const saved = { ...process.env };
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_SQS: clients.endpoints.sqs,
    AWS_ENDPOINT_URL_DYNAMODB: clients.endpoints.dynamodb,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
  });
  const lines: string[] = [];
  try {
    const code = await main(argv, (line) => lines.push(line));
    return { code, out: lines.join('\n') };
  } finally {
    process.env = saved;
  }
}

describe('redrive', () => {
  it('keeps the original entry time of a dead-lettered message, and ignores a claim nobody signed', async () => {
    await new DynamoProbeKey(clients.dynamodb, stack.tableName).getOrCreate();
    await clients.sqs.send(new SendMessageCommand({ QueueUrl: dlq.url, MessageBody: '{"deviceId":"late-1"}' }));
    const peek = await clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: dlq.url, MessageSystemAttributeNames: ['All'], VisibilityTimeout: 0 }),
    );
    const firstEntered = Number(peek.Messages![0]!.Attributes!.SentTimestamp);
    // A producer claiming an old entry time for its own message.
    await clients.sqs.send(
      new SendMessageCommand({
        QueueUrl: ingest.url,
        MessageBody: '{"deviceId":"forger-1"}',
        MessageAttributes: {
          [ENTRY_ATTRIBUTES.at]: { DataType: 'String', StringValue: '1000' },
          [ENTRY_ATTRIBUTES.sig]: { DataType: 'String', StringValue: 'not-a-signature' },
        },
      }),
    );
    const redriven = await cli(['redrive', '--from', dlq.url, '--to', ingest.url, '--table', stack.tableName]);
    expect(redriven).toMatchObject({ code: 0, out: '{"moved":1,"failed":0}' });

    const event = await receiveSqsEvent(clients.sqs, ingest.url, ingest.arn);
    expect(event.Records).toHaveLength(2);
    const env = { TABLE_NAME: stack.tableName, REJECTS_QUEUE_URL: stack.rejects.url };
    await sqsIngestHandler(() => ingestDepsFromEnv(env, clients))(event, lambdaContext());
    const store = new DynamoDeviceStore(clients.dynamodb, { tableName: stack.tableName });
    const sentAt = (deviceId: string) =>
      Number(event.Records.find((r) => r.body.includes(deviceId))!.attributes.SentTimestamp);
    const copy = event.Records.find((r) => r.body.includes('late-1'))!;
    expect(copy.messageAttributes[ENTRY_ATTRIBUTES.at]?.stringValue).toBe(String(firstEntered));
    expect((await store.get('late-1'))?.lastSeen).toBe(firstEntered);
    expect((await store.get('forger-1'))?.lastSeen).toBe(sentAt('forger-1'));
  });

  it('refuses to run without its queues and table, or before the dispatcher created the key', async () => {
    expect((await cli(['redrive', '--from', dlq.url])).code).toBe(2);
    const table = uniqueName('no-key');
    const drop = await createDeviceTable(clients.dynamodb, table);
    const out = await cli(['redrive', '--from', dlq.url, '--to', ingest.url, '--table', table]);
    await drop();
    expect(out).toMatchObject({ code: 1, out: expect.stringContaining('no signing key') });
  });
});
