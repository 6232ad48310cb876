// Sweep Lambda: one SQS message per job (a shard, or a continuation of one). Finds the shard's expired devices by
// the watermark cutoff, commits their offline transitions, publishes through the outbox, re-publishes stale outboxes.
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { DynamoDeviceStore } from './adapters/device-store.js';
import { DynamoMaintenanceStore } from './adapters/maintenance-store.js';
import { DynamoShardStates, DynamoSightingLog } from './adapters/shard-log.js';
import { SweepQueue } from './adapters/sweep-queue.js';
import { DynamoWatermarkStore } from './adapters/watermark-store.js';
import { type BatchedSweepDeps, type BatchedSweepStats, sweepBatchedShard } from './core/batched.js';
import { ENV, type Env, loadBatchedEngine, loadIngestConfig, loadSweepConfig, requireString } from './core/config.js';
import { type EmittedBy, METRIC } from './core/contracts.js';
import { flapDampingByType } from './core/flap.js';
import {
  parseSweepJob,
  type SweepDeps,
  type SweepJob,
  type SweepOptions,
  type SweepStats,
  sweepShard,
} from './core/sweep.js';
import {
  type AwsClients,
  awsClients,
  devicePublisher,
  logger,
  metrics,
  once,
  rejectsDestination,
  reportRejections,
} from './runtime.js';

/** The per-device engine's sweep dependencies, or the batched engine's (which carry its shard logs and states). */
export type AnySweepDeps = SweepDeps | BatchedSweepDeps;

export function sweepDepsFromEnv(env: Env, clients: AwsClients = awsClients()): AnySweepDeps {
  const config = loadSweepConfig(env);
  const batched = loadBatchedEngine(env);
  const base = {
    settings: {
      toleranceMs: config.watermarkToleranceMs,
      budgetMs: config.sweepBudgetMs,
      pageSize: config.sweepPageSize,
      concurrency: config.sweepConcurrency,
      republishAfterMs: config.outboxRepublishAfterMs,
      flapDamping: flapDampingByType(config.deviceTypes),
      maintenanceRecheckMs: config.maintenanceRecheckMs,
      ...(config.parentTag ? { parentTag: config.parentTag } : {}),
      parentGraceMs: config.parentGraceMs,
    },
    maintenance: new DynamoMaintenanceStore(clients.dynamodb, config.tableName),
    store: new DynamoDeviceStore(clients.dynamodb, { tableName: config.tableName }),
    publisher: devicePublisher(env, clients, config),
    watermarks: new DynamoWatermarkStore(clients.dynamodb, config.tableName),
    queue: new SweepQueue(clients.sqs, requireString(env, ENV.sweepQueueUrl)),
    now: Date.now,
  };
  if (!batched) return base;
  const { store, ...rest } = base;
  const tables = { retentionMs: batched.retentionMs };
  const ingest = loadIngestConfig(env);
  return {
    ...rest,
    table: store,
    log: new DynamoSightingLog(clients.dynamodb, batched.shardTableName, tables),
    states: new DynamoShardStates(clients.dynamodb, batched.shardTableName, tables),
    ingest,
    batched,
    // Allow-list mode: the sweep is where a device that is not registered shows (REJECTS_QUEUE_URL, as the ingest's).
    ...(ingest.allowList ? { rejects: rejectsDestination(clients.sqs, ingest.rejectsQueueUrl) } : {}),
    // Warm shard states between the jobs this container runs (each job checks the version first).
    cache: new Map(),
  };
}

/** Runs one job on whichever engine the dependencies are for. */
export function runSweep(
  job: SweepJob,
  deps: AnySweepDeps,
  options: SweepOptions,
): Promise<SweepStats | BatchedSweepStats> {
  return 'log' in deps ? sweepBatchedShard(job, deps, options) : sweepShard(job, deps, options);
}

export class SweepIncomplete extends Error {
  constructor(readonly stats: SweepStats) {
    super(`shard ${stats.shard}: ${stats.errors.length} device(s) not settled: ${String(stats.errors[0])}`);
    this.name = 'SweepIncomplete';
  }
}

/** The sweep's metrics: only names the contract lists for its service (contracts.ts). */
const count = (name: EmittedBy<'sweep'>, value: number) => metrics.addMetric(name, MetricUnit.Count, value);
const millis = (name: EmittedBy<'sweep'>, value: number) => metrics.addMetric(name, MetricUnit.Milliseconds, value);

export function report(stats: SweepStats & Partial<Pick<BatchedSweepStats, 'merge' | 'undeliveredRejections'>>): void {
  // The batched engine's slow path rejects in allow-list mode; the per-device engine's sweep reads no messages, and
  // reports no rejection metrics at all.
  if (stats.merge) {
    reportRejections(stats.merge.rejected, stats.merge.rejectedTotal, stats.undeliveredRejections ?? []);
  }
  count(METRIC.ItemsScanned, stats.scanned);
  count(METRIC.OfflineTransitions, stats.offline);
  count(METRIC.FlapStarted, stats.flapStarted);
  count(METRIC.FlapSettled, stats.settled);
  count(METRIC.Rearms, stats.rearmed);
  count(METRIC.Continuations, stats.continued ? 1 : 0);
  count(METRIC.OutboxRepublished, stats.republished);
  count(METRIC.EventsPublished, stats.published);
  count(METRIC.PublishFailures, stats.publishFailures);
  count(METRIC.WriteUnits, stats.writeUnits);
  if (stats.lagMs !== undefined) millis(METRIC.SweepLagMs, stats.lagMs);
  // A partition that never credited a probe has no finite age; the alarm on this metric then sees the cap.
  if (stats.watermarkAgeMs !== undefined) {
    millis(METRIC.WatermarkAgeMs, Math.min(stats.watermarkAgeMs, 86_400_000));
  }
  for (const ms of stats.latenessMs) millis(METRIC.DetectionLatenessMs, ms);
  const { errors, latenessMs: _l, undeliveredRejections: _u, ...summary } = stats;
  if (stats.cutoff === undefined) logger.warn('no cutoff: a live ingest partition has no watermark yet', summary);
  else logger.info('shard swept', summary);
}

export function sweepHandler(deps: () => AnySweepDeps) {
  const processor = new BatchProcessor(EventType.SQS);
  return middy<SQSEvent, unknown, Error, Context>()
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics, { captureColdStartMetric: true }))
    .handler(async (event, context) =>
      processPartialResponse(
        event,
        async (record: SQSRecord) => {
          const stats = await runSweep(parseSweepJob(record.body), deps(), {
            remainingMs: () => context.getRemainingTimeInMillis(),
          });
          report(stats);
          // The job is retried: every write is conditional, so redoing what did settle is harmless.
          if (stats.errors.length > 0) throw new SweepIncomplete(stats);
        },
        processor,
        { context },
      ),
    );
}

export const handler = sweepHandler(once(() => sweepDepsFromEnv(process.env)));
