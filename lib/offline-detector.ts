// The OfflineDetector construct: small constructs composed in the order of the flow of docs/design.md §2, each in its
// own file: the device tables, the event topics, the ingest sources (with the ingest functions), the sweep pipeline
// (scheduler → dispatch → sweep queue → sweep), the operator API, then the dashboard and alarms. Every function is
// built by one factory (function-factory.ts). The props are validated here, before anything is built.
import { Annotations, Duration, RemovalPolicy, Token } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type * as kinesis from 'aws-cdk-lib/aws-kinesis';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DEFAULT_STATS_CACHE_SECONDS } from '../lambdas/core/api.js';
import {
  checkInvariants,
  DEFAULT_DEVICE_TYPES,
  type FieldMap,
  parseFieldMap,
  toleranceWarnings,
} from '../lambdas/core/config.js';
import { ENV, FUNCTION_SIZES, METRICS_NAMESPACE } from '../lambdas/core/contracts.js';
import { ConfigError } from '../lambdas/core/errors.js';
import { parseOutageConfig } from '../lambdas/core/outage.js';
import { type DeviceTypeConfig, type DeviceTypes, parseDeviceTypes } from '../lambdas/core/policy.js';
import { type BatchedSizing, batchedSizing } from '../lambdas/core/sizing.js';
import { DEADLINE_INDEX, DEFAULT_SHARD_COUNT, OUTBOX_INDEX } from '../lambdas/core/table-schema.js';
import { type AlarmOptions, OfflineDetectorDashboard } from './dashboard.js';
import { DeviceTables, type DeviceTableWarmThroughput } from './device-tables.js';
import { EventTopics } from './event-topics.js';
import { FunctionFactory } from './function-factory.js';
import {
  IngestSources,
  type KinesisIngestOptions,
  type PayloadQueueOptions,
  type SqsIngestOptions,
} from './ingest-sources.js';
import { keepLogicalIds } from './logical-ids.js';
import { MaintenanceSchedules } from './maintenance-schedules.js';
import { OperatorApi } from './operator-api.js';
import { SweepPipeline } from './sweep-pipeline.js';
import { ValidationError } from './validation-error.js';

export type { DeviceTableWarmThroughput, IndexName } from './device-tables.js';
export type { KinesisIngestOptions, PayloadQueueOptions, SqsIngestOptions } from './ingest-sources.js';

/** How one device type is watched. */
export interface DeviceTypeOptions {
  /** Silence after which a device of this type is offline. */
  readonly timeout: Duration;
  /** Extra lateness accepted in exchange for skipped writes (write coalescing). @default Duration.millis(0) */
  readonly precision?: Duration;
  /** The devices' usual interval between messages; lets synthesis check the watermark tolerance. @default unknown */
  readonly heartbeat?: Duration;
  /** Flap damping: after `transitions` transitions within `window`, one device.flapping event replaces the
   * transition events until the device has been stable for `window`, then its settled state is published.
   * @default off */
  readonly flap?: FlapDampingOptions;
}

/** Flap damping of a device type (DeviceTypeOptions.flap). */
export interface FlapDampingOptions {
  /** Transitions within `window` after which the device is flapping (2..100). */
  readonly transitions: number;
  /** The window the transitions are counted in, and the stability a flapping device needs to settle. */
  readonly window: Duration;
}

/** Mass-outage detection (OfflineDetectorProps.outageDetection). */
export interface OutageDetectionOptions {
  /** `deviceType`, or a tag name of `fieldMap.tags` (e.g. `site`). */
  readonly groupBy: string;
  /** Devices of one group offline within `window` that make an outage (≥ 2). */
  readonly minDevices: number;
  /** @default 5 minutes */
  readonly window?: Duration;
  /** How long a watched group's offline events wait before they are published (≥ 90 s). @default 2 minutes */
  readonly hold?: Duration;
}

/** The fleet the batched engine is sized for (batchedSizing): its shards and its ingest batching follow from it. */
export interface FleetSize {
  /** Devices you expect, at their peak. */
  readonly devices: number;
  /** Messages per second at the usual peak. @default one a minute per device */
  readonly messagesPerSecond?: number;
}

export interface OfflineDetectorProps {
  /** How device state is kept and swept (docs/design.md §11): `per-device` (an item write per message at most, online
   * events from the ingest at once) or `batched` (one compressed record per shard and ingest batch, state per shard;
   * ~10× fewer write units per message, online events found by the next sweep). @default per-device */
  readonly engine?: 'per-device' | 'batched';
  /** Batched engine: the fleet to size shards and ingest batching for. @default 10,000 devices, one message a minute */
  readonly fleet?: FleetSize;
  /** SQS ingest source; `false` for none. At least one of `sqsIngest` and `kinesisIngest` is required.
   * @default a new SQS ingest queue */
  readonly sqsIngest?: SqsIngestOptions | false;
  /** Kinesis ingest source. @default none */
  readonly kinesisIngest?: KinesisIngestOptions;
  /** Device types by name. @default `{ default: { timeout: 5 minutes } }` */
  readonly deviceTypes?: Record<string, DeviceTypeOptions>;
  /** Type of devices whose messages name none. @default the first of `deviceTypes` */
  readonly defaultDeviceType?: string;
  /** Where deviceId, ts, deviceType and the device tags are found in a message payload (dotted paths), e.g.
   * `{deviceId: 'thingName', tags: {site: 'meta.site', gatewayId: 'meta.gw'}}`. @default the same names, no tags */
  readonly fieldMap?: Partial<FieldMap>;
  /** The tag (of `fieldMap.tags`) naming a device's parent, e.g. its gateway: a device reported offline while its
   * parent is offline carries `cause: parent-offline` (docs/design.md §8.10). @default none */
  readonly parentTag?: string;
  /** Allow-list mode: only devices registered through the admin API (`PUT /devices/{id}`) are tracked; messages of
   * any other are rejected (`UNREGISTERED`). @default false */
  readonly allowList?: boolean;
  /** One incident for a mass outage (docs/design.md §8.11): when at least `minDevices` devices of one group (the
   * device type, or a tag of `fieldMap.tags`) go offline within `window`, one `fleet.outage` event, and their
   * `device.offline` events, published `hold` after their commit, carry `cause: outage`. @default off */
  readonly outageDetection?: OutageDetectionOptions;
  /** Use the device's own timestamp when within this of the pipeline entry time. @default 0 (never) */
  readonly deviceTimestampSkew?: Duration;
  /** Publish device.online for a device's very first message. @default true */
  readonly announceNewDevices?: boolean;
  /** SQS ingest: a watermark probe is credited only when the queue's visible backlog is at most this (watch
   * `ProbesNotCredited`). @default half a second of `sqsIngest.messageRate`, at least 10 */
  readonly probeMaxBacklog?: number;
  /** Shards of the deadline index; ≥ 2 × peak index writes/s ÷ 1000. @default 64 */
  readonly shardCount?: number;
  /** Sweep period; a whole number of seconds dividing 60. @default 10 seconds */
  readonly sweepTick?: Duration;
  /** Maximum concurrent sweep invocations: bounds the table's load during an offline storm. One per shard lets a
   * storm be swept by all shards at once (the 1M-expiries-in-a-minute design point). @default shardCount (2..1000) */
  readonly sweepMaxConcurrency?: number;
  /** Time one sweep job works before it hands the rest of its shard to a continuation job. @default 20 seconds */
  readonly sweepBudget?: Duration;
  /** Allowed watermark lag: one probe interval plus healthy pipeline latency. @default sweepTick + 20 seconds */
  readonly watermarkTolerance?: Duration;
  /** Topic of device.online events. @default a new KMS-encrypted topic */
  readonly onlineTopic?: sns.ITopic;
  /** Topic of device.offline events. @default a new KMS-encrypted topic */
  readonly offlineTopic?: sns.ITopic;
  /** Topic the alarms notify. @default a new KMS-encrypted ops topic */
  readonly alarmTopic?: sns.ITopic;
  /** Devices silent this long are forgotten (DynamoDB TTL; housekeeping only). A whole number of days that must
   * outlast every device type's timeout + precision (+ flap window): a shorter one is refused at synth, since a
   * silent device could be deleted before it is reported. @default 30 days */
  readonly housekeepingTtl?: Duration;
  /** Table capacity. @default on-demand */
  readonly billing?: dynamodb.Billing;
  /** Pre-warmed throughput (DynamoDB warm throughput, billed once per increase) for the table and each index by
   * name, so that a mass disconnect or reconnect is absorbed at once instead of throttling while on-demand capacity
   * scales up. See the README's sizing for a storm. @default none */
  readonly warmThroughput?: DeviceTableWarmThroughput;
  /** Encryption and readers of the queues that hold raw device payloads (rejects queue, ingest DLQ). */
  readonly payloadQueues?: PayloadQueueOptions;
  /** Table encryption at rest. @default the AWS managed key (aws/dynamodb) */
  readonly tableEncryption?: dynamodb.TableEncryptionV2;
  /** What happens to the table, keys and queues when removed from the stack. @default RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /** Retention of the Lambdas' logs. @default one month */
  readonly logRetention?: logs.RetentionDays;
  /** Alarm thresholds. */
  readonly alarms?: AlarmOptions;
  /** Name of the CloudWatch dashboard. @default generated */
  readonly dashboardName?: string;
  /** The operator API (device status, offline list, stats, overrides, mute, decommission): two Lambda Function URLs
   * with IAM (SigV4) auth, a read one (GET routes only, on a role that cannot write; `grantRead`) and an admin one
   * (every route; `grantAdmin`). @default true */
  readonly operatorApi?: boolean;
  /** Reserved concurrency of each operator API function: bounds what a loop of calls can take from the account's
   * concurrency and, through GET /stats, from the indexes the sweep reads. @default none (unreserved: reserving fails
   * deployment in accounts with a small concurrency quota) */
  readonly apiReservedConcurrency?: number;
  /** How long each API container answers GET /stats from the counts it read last (the answer's `asOf` says when they
   * were read). @default 60 seconds */
  readonly statsCacheTtl?: Duration;
}

/** The SQS ingest's batch budget (INGEST_TIMEOUT_MS's default): the construct leaves it at that. */
const INGEST_BATCH_BUDGET_MS = 10_000;

export class OfflineDetector extends Construct {
  readonly table: dynamodb.TableV2;
  /** Batched engine: the shards' logs and states (absent on the per-device engine). */
  readonly shardTable?: dynamodb.TableV2;
  /** Batched engine: its shards and ingest batching, from `fleet`. */
  readonly sizing?: BatchedSizing;
  /** The SQS ingest queue devices send to (absent with `sqsIngest: false`). */
  readonly ingestQueue?: sqs.IQueue;
  /** Dead-letter queue of a created ingest queue. */
  readonly ingestDeadLetterQueue?: sqs.Queue;
  readonly ingestStream?: kinesis.IStream;
  /** On-failure destination of the Kinesis event source. */
  readonly kinesisFailureQueue?: sqs.Queue;
  /** Invalid messages, each with the reason it was rejected. */
  readonly rejectsQueue: sqs.Queue;
  readonly sweepQueue: sqs.Queue;
  readonly sweepDeadLetterQueue: sqs.Queue;
  readonly onlineTopic: sns.ITopic;
  readonly offlineTopic: sns.ITopic;
  readonly alarmTopic: sns.ITopic;
  /** Key of the topics this construct creates. */
  readonly topicKey: kms.Key;
  readonly ingestSqsFunction?: nodejs.NodejsFunction;
  readonly ingestKinesisFunction?: nodejs.NodejsFunction;
  readonly dispatchFunction: nodejs.NodejsFunction;
  readonly sweepFunction: nodejs.NodejsFunction;
  readonly schedule: scheduler.Schedule;
  /** The role the schedule invokes the dispatcher with. */
  readonly scheduleRole: iam.Role;
  readonly dashboard: OfflineDetectorDashboard;
  /** The operator API's admin function, every route (absent with `operatorApi: false`). */
  readonly apiFunction?: nodejs.NodejsFunction;
  /** Its Function URL; callers need `lambda:InvokeFunctionUrl` on `apiFunction` (see `grantAdmin`). */
  readonly apiUrl?: lambda.FunctionUrl;
  /** The operator API's read function: GET routes only, on a role without any write (absent with
   * `operatorApi: false`). */
  readonly apiReadFunction?: nodejs.NodejsFunction;
  /** Its Function URL; callers need `lambda:InvokeFunctionUrl` on `apiReadFunction` (see `grantRead`). */
  readonly apiReadUrl?: lambda.FunctionUrl;
  /** Maintenance windows' schedule group and the role Scheduler invokes the dispatcher with (absent with
   * `operatorApi: false`, which creates windows). */
  readonly maintenance?: MaintenanceSchedules;
  private readonly operatorApi?: OperatorApi;

  constructor(scope: Construct, id: string, props: OfflineDetectorProps = {}) {
    super(scope, id);
    const settings = this.settingsOf(props);
    this.sizing = settings.sizing;
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    const tables = new DeviceTables(this, 'DeviceTables', {
      indexShards: settings.indexShards,
      batched: this.sizing,
      billing: props.billing,
      encryption: props.tableEncryption,
      warmThroughput: props.warmThroughput,
      removalPolicy,
    });
    const topics = new EventTopics(this, 'EventTopics', {
      onlineTopic: props.onlineTopic,
      offlineTopic: props.offlineTopic,
      alarmTopic: props.alarmTopic,
      removalPolicy,
    });
    // Memory and timeouts as the contract gives them for this deployment (the cost model prices the same,
    // bench/cost.ts), and what every handler reads.
    const functions = new FunctionFactory({
      deployment: {
        engine: this.sizing ? 'batched' : 'per-device',
        stream: Boolean(props.kinesisIngest),
        sweepBudgetSeconds: settings.sweepBudget.toSeconds(),
      },
      environment: {
        ...tables.environment,
        [ENV.deviceTypes]: settings.deviceTypes.json,
        [ENV.defaultDeviceType]: settings.deviceTypes.defaultType,
        [ENV.housekeepingTtlDays]: String(settings.housekeepingTtlDays), // ingest writes it; every loader checks it
        // Dispatch evaluates; sweep and ingest hold and mark what they publish.
        ...(settings.outageDetection ? { [ENV.outageDetection]: settings.outageDetection } : {}),
      },
      logRetention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy,
    });
    const ingest = new IngestSources(this, 'IngestSources', {
      sqs: settings.sqsIngest,
      kinesis: props.kinesisIngest,
      payloadQueues: props.payloadQueues,
      batching: { size: this.sizing?.batchSize, window: settings.batchWindow },
      tables,
      topics,
      functions,
      deviceTimestampSkew: props.deviceTimestampSkew,
      announceNewDevices: props.announceNewDevices,
      probeMaxBacklog: props.probeMaxBacklog,
      fieldMap: props.fieldMap,
      allowList: props.allowList,
      removalPolicy,
    });
    const sweep = new SweepPipeline(this, 'SweepPipeline', {
      tables,
      topics,
      ingest,
      functions,
      tickSeconds: settings.tickSeconds,
      maxConcurrency: settings.sweepMaxConcurrency,
      budget: settings.sweepBudget,
      watermarkTolerance: settings.watermarkTolerance,
      batchedShards: this.sizing?.shardCount,
      parentTag: props.parentTag,
      allowList: props.allowList,
      outageDetection: settings.outageDetection !== undefined,
      removalPolicy,
    });
    if (props.operatorApi ?? true) {
      this.maintenance = new MaintenanceSchedules(this, 'Maintenance', { target: sweep.dispatchFunction });
      this.operatorApi = new OperatorApi(this, 'OperatorApi', {
        tables,
        functions,
        reservedConcurrency: props.apiReservedConcurrency,
        statsCacheSeconds: settings.statsCacheSeconds,
        maintenance: this.maintenance,
      });
    }

    this.table = tables.table;
    this.shardTable = tables.shardTable;
    this.topicKey = topics.topicKey;
    this.onlineTopic = topics.onlineTopic;
    this.offlineTopic = topics.offlineTopic;
    this.alarmTopic = topics.alarmTopic;
    this.ingestQueue = ingest.ingestQueue;
    this.ingestDeadLetterQueue = ingest.ingestDeadLetterQueue;
    this.ingestStream = ingest.ingestStream;
    this.kinesisFailureQueue = ingest.kinesisFailureQueue;
    this.rejectsQueue = ingest.rejectsQueue;
    this.ingestSqsFunction = ingest.ingestSqsFunction;
    this.ingestKinesisFunction = ingest.ingestKinesisFunction;
    this.sweepQueue = sweep.sweepQueue;
    this.sweepDeadLetterQueue = sweep.sweepDeadLetterQueue;
    this.dispatchFunction = sweep.dispatchFunction;
    this.sweepFunction = sweep.sweepFunction;
    this.schedule = sweep.schedule;
    this.scheduleRole = sweep.scheduleRole;
    this.apiFunction = this.operatorApi?.adminFunction;
    this.apiUrl = this.operatorApi?.adminUrl;
    this.apiReadFunction = this.operatorApi?.readFunction;
    this.apiReadUrl = this.operatorApi?.readUrl;

    // What holds data or must not be replaced keeps the logical ID it had before these small constructs existed.
    keepLogicalIds(this, [
      this.table,
      this.shardTable,
      this.topicKey,
      this.onlineTopic,
      this.offlineTopic,
      this.alarmTopic,
      this.rejectsQueue,
      this.ingestQueue,
      this.ingestDeadLetterQueue,
      this.ingestStream,
      this.kinesisFailureQueue,
      this.sweepQueue,
      this.sweepDeadLetterQueue,
      ...functions.logGroups,
    ]);

    this.dashboard = new OfflineDetectorDashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName,
      namespace: METRICS_NAMESPACE,
      table: this.table,
      indexNames: [DEADLINE_INDEX.name, OUTBOX_INDEX.name],
      functions: this.functions(),
      dispatchFunction: this.dispatchFunction,
      ingestQueue: this.ingestQueue,
      ingestStream: this.ingestStream,
      deadLetterQueues: [
        { name: 'ingest DLQ', queue: this.ingestDeadLetterQueue },
        { name: 'sweep DLQ', queue: this.sweepDeadLetterQueue },
        { name: 'Kinesis failures', queue: this.kinesisFailureQueue },
      ].flatMap(({ name, queue }) => (queue ? [{ name, queue }] : [])),
      rejectsQueue: this.rejectsQueue,
      alarmTopic: this.alarmTopic,
      alarms: props.alarms,
    });
  }

  /** Lets a principal (a dashboard, a support tool) call the read-only operator API: status, offline list, stats. */
  grantRead(grantee: iam.IGrantable): iam.Grant {
    return this.enabledOperatorApi().grantRead(grantee);
  }

  /** Lets a principal (an operator role, a CI user) call the admin operator API: every route, overrides, mutes and
   * decommissions included. */
  grantAdmin(grantee: iam.IGrantable): iam.Grant {
    return this.enabledOperatorApi().grantAdmin(grantee);
  }

  /** @deprecated use `grantAdmin` (the same grant) or, for callers that only look, `grantRead`. */
  grantApi(grantee: iam.IGrantable): iam.Grant {
    return this.grantAdmin(grantee);
  }

  private enabledOperatorApi(): OperatorApi {
    if (!this.operatorApi) throw new ValidationError(this, 'the operator API is disabled (operatorApi: false)');
    return this.operatorApi;
  }

  /** Every function of the detector. */
  private functions(): nodejs.NodejsFunction[] {
    return [
      this.ingestSqsFunction,
      this.ingestKinesisFunction,
      this.dispatchFunction,
      this.sweepFunction,
      this.apiFunction,
      this.apiReadFunction,
    ].filter((f): f is nodejs.NodejsFunction => f !== undefined);
  }

  /** The props with their defaults, validated: what a Lambda would refuse at its cold start is refused here. */
  private settingsOf(props: OfflineDetectorProps) {
    this.validateIngestSources(props);
    const tags = this.validateDeviceTags(props);
    const outageDetection = this.outageDetectionOf(props, tags);
    const sizing = this.batchedSizingOf(props);
    // The device table's index shards; the batched engine's own shards (logs, states, sweep jobs) come from sizing.
    const indexShards = props.shardCount ?? DEFAULT_SHARD_COUNT;
    const sweepShards = sizing?.shardCount ?? indexShards;
    const tickSeconds = (props.sweepTick ?? Duration.seconds(10)).toSeconds();
    const sweepMaxConcurrency = props.sweepMaxConcurrency ?? Math.min(Math.max(sweepShards, 2), 1000);
    this.validateSweep(indexShards, tickSeconds, sweepMaxConcurrency);
    const statsCacheSeconds = (props.statsCacheTtl ?? Duration.seconds(DEFAULT_STATS_CACHE_SECONDS)).toSeconds();
    this.validateOperatorApi(props.apiReservedConcurrency, statsCacheSeconds);
    // The batched engine's ingest waits to fill its batches: the watermark tolerance covers that wait too.
    const batchWindow = Duration.seconds(sizing?.batchWindowSeconds ?? 1);
    const watermarkTolerance =
      props.watermarkTolerance ?? Duration.seconds(tickSeconds + 20 + (sizing?.batchWindowSeconds ?? 0));
    const deviceTypes = this.deviceTypesOf(props, watermarkTolerance, tickSeconds);
    const sqsIngest = props.sqsIngest === false ? undefined : (props.sqsIngest ?? {});
    if (sqsIngest) this.warnOfSqsBatches(sqsIngest, watermarkTolerance, batchWindow);
    const housekeepingTtlDays = (props.housekeepingTtl ?? Duration.days(30)).toDays();
    this.validateInvariants(deviceTypes.parsed, housekeepingTtlDays, props.kinesisIngest);
    return {
      sizing,
      indexShards,
      tickSeconds,
      sweepMaxConcurrency,
      sweepBudget: props.sweepBudget ?? Duration.seconds(FUNCTION_SIZES.sweep.defaultBudgetSeconds),
      statsCacheSeconds,
      batchWindow,
      watermarkTolerance,
      deviceTypes,
      sqsIngest,
      housekeepingTtlDays,
      outageDetection,
    };
  }

  /** OUTAGE_DETECTION as the Lambdas parse it, grouped by the device type or one of the field map's tags. */
  private outageDetectionOf(props: OfflineDetectorProps, tags: readonly string[]): string | undefined {
    const options = props.outageDetection;
    if (!options) return undefined;
    if (options.groupBy !== 'deviceType' && !tags.includes(options.groupBy)) {
      throw new ValidationError(
        this,
        `outageDetection.groupBy "${options.groupBy}" must be deviceType or one of fieldMap.tags (${tags.join(', ') || 'none'})`,
      );
    }
    const raw = {
      groupBy: options.groupBy,
      minDevices: options.minDevices,
      ...(options.window ? { windowSeconds: options.window.toSeconds() } : {}),
      ...(options.hold ? { holdSeconds: options.hold.toSeconds() } : {}),
    };
    try {
      parseOutageConfig(raw, 'outageDetection');
    } catch (error) {
      if (error instanceof ConfigError) throw new ValidationError(this, error.message);
      throw error;
    }
    return JSON.stringify(raw);
  }

  /** The field map as the ingest parses it (its tags included), and a parent tag that is one of its tags. */
  private validateDeviceTags(props: OfflineDetectorProps): string[] {
    let tags: string[];
    try {
      tags = Object.keys(parseFieldMap(props.fieldMap ?? {}).tags ?? {});
    } catch (error) {
      if (error instanceof ConfigError) throw new ValidationError(this, `fieldMap: ${error.message}`);
      throw error;
    }
    if (props.parentTag !== undefined && !tags.includes(props.parentTag)) {
      throw new ValidationError(
        this,
        `parentTag "${props.parentTag}" must be one of fieldMap.tags (${tags.join(', ') || 'none'}): the sweep reads ` +
          "a device's parent from its tags",
      );
    }
    return tags;
  }

  private validateIngestSources(props: OfflineDetectorProps): void {
    if (props.sqsIngest === false && !props.kinesisIngest) {
      throw new ValidationError(this, 'OfflineDetector needs an ingest source: sqsIngest, kinesisIngest or both');
    }
    const readers = props.payloadQueues?.readers;
    if (readers?.length === 0) {
      throw new ValidationError(
        this,
        'payloadQueues.readers must name at least one principal: whoever runs offline-detector redrive',
      );
    }
    for (const arn of readers ?? []) {
      if (!Token.isUnresolved(arn) && !/^arn:[^:]+:(iam|sts)::/.test(arn)) {
        throw new ValidationError(this, `payloadQueues.readers: "${arn}" is not an IAM principal ARN`);
      }
    }
  }

  private validateSweep(indexShards: number, tickSeconds: number, sweepMaxConcurrency: number): void {
    if (!Number.isInteger(indexShards) || indexShards < 1 || indexShards > 10_000) {
      throw new ValidationError(this, `shardCount must be a whole number in 1..10000, got ${indexShards}`);
    }
    if (!Number.isInteger(tickSeconds) || tickSeconds < 1 || 60 % tickSeconds !== 0) {
      throw new ValidationError(this, `sweepTick must be a whole number of seconds dividing 60, got ${tickSeconds}`);
    }
    if (sweepMaxConcurrency < 2 || sweepMaxConcurrency > 1000) {
      throw new ValidationError(
        this,
        `sweepMaxConcurrency must be in 2..1000 (SQS event source limits), got ${sweepMaxConcurrency}`,
      );
    }
  }

  private validateOperatorApi(reservedConcurrency: number | undefined, statsCacheSeconds: number): void {
    if (reservedConcurrency !== undefined && (!Number.isInteger(reservedConcurrency) || reservedConcurrency < 1)) {
      throw new ValidationError(
        this,
        `apiReservedConcurrency must be a whole number of at least 1, got ${reservedConcurrency}`,
      );
    }
    if (!Number.isInteger(statsCacheSeconds) || statsCacheSeconds < 0 || statsCacheSeconds > 3600) {
      throw new ValidationError(
        this,
        `statsCacheTtl must be a whole number of seconds in 0..3600, got ${statsCacheSeconds}`,
      );
    }
  }

  /** The Lambdas' own check, on what they will read (config.ts checkInvariants). */
  private validateInvariants(
    deviceTypes: DeviceTypes,
    housekeepingTtlDays: number,
    kinesisIngest: KinesisIngestOptions | undefined,
  ): void {
    this.refusingBadConfig(() =>
      checkInvariants({
        deviceTypes,
        housekeepingTtlMs: Duration.days(housekeepingTtlDays).toMilliseconds(),
        kinesisParallelizationFactor: kinesisIngest ? (kinesisIngest.parallelizationFactor ?? 1) : undefined,
      }),
    );
  }

  /** An SQS probe is credited while records received before it may still be in a batch: the tolerance must cover the
   * batching window and the batch budget (INGEST_TIMEOUT_MS), or a record can be passed while unwritten. */
  private warnOfSqsBatches(sqsIngest: SqsIngestOptions, tolerance: Duration, batchWindow: Duration): void {
    const window = sqsIngest.maxBatchingWindow ?? batchWindow;
    const needMs = 500 + window.toMilliseconds() + INGEST_BATCH_BUDGET_MS;
    if (tolerance.toMilliseconds() >= needMs) return;
    Annotations.of(this).addWarningV2(
      'offline-detector:tolerance:sqs',
      `watermark tolerance ${tolerance.toMilliseconds()} ms is below what the SQS ingest needs (${needMs} ms: ` +
        '0.5 s + batching window + the 10 s batch budget): a record still in a batch when a probe is credited ' +
        'may be passed while unwritten.',
    );
  }

  private batchedSizingOf(props: OfflineDetectorProps): BatchedSizing | undefined {
    const engine = props.engine ?? 'per-device';
    if (engine !== 'per-device' && engine !== 'batched') {
      throw new ValidationError(this, `engine must be per-device or batched, got ${String(engine)}`);
    }
    if (engine === 'per-device') {
      if (props.fleet) {
        Annotations.of(this).addWarningV2('offline-detector:fleet', 'fleet sizes the batched engine only: ignored');
      }
      return undefined;
    }
    const devices = props.fleet?.devices ?? 10_000;
    const messagesPerSecond = props.fleet?.messagesPerSecond ?? devices / 60;
    if (!(devices >= 1) || !(messagesPerSecond > 0)) {
      throw new ValidationError(this, 'fleet.devices must be ≥ 1 and fleet.messagesPerSecond > 0');
    }
    return batchedSizing({ devices, messagesPerSecond });
  }

  /** Device types as the Lambdas read them (DEVICE_TYPES), validated here with the Lambdas' own parser so a bad
   * configuration fails at synth rather than at cold start; also warns of the watermark tolerance's bounds
   * (docs/design.md §6.4) with the dispatcher's own check. */
  private deviceTypesOf(
    props: OfflineDetectorProps,
    tolerance: Duration,
    tickSeconds: number,
  ): { json: string; defaultType: string; parsed: DeviceTypes } {
    const raw: Record<string, DeviceTypeConfig> = {};
    if (props.deviceTypes) {
      for (const [name, t] of Object.entries(props.deviceTypes)) {
        raw[name] = {
          timeoutMs: t.timeout.toMilliseconds(),
          precisionMs: (t.precision ?? Duration.millis(0)).toMilliseconds(),
          ...(t.heartbeat ? { heartbeatMs: t.heartbeat.toMilliseconds() } : {}),
          // Unchecked here: parseDeviceTypes below rejects a bad value (e.g. transitions 1) at synth.
          ...(t.flap ? { flap: { transitions: t.flap.transitions, windowMs: t.flap.window.toMilliseconds() } } : {}),
        };
      }
    } else {
      Object.assign(raw, DEFAULT_DEVICE_TYPES);
    }
    const defaultType = props.defaultDeviceType ?? Object.keys(raw)[0] ?? 'default';
    const parsed = this.refusingBadConfig(() => parseDeviceTypes(raw, defaultType));
    for (const warning of toleranceWarnings(parsed, tolerance.toMilliseconds(), tickSeconds)) {
      const id = warning.deviceType === undefined ? 'tolerance-tick' : `tolerance:${warning.deviceType}`;
      Annotations.of(this).addWarningV2(`offline-detector:${id}`, warning.message);
    }
    return { json: JSON.stringify(raw), defaultType, parsed };
  }

  /** Runs one of the Lambdas' own configuration checks, naming this construct in what it refuses. */
  private refusingBadConfig<T>(check: () => T): T {
    try {
      return check();
    } catch (error) {
      if (error instanceof ConfigError) throw new ValidationError(this, error.message, { cause: error });
      throw error;
    }
  }
}
