// Wiring shared by the two ingest Lambdas: build the core's dependencies from the environment, map the event
// source's records, run the batch, emit metrics, and answer with a partial batch response.
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, KinesisStreamEvent, KinesisStreamRecord, SQSEvent, SQSRecord } from 'aws-lambda';
import { DynamoDeviceStore } from './adapters/device-store.js';
import { DynamoProbeKey } from './adapters/probe-key.js';
import { QueueBacklog } from './adapters/queue-backlog.js';
import { DynamoSightingLog } from './adapters/shard-log.js';
import { DynamoWatermarkStore } from './adapters/watermark-store.js';
import { type Env, loadBatchedEngine, loadIngestConfig } from './core/config.js';
import { type EmittedBy, METRIC } from './core/contracts.js';
import { DeviceCache } from './core/device-cache.js';
import { emptyStats, type IngestDeps, type IngestRecord, type IngestResult, ingestBatch } from './core/ingest.js';
import { ENTRY_ATTRIBUTES } from './core/probe.js';
import { type Progress, type ProgressDeps, recordProgress } from './core/progress.js';
import {
  type AwsClients,
  awsClients,
  devicePublisher,
  logger,
  metrics,
  rejectsDestination,
  reportRejections,
} from './runtime.js';

export class RecordNotCommitted extends Error {
  constructor(readonly recordId: string) {
    super(`record ${recordId} was not committed; it will be retried`);
    this.name = 'RecordNotCommitted';
  }
}

/** What the handlers need besides the core: where probes are credited and failures held, and how to see an SQS
 * queue's backlog. */
export interface IngestHandlerDeps extends IngestDeps {
  watermarks: ProgressDeps['watermarks'];
  queue: ProgressDeps['queue'];
}

export function ingestDepsFromEnv(env: Env, clients: AwsClients = awsClients()): IngestHandlerDeps {
  const config = loadIngestConfig(env);
  const batched = loadBatchedEngine(env);
  return {
    ...(batched
      ? {
          sightings: {
            log: new DynamoSightingLog(clients.dynamodb, batched.shardTableName, { retentionMs: batched.retentionMs }),
            shardCount: batched.shardCount,
          },
        }
      : {}),
    config,
    store: new DynamoDeviceStore(clients.dynamodb, { tableName: config.tableName }),
    publisher: devicePublisher(env, clients, config),
    rejects: rejectsDestination(clients.sqs, config.rejectsQueueUrl),
    cache: new DeviceCache(config.cacheSize),
    now: Date.now,
    probeKey: new DynamoProbeKey(clients.dynamodb, config.tableName),
    watermarks: new DynamoWatermarkStore(clients.dynamodb, config.tableName),
    queue: new QueueBacklog(clients.sqs),
  };
}

export function fromSqs(record: SQSRecord): IngestRecord {
  const at = record.messageAttributes?.[ENTRY_ATTRIBUTES.at]?.stringValue;
  const sig = record.messageAttributes?.[ENTRY_ATTRIBUTES.sig]?.stringValue;
  return {
    id: record.messageId,
    body: record.body,
    enteredAt: Number(record.attributes.SentTimestamp),
    partition: record.eventSourceARN,
    source: record.eventSourceARN,
    receiptHandle: record.receiptHandle,
    receiveCount: Number(record.attributes.ApproximateReceiveCount) || 1,
    ...(at !== undefined && sig !== undefined ? { claimedEntry: { at: Number(at), sig } } : {}),
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
    source: record.eventSourceARN,
  };
}

/** The ingest's metrics: only names the contract lists for its service (contracts.ts). */
const count = (name: EmittedBy<'ingest'>, value: number) => metrics.addMetric(name, MetricUnit.Count, value);

export function report(result: IngestResult): void {
  const { stats } = result;
  count(METRIC.MessagesReceived, stats.messages);
  count(METRIC.WritesCommitted, stats.written);
  count(METRIC.WritesCoalesced, stats.coalesced);
  count(METRIC.StaleMessages, stats.stale);
  count(METRIC.WriteFailures, stats.failedWrites);
  count(METRIC.OnlineTransitions, stats.onlineTransitions);
  count(METRIC.NewDevices, stats.newDevices);
  count(METRIC.FlapStarted, stats.flapStarted);
  count(METRIC.WriteUnits, stats.writeUnits);
  count(METRIC.EventsPublished, stats.published);
  count(METRIC.PublishFailures, stats.publishFailures);
  reportRejections(stats.rejected, stats.rejectedTotal, result.undeliveredRejections ?? []);
  if (result.failedRecordIds.size > 0) {
    logger.error('records not committed, returned for retry', { failed: result.failedRecordIds.size });
  }
}

export function reportProgress(progress: Progress): void {
  count(METRIC.ProbesCredited, progress.credited);
  count(METRIC.ProbesNotCredited, progress.notCredited);
  count(METRIC.RecordsHeld, progress.held);
  count(METRIC.HoldFailures, progress.errors.filter((e) => e.step === 'hold').length);
  for (const { step, error } of progress.errors) {
    // A hold not written leaves failed records unprotected for a visibility timeout: alarmed on (HoldFailures).
    if (step === 'hold') logger.error('failed records not held', { error });
    else logger.warn('probe not credited', { error });
  }
}

/** Left of the function's time to record holds and credits and answer Lambda. */
const ANSWER_MARGIN_MS = 3_000;

/**
 * The batch's outcome, or every record failed when the batch throws or would outlive the function: an answer Lambda
 * gets in time is one whose failures are held, while an invocation that errors or times out would return its
 * records after the visibility timeout with no hold (progress.ts). Writes still running after the answer are
 * conditional, so the retry finds them done or does them.
 */
async function ingestInTime(
  records: IngestRecord[],
  deps: IngestDeps,
  ordered: boolean,
  remainingMs: number,
): Promise<IngestResult> {
  const allFailed = (): IngestResult => ({
    failedRecordIds: new Set(records.map((record) => record.id)),
    probes: [],
    stats: emptyStats(records.length),
  });
  const budget = remainingMs - ANSWER_MARGIN_MS;
  if (budget <= 0) return allFailed();
  let timer: NodeJS.Timeout | undefined;
  const outOfTime = new Promise<IngestResult>((resolve) => {
    timer = setTimeout(() => {
      logger.error('batch did not finish in time: every record returned and held', { records: records.length });
      resolve(allFailed());
    }, budget);
  });
  try {
    return await Promise.race([ingestBatch(records, deps, { ordered }), outOfTime]);
  } catch (error) {
    logger.error('batch failed: every record returned and held', { error });
    return allFailed();
  } finally {
    clearTimeout(timer);
  }
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
      const records = source.records(event);
      const d = deps();
      // The batch budget, not just the function's time: a hold is released a budget after its records return.
      const budgetMs = Math.min(context.getRemainingTimeInMillis(), d.config.ingestTimeoutMs + ANSWER_MARGIN_MS);
      const result = await ingestInTime(records, d, source.ordered, budgetMs);
      report(result);
      const progress = await recordProgress(
        records,
        result,
        {
          watermarks: d.watermarks,
          queue: d.queue,
          probeMaxBacklog: d.config.probeMaxBacklog,
          batchTimeoutMs: d.config.ingestTimeoutMs,
          now: d.now,
        },
        { ordered: source.ordered },
      );
      reportProgress(progress);
      return processPartialResponse(
        event,
        (record: SQSRecord | KinesisStreamRecord) => {
          const id = 'messageId' in record ? record.messageId : record.kinesis.sequenceNumber;
          if (result.failedRecordIds.has(id)) throw new RecordNotCommitted(id);
        },
        processor,
        // A batch that failed as a whole is answered like any other: its records are held and listed, and the error
        // is logged above, rather than thrown as a function error that retries the same way.
        { context, throwOnFullBatchFailure: false },
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
