// The visible backlog of an SQS ingest queue, which decides whether a probe read from it may be credited (see
// `probeCredit` in core/watermark.ts for why only the visible count matters).
import { GetQueueAttributesCommand, GetQueueUrlCommand, type SQSClient } from '@aws-sdk/client-sqs';

export class QueueBacklog {
  private readonly urls = new Map<string, Promise<string>>();

  constructor(private readonly sqs: SQSClient) {}

  /** ApproximateNumberOfMessages of the queue Lambda names by ARN: one GetQueueAttributes per call. */
  async visible(queueArn: string): Promise<number> {
    const { Attributes } = await this.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: await this.url(queueArn),
        AttributeNames: ['ApproximateNumberOfMessages'],
      }),
    );
    const visible = Number(Attributes?.ApproximateNumberOfMessages);
    if (!Number.isFinite(visible)) throw new Error(`no ApproximateNumberOfMessages for ${queueArn}`);
    return visible;
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
