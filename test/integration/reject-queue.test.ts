// The rejects queue adapter on the engines: a batch of oversized rejections (the issue: whole bodies, cut by
// characters, ten to a SendMessageBatch past SQS's batch limit, so all failed and the batch was retried) is delivered
// whole, each body a bounded excerpt cut on a character boundary.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_EXCERPT_BYTES, RejectQueue } from '../../lambdas/adapters/reject-queue.js';
import type { RejectedRecord } from '../../lambdas/core/ports.js';
import { createQueue, type Queue } from '../../sim/engines/resources.js';
import { drainQueue, testClients, uniqueName } from '../support/aws.js';

const clients = testClients();
let queue: Queue;
beforeAll(async () => {
  queue = await createQueue(clients.sqs, uniqueName('rejects'));
});
afterAll(() => queue.delete());

const rejection = (i: number, body: string): RejectedRecord => ({
  kind: 'reject',
  reason: 'PAYLOAD_TOO_LARGE',
  detail: `${Buffer.byteLength(body)} bytes > 65536`,
  body,
  encoding: 'utf8',
  source: 'arn:aws:kinesis:us-east-1:000000000000:stream/ingest/shardId-000000000000',
  recordId: `r-${i}`,
});

describe('RejectQueue', () => {
  it('delivers ten 200 KB rejections in one call, each as a bounded excerpt that splits no character', async () => {
    // 3-byte characters: a cut by characters would keep three times the bytes, a cut by bytes may split one.
    const body = '€'.repeat(70_000);
    const out = await new RejectQueue(clients.sqs, queue.url).send(
      Array.from({ length: 10 }, (_, i) => rejection(i, body)),
    );
    expect(out.failed).toEqual([]);
    const messages = await drainQueue(clients.sqs, queue.url);
    expect(messages).toHaveLength(10);
    for (const message of messages) {
      expect(Buffer.byteLength(message.Body!)).toBeLessThanOrEqual(MAX_EXCERPT_BYTES);
      expect(message.Body!.length).toBeGreaterThan(MAX_EXCERPT_BYTES / 3 - 2);
      expect(message.Body!).toMatch(/^€+$/);
      expect(message.MessageAttributes?.truncated?.StringValue).toBe('true');
      expect(message.MessageAttributes?.reason?.StringValue).toBe('PAYLOAD_TOO_LARGE');
    }
  });
});
