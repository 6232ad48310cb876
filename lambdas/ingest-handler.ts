// Wiring shared by the two ingest Lambdas: build the core's dependencies from the environment, map the event
// source's records, run the batch, emit metrics, and answer with a partial batch response.
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, KinesisStreamEvent, KinesisStreamRecord, SQSEvent, SQSRecord } from 'aws-lambda';
import { DynamoDeviceStore } from './adapters/device-store.js';
import { EventTopics } from './adapters/event-topics.js';
import { QueueBacklog } from './adapters/queue-backlog.js';
import { RejectQueue } from './adapters/reject-queue.js';
import { DynamoWatermarkStore } from './adapters/watermark-store.js';
import { ENV, type Env, loadIngestConfig } from './core/config.js';
import { DeviceCache } from './core/device-cache.js';
import { type IngestDeps, type IngestRecord, type IngestResult, ingestBatch } from './core/ingest.js';
import type { RejectSink } from './core/ports.js';
import { newestPerPartition, probeCredit, type WatermarkStore } from './core/watermark.js';
import { type AwsClients, awsClients, logger, metrics } from './runtime.js';

export class RecordNotCommitted extends Error {
  constructor(readonly recordId: string) {
    super(`record ${recordId} was not committed; it will be retried`);
    this.name = 'RecordNotCommitted';
  }
}

/** What the handlers need besides the core: where probes are credited, and how to see an SQS queue's backlog. */
export interface IngestHandlerDeps extends IngestDeps {
  watermarks: Pick<WatermarkStore, 'credit'>;
  backlog: Pick<QueueBacklog, 'visible'>;
}

export function ingestDepsFromEnv(env: Env, clients: AwsClients = awsClients()): IngestHandlerDeps {
  const config = loadIngestConfig(env);
  return {
    config,
    store: new DynamoDeviceStore(clients.dynamodb, { tableName: config.tableName }),
    publisher: new EventTopics(clients.sns, {
      online: config.onlineTopicArn,
      offline: config.offlineTopicArn,
    }),
    rejects: config.rejectsQueueUrl ? new RejectQueue(clients.sqs, config.rejectsQueueUrl) : missingRejectsQueue,
    cache: new DeviceCache(config.cacheSize),
    now: Date.now,
    watermarks: new DynamoWatermarkStore(clients.dynamodb, config.tableName),
    backlog: new QueueBacklog(clients.sqs),
  };
}

/** Without a rejects queue a rejection cannot be kept, so its record fails and stays in the source for a person. */
const missingRejectsQueue: RejectSink = {
  send: async (rejections) => {
    logger.error(`${ENV.rejectsQueueUrl} is not set: rejected records stay in the source`);
    return { failed: rejections };
  },
};

export function fromSqs(record: SQSRecord): IngestRecord {
  return {
    id: record.messageId,
    body: record.body,
    enteredAt: Number(record.attributes.SentTimestamp),
    partition: record.eventSourceARN,
  };
}

export function fromKinesis(record: KinesisStreamRecord): IngestRecord {
  const shardId = record.eventID.split(':')[0];
  return {
    id: record.kinesis.sequenceNumber,
    body: Buffer.from(record.kinesis.data, 'base64'),
    // Lambda gives the arrival time in (fractional) seconds.
    enteredAt: Math.round(record.kinesis.approximateArrivalTimestamp * 1000),
    partition: `${record.eventSourceARN}/${shardId}`,
  };
}

function report(result: IngestResult) {
  const { stats } = result;
  const count = (name: string, value: number) => metrics.addMetric(name, MetricUnit.Count, value);
  count('MessagesReceived', stats.messages);
  count('MessagesRejected', stats.rejectedTotal);
  count('WritesCommitted', stats.written);
  count('WritesCoalesced', stats.coalesced);
  count('StaleMessages', stats.stale);
  count('WriteFailures', stats.failedWrites);
  count('OnlineTransitions', stats.onlineTransitions);
  count('FlapStarted', stats.flapStarted);
  count('WriteUnits', stats.writeUnits);
  count('EventsPublished', stats.published);
  count('PublishFailures', stats.publishFailures);
  for (const [reason, n] of Object.entries(stats.rejected)) {
    const single = metrics.singleMetric();
    single.addDimension('reason', reason);
    single.addMetric('MessagesRejected', MetricUnit.Count, n);
  }
  if (stats.rejectedTotal > 0) logger.warn('records rejected', { rejected: stats.rejected });
  if (result.failedRecordIds.size > 0) {
    logger.error('records not committed, returned for retry', { failed: result.failedRecordIds.size });
  }
}

/** Raises the watermark of every partition a committed probe was read from. Never fails the batch: its records
 * are committed, and a probe not credited only holds the sweep back until the next one. */
async function creditProbes(result: IngestResult, deps: IngestHandlerDeps, ordered: boolean) {
  const seen = result.probes.map(({ partition, probeAt }) => ({ partition, probeAt }));
  let credited = 0;
  let notCredited = 0;
  await Promise.all(
    newestPerPartition(seen).map(async (probe) => {
      try {
        const visibleBacklog = ordered ? undefined : await deps.backlog.visible(probe.partition).catch(() => undefined);
        const source = ordered
          ? { ordered: true as const }
          : { ordered: false as const, visibleBacklog, maxBacklog: deps.config.probeMaxBacklog };
        const mark = probeCredit(probe.probeAt, deps.now(), source);
        if (mark === undefined) {
          notCredited += probe.count;
          return;
        }
        await deps.watermarks.credit(probe.partition, mark);
        credited += probe.count;
      } catch (error) {
        notCredited += probe.count;
        logger.warn('probe not credited', { partition: probe.partition, error });
      }
    }),
  );
  metrics.addMetric('ProbesCredited', MetricUnit.Count, credited);
  metrics.addMetric('ProbesNotCredited', MetricUnit.Count, notCredited + result.stats.probes - result.probes.length);
}

type Source<E> = {
  eventType: (typeof EventType)[keyof typeof EventType];
  ordered: boolean;
  records: (event: E) => IngestRecord[];
};

function ingestHandler<E extends SQSEvent | KinesisStreamEvent>(source: Source<E>, deps: () => IngestHandlerDeps) {
  const processor = new BatchProcessor(source.eventType);
  return middy<E, unknown, Error, Context>()
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics, { captureColdStartMetric: true }))
    .handler(async (event, context) => {
      const result = await ingestBatch(source.records(event), deps(), { ordered: source.ordered });
      report(result);
      await creditProbes(result, deps(), source.ordered);
      return processPartialResponse(
        event,
        (record: SQSRecord | KinesisStreamRecord) => {
          const id = 'messageId' in record ? record.messageId : record.kinesis.sequenceNumber;
          if (result.failedRecordIds.has(id)) throw new RecordNotCommitted(id);
        },
        processor,
        { context },
      );
    });
}

export const sqsIngestHandler = (deps: () => IngestHandlerDeps) =>
  ingestHandler<SQSEvent>(
    { eventType: EventType.SQS, ordered: false, records: (event) => event.Records.map(fromSqs) },
    deps,
  );

export const kinesisIngestHandler = (deps: () => IngestHandlerDeps) =>
  ingestHandler<KinesisStreamEvent>(
    { eventType: EventType.KinesisDataStreams, ordered: true, records: (event) => event.Records.map(fromKinesis) },
    deps,
  );
