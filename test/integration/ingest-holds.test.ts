// The SQS ingest handler on the engines: every way a record can fail — a write that fails, a batch that throws, a
// batch that would outlive the function — answers Lambda with the record failed, its partition held at the record's
// entry time (watermark.ts `Hold`), and the record handed back in 5 s instead of the visibility timeout; a record
// whose visibility cannot be changed is held until the visibility timeout.
import { GetQueueAttributesCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoWatermarkStore } from '../../lambdas/adapters/watermark-store.js';
import { type IngestHandlerDeps, ingestDepsFromEnv, sqsIngestHandler } from '../../lambdas/ingest-handler.js';
import { createQueue } from '../../sim/engines/resources.js';
import { createTestStack, type TestStack, testClients, uniqueName } from '../support/aws.js';
import { lambdaContext, receiveSqsEvent, syntheticSqsRecord } from '../support/lambda-events.js';

const clients = testClients();
let stack: TestStack;
let env: Record<string, string>;

beforeAll(async () => {
  stack = await createTestStack(clients, 'holds');
  env = {
    TABLE_NAME: stack.tableName,
    REJECTS_QUEUE_URL: stack.rejects.url,
    DEVICE_TYPES: JSON.stringify({ tracker: { timeoutMs: 90_000 } }),
  };
});
afterAll(() => stack.cleanup());

const T = 1_800_000_000_000;

async function invoke(change: (deps: IngestHandlerDeps) => void, remainingMs = 60_000) {
  const queueArn = `arn:aws:sqs:us-east-1:000000000000:${uniqueName('ingest')}`;
  const deps = ingestDepsFromEnv(env, clients);
  change(deps);
  const event = {
    Records: [
      syntheticSqsRecord('{"deviceId":"h-1"}', T + 2_000, queueArn, 'm1'),
      syntheticSqsRecord('{"deviceId":"h-2"}', T + 1_000, queueArn, 'm2'),
    ],
  };
  const response = (await sqsIngestHandler(() => deps)(event, lambdaContext(remainingMs))) as SQSBatchResponse;
  const holds = (await new DynamoWatermarkStore(clients.dynamodb, stack.tableName).read()).holds ?? {};
  // Synthetic receipt handles: the visibility change fails, so the records are held until the visibility timeout.
  return { failed: response.batchItemFailures.map((f) => f.itemIdentifier).sort(), hold: holds[queueArn]?.at(-1) };
}

describe('SQS ingest holds what it fails', () => {
  it('a failed write: only its record, held at its entry time', async () => {
    const { failed, hold } = await invoke((deps) => {
      const { touch, commit } = {
        touch: deps.store.touch.bind(deps.store),
        commit: deps.store.commit.bind(deps.store),
      };
      deps.store.touch = async (request) => {
        if (request.deviceId === 'h-2') throw new Error('throttled (injected)');
        return touch(request);
      };
      deps.store.commit = async (request) => {
        if (request.deviceId === 'h-2') throw new Error('throttled (injected)');
        return commit(request);
      };
    });
    expect(failed).toEqual(['m2']);
    expect(hold).toMatchObject({ at: T + 1_000 });
  });

  it('a batch that throws: every record, held at the oldest', async () => {
    const { failed, hold } = await invoke((deps) => {
      deps.cache = undefined as never; // the core cannot run at all
    });
    expect(failed).toEqual(['m1', 'm2']);
    expect(hold).toMatchObject({ at: T + 1_000 });
  });

  it('a batch that would outlive the function: answered in time, every record failed and held', async () => {
    const { failed, hold } = await invoke((deps) => {
      deps.store.touch = () => new Promise(() => {}); // never answers
    }, 3_001);
    expect(failed).toEqual(['m1', 'm2']);
    expect(hold).toMatchObject({ at: T + 1_000 });
  });

  it('a failed record of a real queue comes back in 5 s, and its hold returns with it', async () => {
    const queue = await createQueue(clients.sqs, uniqueName('holds-ingest'));
    try {
      await clients.sqs.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: '{"deviceId":"h-3"}' }));
      const event = await receiveSqsEvent(clients.sqs, queue.url, queue.arn);
      const deps = ingestDepsFromEnv(env, clients);
      deps.store.touch = async () => {
        throw new Error('throttled (injected)');
      };
      deps.store.commit = deps.store.touch as never;
      let now = 0;
      deps.now = () => {
        now = Date.now();
        return now;
      };
      const response = (await sqsIngestHandler(() => deps)(event, lambdaContext())) as SQSBatchResponse;
      expect(response.batchItemFailures).toHaveLength(1);
      const holds = (await new DynamoWatermarkStore(clients.dynamodb, stack.tableName).read()).holds?.[queue.arn];
      // One hold, returning in 5 s: the visibility change was accepted (else a second hold would wait out the
      // queue's visibility timeout). Until then the record is in flight.
      expect(holds).toEqual([{ at: Number(event.Records[0]!.attributes.SentTimestamp), returnsAt: now + 5_000 }]);
      const { Attributes } = await clients.sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: queue.url,
          AttributeNames: ['ApproximateNumberOfMessagesNotVisible'],
        }),
      );
      expect(Attributes?.ApproximateNumberOfMessagesNotVisible).toBe('1');
    } finally {
      await queue.delete();
    }
  });

  it('nothing held when everything commits', async () => {
    const { failed, hold } = await invoke(() => {});
    expect(failed).toEqual([]);
    expect(hold).toBeUndefined();
  });
});
