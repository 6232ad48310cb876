// The visible backlog of an SQS ingest queue, which decides whether a probe read from it may be credited (see
// `probeCredit` in core/watermark.ts for why only the visible count matters), and its visibility timeout, which
// decides when a probe may release a hold on failed records (core/progress.ts).
import { GetQueueAttributesCommand, GetQueueUrlCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { QueueState } from '../core/progress.js';

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
