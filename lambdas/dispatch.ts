// Dispatch Lambda, invoked every minute by EventBridge Scheduler: sweep jobs per shard and tick on the sweep queue,
// the live ingest partitions recorded, and watermark probes into every ingest partition at every tick.
import { setTimeout as sleep } from 'node:timers/promises';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import middy from '@middy/core';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { Context } from 'aws-lambda';
import { DynamoDeviceStore } from './adapters/device-store.js';
import { EventTopics } from './adapters/event-topics.js';
import { DynamoMaintenanceStore } from './adapters/maintenance-store.js';
import { DynamoOutageStore } from './adapters/outage-store.js';
import { DynamoProbeKey } from './adapters/probe-key.js';
import { QueueProbes, StreamProbes } from './adapters/probes.js';
import { SweepQueue } from './adapters/sweep-queue.js';
import { DynamoWatermarkStore } from './adapters/watermark-store.js';
import {
  ENV,
  type Env,
  loadBatchedEngine,
  loadOutageConfig,
  loadSweepConfig,
  requireString,
  type SweepConfig,
  toleranceWarnings,
} from './core/config.js';
import { type EmittedBy, METRIC } from './core/contracts.js';
import { type DispatchDeps, type DispatchResult, dispatch } from './core/dispatch.js';
import { applyEdge, type MaintenanceStore, parseWindowEdge } from './core/maintenance.js';
import { evaluateOutages, type OutageDeps } from './core/outage.js';
import { type AwsClients, awsClients, logger, metrics, once } from './runtime.js';

/** What the dispatch handler runs besides the dispatch: maintenance windows' edges, the outage evaluation. */
export type DispatchHandlerDeps = DispatchDeps & { maintenance?: MaintenanceStore; outage?: OutageDeps };

export function dispatchDepsFromEnv(
  env: Env,
  clients: AwsClients & { kinesis?: KinesisClient } = awsClients(),
): DispatchHandlerDeps {
  const config = loadSweepConfig(env);
  // Checked once per container: a tolerance that cannot protect a device type is a deployment mistake to shout about.
  for (const warning of toleranceWarnings(config.deviceTypes, config.watermarkToleranceMs, config.sweepTickSeconds)) {
    logger.warn(warning.message, { deviceType: warning.deviceType });
  }
  // HTTP/1.1: the same client works against AWS and the emulators (which do not speak the SDK's default HTTP/2).
  const kinesis = clients.kinesis ?? new KinesisClient({ requestHandler: new NodeHttpHandler() });
  return {
    // The batched engine sweeps its own shards; the per-device engine the deadline index's.
    shardCount: loadBatchedEngine(env)?.shardCount ?? config.shardCount,
    tickSeconds: config.sweepTickSeconds,
    sweepQueue: new SweepQueue(clients.sqs, requireString(env, ENV.sweepQueueUrl)),
    watermarks: new DynamoWatermarkStore(clients.dynamodb, config.tableName),
    probeKey: new DynamoProbeKey(clients.dynamodb, config.tableName),
    queues: new QueueProbes(clients.sqs, config.ingestQueueUrls),
    streams: new StreamProbes(kinesis, config.ingestStreamArns),
    now: Date.now,
    sleep: (ms) => sleep(ms),
    maintenance: new DynamoMaintenanceStore(clients.dynamodb, config.tableName),
    ...outageDepsFromEnv(env, clients, config),
  };
}

function outageDepsFromEnv(env: Env, clients: AwsClients, config: SweepConfig): { outage?: OutageDeps } {
  const outage = loadOutageConfig(env);
  if (!outage) return {};
  return {
    outage: {
      config: outage,
      deviceTypes: Object.keys(config.deviceTypes.types),
      store: new DynamoOutageStore(clients.dynamodb, config.tableName),
      offline: new DynamoDeviceStore(clients.dynamodb, { tableName: config.tableName }),
      publisher: new EventTopics(clients.sns, { online: config.onlineTopicArn, offline: config.offlineTopicArn }),
      now: Date.now,
    },
  };
}

export class DispatchIncomplete extends Error {
  constructor(readonly result: DispatchResult) {
    super(`sweep jobs not enqueued: ${String(result.errors.find((e) => e.step === 'enqueue')?.error)}`);
    this.name = 'DispatchIncomplete';
  }
}

/** The dispatcher's metrics: only names the contract lists for its service (contracts.ts). */
const count = (name: EmittedBy<'dispatch'>, value: number) => metrics.addMetric(name, MetricUnit.Count, value);

export function report(result: DispatchResult): void {
  count(METRIC.SweepJobsEnqueued, result.jobsEnqueued);
  count(METRIC.ProbesSent, result.probesSent);
  count(METRIC.ProbeFailures, result.probeFailures);
  if (result.live) count(METRIC.LivePartitions, result.live.length);
  const { errors, ...summary } = result;
  for (const { step, error } of errors) logger.error(`dispatch step failed: ${step}`, { error });
  if (result.ticksSkipped > 0) logger.warn('Kinesis probe ticks skipped: the function timeout is under a minute');
  logger.info('dispatched', summary);
}

export function dispatchHandler(deps: () => DispatchHandlerDeps) {
  return middy<unknown, void, Error, Context>()
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics, { captureColdStartMetric: true }))
    .handler(async (event, context) => {
      // A maintenance window's schedule: move the window along (maintenance.ts), nothing else.
      const edge = parseWindowEdge(event);
      const { maintenance } = deps();
      if (edge && maintenance) {
        const changed = await applyEdge(maintenance, edge);
        logger.info('maintenance window edge', { ...edge, changed });
        return;
      }
      // Once a minute, beside the dispatch (which with Kinesis stays the whole minute for its probes): a failed
      // evaluation only delays an incident (held events then go out unmarked, the safe side): logged, not retried.
      const { outage } = deps();
      const evaluation = outage
        ? evaluateOutages(outage).then(
            (evaluated) => logger.info('outages evaluated', { ...evaluated }),
            (error: unknown) => logger.error('outage evaluation failed', { error }),
          )
        : undefined;
      const result = await dispatch(deps(), { remainingMs: () => context.getRemainingTimeInMillis() });
      report(result);
      await evaluation;
      // Missing sweep jobs are worth a retry by the scheduler (duplicates are harmless); probes and the live list
      // are redone by the next minute anyway.
      if (result.errors.some((e) => e.step === 'enqueue')) throw new DispatchIncomplete(result);
    });
}

export const handler = dispatchHandler(once(() => dispatchDepsFromEnv(process.env)));
