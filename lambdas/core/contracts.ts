// What the handlers, the construct, the dashboard and the cost model agree on, in one place: the environment variable
// names the construct sets and the handlers read, the metrics the handlers emit (names, services, dimensions) that the
// dashboard and alarms watch, and each function's memory and timeout as the construct deploys them, which the cost
// model prices. Pure data: no AWS, CDK or Powertools imports (the core's lint rule).
import type { EngineName } from './config.js';

/** Environment variable names (defined beside their parsers in config.ts, which reads them). */
export { ENV } from './config.js';
/** The values of the `reason` dimension (defined beside the parser that rejects, message.ts). */
export { REJECT_REASONS } from './message.js';

/** CloudWatch namespace of every Lambda's EMF metrics; the dashboard and alarms read the same one. */
export const METRICS_NAMESPACE = 'OfflineDetector';

/** Powertools service names (POWERTOOLS_SERVICE_NAME), which are also the `service` dimension of every metric. */
export const SERVICE = { ingest: 'ingest', dispatch: 'dispatch', sweep: 'sweep', api: 'api' } as const;
export type ServiceName = (typeof SERVICE)[keyof typeof SERVICE];

/** Metric dimensions. Every metric carries `service` (Powertools adds it from the service name); `MessagesRejected`
 * is also emitted once per reason with `reason` (one of REJECT_REASONS) beside the total: by the ingest, and by the
 * batched engine's sweep for UNREGISTERED (allow-list mode), which only it can tell there. */
export const DIMENSION = { service: 'service', reason: 'reason' } as const;

/** Every metric name a handler emits. */
export const METRIC = {
  // ingest (both sources)
  MessagesReceived: 'MessagesReceived',
  WritesCommitted: 'WritesCommitted',
  WritesCoalesced: 'WritesCoalesced',
  StaleMessages: 'StaleMessages',
  WriteFailures: 'WriteFailures',
  OnlineTransitions: 'OnlineTransitions',
  NewDevices: 'NewDevices',
  ProbesCredited: 'ProbesCredited',
  ProbesNotCredited: 'ProbesNotCredited',
  RecordsHeld: 'RecordsHeld',
  HoldFailures: 'HoldFailures',
  // ingest and sweep (the batched engine's sweep rejects in allow-list mode)
  MessagesRejected: 'MessagesRejected',
  RejectsNotDelivered: 'RejectsNotDelivered',
  FlapStarted: 'FlapStarted',
  WriteUnits: 'WriteUnits',
  EventsPublished: 'EventsPublished',
  PublishFailures: 'PublishFailures',
  // sweep
  ItemsScanned: 'ItemsScanned',
  OfflineTransitions: 'OfflineTransitions',
  FlapSettled: 'FlapSettled',
  Rearms: 'Rearms',
  Continuations: 'Continuations',
  OutboxRepublished: 'OutboxRepublished',
  SweepLagMs: 'SweepLagMs',
  WatermarkAgeMs: 'WatermarkAgeMs',
  DetectionLatenessMs: 'DetectionLatenessMs',
  // dispatch
  SweepJobsEnqueued: 'SweepJobsEnqueued',
  ProbesSent: 'ProbesSent',
  ProbeFailures: 'ProbeFailures',
  LivePartitions: 'LivePartitions',
} as const;
export type MetricName = (typeof METRIC)[keyof typeof METRIC];

/** Which metrics each service emits, i.e. under which `service` dimension a name exists. A handler can emit only the
 * names of its service (typed), and test/infra/contracts.test.ts checks that the handlers emit exactly these and that
 * every metric the dashboard and alarms read is one of them. */
export const EMITTED = {
  ingest: [
    METRIC.MessagesReceived,
    METRIC.MessagesRejected,
    METRIC.WritesCommitted,
    METRIC.WritesCoalesced,
    METRIC.StaleMessages,
    METRIC.WriteFailures,
    METRIC.OnlineTransitions,
    METRIC.NewDevices,
    METRIC.FlapStarted,
    METRIC.WriteUnits,
    METRIC.EventsPublished,
    METRIC.PublishFailures,
    METRIC.RejectsNotDelivered,
    METRIC.ProbesCredited,
    METRIC.ProbesNotCredited,
    METRIC.RecordsHeld,
    METRIC.HoldFailures,
  ],
  sweep: [
    METRIC.MessagesRejected,
    METRIC.RejectsNotDelivered,
    METRIC.ItemsScanned,
    METRIC.OfflineTransitions,
    METRIC.FlapStarted,
    METRIC.FlapSettled,
    METRIC.Rearms,
    METRIC.Continuations,
    METRIC.OutboxRepublished,
    METRIC.EventsPublished,
    METRIC.PublishFailures,
    METRIC.WriteUnits,
    METRIC.SweepLagMs,
    METRIC.WatermarkAgeMs,
    METRIC.DetectionLatenessMs,
  ],
  dispatch: [METRIC.SweepJobsEnqueued, METRIC.ProbesSent, METRIC.ProbeFailures, METRIC.LivePartitions],
  api: [],
} as const satisfies Record<ServiceName, readonly MetricName[]>;
export type EmittedBy<S extends ServiceName> = (typeof EMITTED)[S][number];

/** The construct's functions (HANDLER_ENTRIES in lib/function-factory.ts names their handler files); `api` is both
 * operator API functions, admin and read. */
export type FunctionName = 'ingestSqs' | 'ingestKinesis' | 'dispatch' | 'sweep' | 'api';

/** Memory and timeouts as the construct deploys them. Where they depend on the deployment, functionSpec says how. */
export const FUNCTION_SIZES = {
  ingestSqs: { memoryMb: 1024, timeoutSeconds: 30 },
  ingestKinesis: { memoryMb: 1024, timeoutSeconds: 60 },
  dispatch: {
    memoryMb: 256,
    /** Kinesis has no per-record delay: with a stream the dispatcher stays the whole minute to put each tick's
     * probes on time; without one it enqueues everything (SQS DelaySeconds) and returns at once. */
    timeoutSeconds: { withStream: 75, withoutStream: 30 },
  },
  sweep: {
    /** A batched shard's state is ~55 MB in memory at its 125,000 devices (npm run bench:batched), kept warm. */
    memoryMb: { 'per-device': 512, batched: 1024 },
    /** The sweep budget's default (`sweepBudget`): a job hands the rest of its shard to a continuation after it. */
    defaultBudgetSeconds: 20,
    /** The timeout is the budget plus this, for the page in flight, the last commits and the report. */
    timeoutBeyondBudgetSeconds: 25,
  },
  api: { memoryMb: 512, timeoutSeconds: 15 },
} as const;

/** What a function's size depends on. */
export interface Deployment {
  readonly engine: EngineName;
  /** A Kinesis ingest source is deployed (the dispatcher then stays the minute). */
  readonly stream: boolean;
  /** @default FUNCTION_SIZES.sweep.defaultBudgetSeconds */
  readonly sweepBudgetSeconds?: number;
}

export interface FunctionSpec {
  readonly service: ServiceName;
  readonly memoryMb: number;
  readonly timeoutSeconds: number;
}

/** One function's service, memory and timeout in a deployment: the construct deploys this, the cost model prices it. */
export function functionSpec(fn: FunctionName, deployment: Deployment): FunctionSpec {
  switch (fn) {
    case 'ingestSqs':
    case 'ingestKinesis':
      return { service: SERVICE.ingest, ...FUNCTION_SIZES[fn] };
    case 'dispatch': {
      const { memoryMb, timeoutSeconds } = FUNCTION_SIZES.dispatch;
      return {
        service: SERVICE.dispatch,
        memoryMb,
        timeoutSeconds: deployment.stream ? timeoutSeconds.withStream : timeoutSeconds.withoutStream,
      };
    }
    case 'sweep': {
      const { memoryMb, defaultBudgetSeconds, timeoutBeyondBudgetSeconds } = FUNCTION_SIZES.sweep;
      return {
        service: SERVICE.sweep,
        memoryMb: memoryMb[deployment.engine],
        timeoutSeconds: (deployment.sweepBudgetSeconds ?? defaultBudgetSeconds) + timeoutBeyondBudgetSeconds,
      };
    }
    case 'api':
      return { service: SERVICE.api, ...FUNCTION_SIZES.api };
  }
}
