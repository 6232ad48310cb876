// What the ingest needs of an SQS ingest queue besides Lambda's batches: its visible backlog, which decides whether
// a probe read from it may be credited (`probeCredit` in core/watermark.ts), its visibility timeout, and handing
// failed records back sooner than that (core/progress.ts).
import {
  ChangeMessageVisibilityBatchCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { QueueState } from '../core/progress.js';
import { chunks } from './chunks.js';

export class QueueBacklog {
  private readonly urls = new Map<string, Promise<string>>();

  constructor(private readonly sqs: SQSClient) {}

  /** ApproximateNumberOfMessages and VisibilityTimeout of the queue Lambda names by ARN, in one GetQueueAttributes:
   * read per credit rather than configured, so a queue the user brought or changed is judged as it is. */
  async state(queueArn: string): Promise<QueueState> {
    const { Attributes } = await this.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: await this.url(queueArn),
        AttributeNames: ['ApproximateNumberOfMessages', 'VisibilityTimeout'],
      }),
    );
    const visible = Number(Attributes?.ApproximateNumberOfMessages);
    const visibilityTimeout = Number(Attributes?.VisibilityTimeout);
    if (!Number.isFinite(visible) || !Number.isFinite(visibilityTimeout)) {
      throw new Error(`no ApproximateNumberOfMessages or VisibilityTimeout for ${queueArn}`);
    }
    return { visible, visibilityTimeoutMs: visibilityTimeout * 1000 };
  }

  async retryAfter(queueArn: string, receiptHandles: string[], delaySeconds: number): Promise<{ failed: string[] }> {
    const url = await this.url(queueArn);
    const failed: string[] = [];
    await Promise.all(
      chunks(receiptHandles, 10).map(async (chunk) => {
        try {
          const out = await this.sqs.send(
            new ChangeMessageVisibilityBatchCommand({
              QueueUrl: url,
              Entries: chunk.map((handle, i) => ({
                Id: String(i),
                ReceiptHandle: handle,
                VisibilityTimeout: delaySeconds,
              })),
            }),
          );
          for (const entry of out.Failed ?? []) failed.push(chunk[Number(entry.Id)]!);
        } catch {
          failed.push(...chunk);
        }
      }),
    );
    return { failed };
  }

  /** The queue URL for an ARN (`arn:<partition>:sqs:<region>:<account>:<name>`), looked up once per container. */
  private url(queueArn: string): Promise<string> {
    let url = this.urls.get(queueArn);
    if (!url) {
      const [, , , , account, name] = queueArn.split(':');
      if (!account || !name) return Promise.reject(new Error(`not a queue ARN: ${queueArn}`));
      url = this.sqs
        .send(new GetQueueUrlCommand({ QueueName: name, QueueOwnerAWSAccountId: account }))
        .then(({ QueueUrl }) => {
          if (!QueueUrl) throw new Error(`no URL for ${queueArn}`);
          return QueueUrl;
        });
      url.catch(() => this.urls.delete(queueArn));
      this.urls.set(queueArn, url);
    }
    return url;
  }
}
