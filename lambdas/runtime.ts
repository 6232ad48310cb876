// Powertools and AWS clients shared by the handlers of one Lambda container, created once at module scope.
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { EventTopics } from './adapters/event-topics.js';
import { DynamoOutageStore } from './adapters/outage-store.js';
import { RejectQueue } from './adapters/reject-queue.js';
import { ENV, type Env, loadOutageConfig } from './core/config.js';
import { DIMENSION, type EmittedBy, METRIC, METRICS_NAMESPACE } from './core/contracts.js';
import type { RejectReason } from './core/message.js';
import { OutageAwarePublisher } from './core/outage.js';
import type { EventPublisher, RejectedRecord, RejectSink } from './core/ports.js';

export const logger = new Logger();
export const metrics = new Metrics({ namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE });

/** Clients take region and endpoint from the environment (AWS_REGION, AWS_ENDPOINT_URL_*), so the same code runs
 * against AWS, LocalStack and the embedded engines. The SDK retries throttling with backoff before we see it. */
export interface AwsClients {
  dynamodb: DynamoDBClient;
  sqs: SQSClient;
  sns: SNSClient;
}

let clients: AwsClients | undefined;
export function awsClients(): AwsClients {
  clients ??= {
    // More sockets than the SDK's 50: a sweep job settles up to SWEEP_CONCURRENCY devices at once (a batched shard
    // in a storm: 128).
    dynamodb: new DynamoDBClient({ maxAttempts: 6, requestHandler: { httpsAgent: { maxSockets: 256 } } }),
    sqs: new SQSClient({}),
    sns: new SNSClient({}),
  };
  return clients;
}

/** Memoizes a factory: configuration is read and checked on the first invocation, so importing a handler (as the
 * bundling test does) needs no environment, and a bad configuration fails every invocation loudly. */
export function once<T>(factory: () => T): () => T {
  let value: T | undefined;
  return () => {
    value ??= factory();
    return value;
  };
}

/** The rejects queue. Without one a rejection cannot be kept: the sink refuses it, so that an SQS record fails and
 * stays in its source for a person, and a Kinesis record or a batched sweep's rejection is logged instead. */
export function rejectsDestination(sqs: SQSClient, queueUrl: string | undefined): RejectSink {
  if (queueUrl) return new RejectQueue(sqs, queueUrl);
  return {
    send: async (rejections) => {
      logger.error(`${ENV.rejectsQueueUrl} is not set: rejected records are not kept in a queue`);
      return { failed: rejections };
    },
  };
}

/** MessagesRejected, in total and per reason, and RejectsNotDelivered with each undelivered rejection logged (a
 * bounded excerpt, as the queue would keep): the ingest's and the batched sweep's (allow-list mode). */
export function reportRejections(
  rejected: Partial<Record<RejectReason, number>>,
  total: number,
  undelivered: readonly RejectedRecord[],
): void {
  const count = (name: EmittedBy<'ingest'> & EmittedBy<'sweep'>, value: number) =>
    metrics.addMetric(name, MetricUnit.Count, value);
  count(METRIC.MessagesRejected, total);
  for (const [reason, n] of Object.entries(rejected)) {
    const single = metrics.singleMetric();
    single.addDimension(DIMENSION.reason, reason);
    single.addMetric(METRIC.MessagesRejected, MetricUnit.Count, n);
  }
  if (total > 0) logger.warn('records rejected', { rejected });
  count(METRIC.RejectsNotDelivered, undelivered.length);
  for (const { reason, detail, source, recordId, body, encoding } of undelivered) {
    // The rejects destination refused them: the log is where they are kept (a bounded excerpt, as the queue would).
    logger.error('rejected record not delivered to the rejects queue', {
      reason,
      detail,
      source,
      recordId,
      encoding,
      excerpt: body.slice(0, 1024),
    });
  }
}

/** Where device events go: the topics, through the outage hold and marking when outage detection is on (outage.ts). */
export function devicePublisher(
  env: Env,
  clients: Pick<AwsClients, 'sns' | 'dynamodb'>,
  config: { tableName: string; onlineTopicArn?: string; offlineTopicArn?: string },
): EventPublisher {
  const topics = new EventTopics(clients.sns, { online: config.onlineTopicArn, offline: config.offlineTopicArn });
  const outage = loadOutageConfig(env);
  if (!outage) return topics;
  return new OutageAwarePublisher(topics, outage, new DynamoOutageStore(clients.dynamodb, config.tableName), Date.now);
}
