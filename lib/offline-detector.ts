// The OfflineDetector construct. Its structure follows the flow of docs/design.md §2: ingest sources → ingest Lambdas →
// devices table → (scheduler → dispatch → sweep queue → sweep Lambda) → event topics, then the dashboard and alarms.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Annotations, Duration, Names, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, type IConstruct } from 'constructs';
import { type ApiAccess, DEFAULT_STATS_CACHE_SECONDS } from '../lambdas/core/api.js';
import { checkInvariants, DEFAULT_DEVICE_TYPES, type FieldMap, toleranceWarnings } from '../lambdas/core/config.js';
import {
  type Deployment,
  ENV,
  FUNCTION_SIZES,
  type FunctionName,
  functionSpec,
  METRICS_NAMESPACE,
  SERVICE,
} from '../lambdas/core/contracts.js';
import { type DeviceTypeConfig, type DeviceTypes, parseDeviceTypes } from '../lambdas/core/policy.js';
import {
  type BatchedSizing,
  batchedReconnectConcurrency,
  batchedSizing,
  batchedSweepConcurrency,
} from '../lambdas/core/sizing.js';
import {
  CONTROL_KEY_PREFIX,
  DEADLINE_INDEX,
  DEFAULT_SHARD_COUNT,
  KEY,
  OFFLINE_INDEX,
  OUTBOX_INDEX,
  PROBE_KEY_ITEM,
  SHARD_TABLE,
  TTL_ATTRIBUTE,
  WATERMARKS_KEY,
} from '../lambdas/core/table-schema.js';
import { type AlarmOptions, OfflineDetectorDashboard } from './dashboard.js';

export const LAMBDAS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'lambdas');
const PROJECT_ROOT = path.resolve(LAMBDAS_DIR, '..');

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

/** The device table's indexes. */
export type IndexName = typeof DEADLINE_INDEX.name | typeof OUTBOX_INDEX.name | typeof OFFLINE_INDEX.name;

export interface SqsIngestOptions {
  /** An existing queue devices already send to. @default a new queue with a dead-letter queue */
  readonly queue?: sqs.IQueue;
  /** @default 100 */
  readonly batchSize?: number;
  /** @default 1 second */
  readonly maxBatchingWindow?: Duration;
  /** Maximum concurrent ingest invocations for this queue: bounds the write rate on the table. @default 50 */
  readonly maxConcurrency?: number;
  /** Messages per second devices send to the queue at their usual peak: a watermark probe is credited while at most
   * half a second of it is visible (`probeMaxBacklog` overrides). @default none: the threshold stays at 10, which
   * freezes detection at fleet rates (README, "SQS probe credit at the design point") */
  readonly messageRate?: number;
}

export interface KinesisIngestOptions {
  /** An existing stream devices already put to (partition key = deviceId). @default a new stream */
  readonly stream?: kinesis.IStream;
  /** Capacity mode of a new stream. @default ON_DEMAND */
  readonly streamMode?: kinesis.StreamMode;
  /** Shards of a new PROVISIONED stream. @default 4 */
  readonly shardCount?: number;
  /** @default 500 */
  readonly batchSize?: number;
  /** @default 1 second */
  readonly maxBatchingWindow?: Duration;
  /** Concurrent batches per shard. Must be 1; anything else is refused at synth (and by the Kinesis ingest at
   * start, from KINESIS_PARALLELIZATION_FACTOR): watermark probes rely on per-shard order, which a factor above 1
   * keeps only per partition key (docs/design.md §6.2). Scale with shards instead. @default 1 */
  readonly parallelizationFactor?: number;
  /** Records older than this go to the on-failure queue instead of being retried. @default 12 hours */
  readonly maxRecordAge?: Duration;
  /** @default 10 */
  readonly retryAttempts?: number;
  /** @default true */
  readonly bisectBatchOnError?: boolean;
  /** @default LATEST */
  readonly startingPosition?: lambda.StartingPosition;
}

/** The fleet the batched engine is sized for (batchedSizing): its shards and its ingest batching follow from it. */
export interface FleetSize {
  /** Devices you expect, at their peak. */
  readonly devices: number;
  /** Messages per second at the usual peak. @default one a minute per device */
  readonly messagesPerSecond?: number;
}

/** The queues that keep raw device payloads for 14 days: the rejects queue and the ingest dead-letter queue. */
export interface PayloadQueueOptions {
  /** A customer-managed key for both (the ingest functions get GenerateDataKey and Decrypt on it to send rejects;
   * whoever reads them, the redrive CLI's user included, needs Decrypt). @default SSE-SQS */
  readonly encryptionKey?: kms.IKey;
  /** IAM principals (ARNs, `*` wildcards allowed; for an assumed role, its role ARN with its path, e.g. an SSO
   * permission set's `arn:aws:iam::<account>:role/aws-reserved/sso.amazonaws.com/<region>/AWSReservedSSO_Ops_<id>`)
   * who may receive, delete, purge or hide messages of these queues: everyone else is denied by the queue policy,
   * whatever their IAM policies allow. The account root always may (break-glass), and the policy does not deny
   * changing itself, so a deployment can always widen it. Include whoever runs `offline-detector redrive`.
   * @default no limit beyond IAM */
  readonly readers?: readonly string[];
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
  /** Where deviceId, ts and deviceType are found in a message payload (dotted paths). @default the same names */
  readonly fieldMap?: Partial<FieldMap>;
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
  readonly warmThroughput?: {
    readonly table?: dynamodb.WarmThroughput;
    readonly indexes?: { readonly [index in IndexName]?: dynamodb.WarmThroughput };
  };
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

/** DynamoDB actions each role needs, on the table's items (the Lambdas never scan, batch or delete items). */
const TABLE_ACTIONS = {
  ingest: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
  dispatch: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
  sweep: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
  // Decommission is an update to a tombstone, never a delete; listing and stats query the indexes (granted below).
  api: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
  apiRead: ['dynamodb:GetItem'],
} as const;

/** DynamoDB actions on the batched engine's shard table: the ingest appends, the API leaves notes, the sweep reads
 * the log and loads and saves the states. */
const SHARD_TABLE_ACTIONS = {
  ingest: ['dynamodb:PutItem'],
  api: ['dynamodb:PutItem'],
  sweep: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
} as const;

/** Every action that reads or writes items by key: what the API roles are denied on control items. */
const ITEM_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:ConditionCheckItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
];

/** What a Lambda event source mapping with a standard iterator reads a stream with (Lambda developer guide,
 * "Process Amazon Kinesis Data Streams records with Lambda"); SubscribeToShard is for enhanced fan-out only. */
const KINESIS_STANDARD_READ = [
  'kinesis:DescribeStream',
  'kinesis:DescribeStreamSummary',
  'kinesis:GetRecords',
  'kinesis:GetShardIterator',
  'kinesis:ListShards',
];

/** `sqs:SendMessage` (which also authorizes SendMessageBatch) and what a KMS-encrypted queue needs for it. CDK's
 * grantSendMessages adds GetQueueAttributes and GetQueueUrl, which the senders here never call. */
function grantSendOnly(queue: sqs.IQueue, grantee: iam.IGrantable, ...extra: string[]): iam.Grant {
  queue.encryptionMasterKey?.grant(grantee, 'kms:GenerateDataKey', 'kms:Decrypt');
  return queue.grant(grantee, 'sqs:SendMessage', ...extra);
}

/** The SQS ingest's batch budget (INGEST_TIMEOUT_MS's default): the construct leaves it at that. */
const INGEST_BATCH_BUDGET_MS = 10_000;

/** Lets CommonJS dependencies that call `require` (some AWS packages do) run inside the ESM bundle. */
export const ESM_BANNER = "import { createRequire } from 'module'; const require = createRequire(import.meta.url);";

/** The handler file of each function, in lambdas/ (each exports `handler`). */
export const HANDLER_ENTRIES = {
  ingestSqs: 'ingest-sqs.ts',
  ingestKinesis: 'ingest-kinesis.ts',
  dispatch: 'dispatch.ts',
  sweep: 'sweep.ts',
  api: 'api.ts',
} as const;

/** The installed package's handlers, bundled by `npm run build` (scripts/build.ts) into dist/handlers/<name>/,
 * beside dist/lib: found only when this file runs from the built package, which then deploys them as they are (no
 * esbuild, no Docker on the consumer's side). From a checkout the handlers are bundled from lambdas/ at synth. */
function prebuiltHandler(entry: string): { code: lambda.Code; handler: string } | undefined {
  const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'handlers', path.basename(entry, '.ts'));
  return existsSync(path.join(dir, 'index.mjs'))
    ? { code: lambda.Code.fromAsset(dir), handler: 'index.handler' }
    : undefined;
}

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

  constructor(scope: Construct, id: string, props: OfflineDetectorProps = {}) {
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const sizing = this.batchedSizingOf(props);
    this.sizing = sizing;
    // The device table's index shards; the batched engine's own shards (logs, states, sweep jobs) come from sizing.
    const shardCount = props.shardCount ?? DEFAULT_SHARD_COUNT;
    const sweepShards = sizing?.shardCount ?? shardCount;
    // The batched engine's ingest waits to fill its batches: the watermark tolerance covers that wait too.
    const batchWindow = sizing ? Duration.seconds(sizing.batchWindowSeconds) : Duration.seconds(1);
    const tickSeconds = (props.sweepTick ?? Duration.seconds(10)).toSeconds();
    const sweepMaxConcurrency = props.sweepMaxConcurrency ?? Math.min(Math.max(sweepShards, 2), 1000);
    const sweepBudget = props.sweepBudget ?? Duration.seconds(FUNCTION_SIZES.sweep.defaultBudgetSeconds);
    const tolerance =
      props.watermarkTolerance ?? Duration.seconds(tickSeconds + 20 + (sizing ? sizing.batchWindowSeconds : 0));
    if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > 10_000) {
      throw new Error(`shardCount must be a whole number in 1..10000, got ${shardCount}`);
    }
    if (!Number.isInteger(tickSeconds) || tickSeconds < 1 || 60 % tickSeconds !== 0) {
      throw new Error(`sweepTick must be a whole number of seconds dividing 60, got ${tickSeconds}`);
    }
    if (sweepMaxConcurrency < 2 || sweepMaxConcurrency > 1000) {
      throw new Error(`sweepMaxConcurrency must be in 2..1000 (SQS event source limits), got ${sweepMaxConcurrency}`);
    }
    const apiReservedConcurrency = props.apiReservedConcurrency;
    if (
      apiReservedConcurrency !== undefined &&
      (!Number.isInteger(apiReservedConcurrency) || apiReservedConcurrency < 1)
    ) {
      throw new Error(`apiReservedConcurrency must be a whole number of at least 1, got ${apiReservedConcurrency}`);
    }
    const statsCacheSeconds = (props.statsCacheTtl ?? Duration.seconds(DEFAULT_STATS_CACHE_SECONDS)).toSeconds();
    if (!Number.isInteger(statsCacheSeconds) || statsCacheSeconds < 0 || statsCacheSeconds > 3600) {
      throw new Error(`statsCacheTtl must be a whole number of seconds in 0..3600, got ${statsCacheSeconds}`);
    }
    if (props.sqsIngest === false && !props.kinesisIngest) {
      throw new Error('OfflineDetector needs an ingest source: sqsIngest, kinesisIngest or both');
    }
    const deviceTypesJson = this.deviceTypesJson(props, tolerance, tickSeconds);
    if (props.sqsIngest !== false) {
      // An SQS probe is credited while records received before it may still be in a batch: the tolerance must cover
      // the batching window and the batch budget (INGEST_TIMEOUT_MS), or a record can be passed while unwritten.
      const window = props.sqsIngest?.maxBatchingWindow ?? batchWindow;
      const needMs = 500 + window.toMilliseconds() + INGEST_BATCH_BUDGET_MS;
      if (tolerance.toMilliseconds() < needMs) {
        Annotations.of(this).addWarningV2(
          'offline-detector:tolerance:sqs',
          `watermark tolerance ${tolerance.toMilliseconds()} ms is below what the SQS ingest needs (${needMs} ms: ` +
            '0.5 s + batching window + the 10 s batch budget): a record still in a batch when a probe is credited ' +
            'may be passed while unwritten.',
        );
      }
    }
    const housekeepingTtlDays = (props.housekeepingTtl ?? Duration.days(30)).toDays();
    const kinesisParallelizationFactor = props.kinesisIngest
      ? (props.kinesisIngest.parallelizationFactor ?? 1)
      : undefined;
    // The Lambdas' own check, on what they will read: refused here at synth rather than at their cold start.
    checkInvariants({
      deviceTypes: deviceTypesJson.parsed,
      housekeepingTtlMs: Duration.days(housekeepingTtlDays).toMilliseconds(),
      kinesisParallelizationFactor,
    });
    const logRetention = props.logRetention ?? logs.RetentionDays.ONE_MONTH;

    const warm = (index: IndexName) => {
      const warmThroughput = props.warmThroughput?.indexes?.[index];
      return warmThroughput ? { warmThroughput } : {};
    };
    // ── Devices table (docs/design.md §3). SSE with the AWS managed key by default: encrypted at rest with key use
    // logged in CloudTrail, no key policy to maintain and no kms grants for the Lambdas; pass a customer key via
    // `tableEncryption` where policy demands one (the grants below then include it).
    this.table = new dynamodb.TableV2(this, 'Table', {
      partitionKey: { name: KEY, type: dynamodb.AttributeType.STRING },
      billing: props.billing ?? dynamodb.Billing.onDemand(),
      encryption: props.tableEncryption ?? dynamodb.TableEncryptionV2.awsManagedKey(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: TTL_ATTRIBUTE,
      deletionProtection: removalPolicy === RemovalPolicy.RETAIN,
      removalPolicy,
      ...(props.warmThroughput?.table ? { warmThroughput: props.warmThroughput.table } : {}),
      globalSecondaryIndexes: [
        {
          // Sparse and sharded: only online devices carry `shard`/`deadline`; the projection holds only what
          // changes together with the keys, so a heartbeat that moves only `lastSeen` costs the index nothing.
          indexName: DEADLINE_INDEX.name,
          partitionKey: { name: DEADLINE_INDEX.partitionKey, type: dynamodb.AttributeType.STRING },
          sortKey: { name: DEADLINE_INDEX.sortKey, type: dynamodb.AttributeType.NUMBER },
          projectionType: dynamodb.ProjectionType.INCLUDE,
          nonKeyAttributes: [...DEADLINE_INDEX.projected],
          ...warm(DEADLINE_INDEX.name),
        },
        {
          indexName: OUTBOX_INDEX.name,
          partitionKey: { name: OUTBOX_INDEX.partitionKey, type: dynamodb.AttributeType.STRING },
          sortKey: { name: OUTBOX_INDEX.sortKey, type: dynamodb.AttributeType.NUMBER },
          projectionType: dynamodb.ProjectionType.KEYS_ONLY,
          ...warm(OUTBOX_INDEX.name),
        },
        {
          // Sparse and sharded like the deadline index: only OFFLINE devices carry its keys (set and removed by the
          // transition's own write), partitioned by type and shard, newest first (the operator API lists it).
          indexName: OFFLINE_INDEX.name,
          partitionKey: { name: OFFLINE_INDEX.partitionKey, type: dynamodb.AttributeType.STRING },
          sortKey: { name: OFFLINE_INDEX.sortKey, type: dynamodb.AttributeType.STRING },
          projectionType: dynamodb.ProjectionType.INCLUDE,
          nonKeyAttributes: [...OFFLINE_INDEX.projected],
          ...warm(OFFLINE_INDEX.name),
        },
      ],
    });

    // ── Batched engine: the shards' logs and states (docs/design.md §11). Derived data (rebuilt from the device
    // items and the log if lost), so no PITR; encrypted like the device table. TTL deletes for free, and nothing
    // here is ever deleted by a request.
    if (sizing) {
      this.shardTable = new dynamodb.TableV2(this, 'ShardTable', {
        partitionKey: { name: SHARD_TABLE.partitionKey, type: dynamodb.AttributeType.STRING },
        sortKey: { name: SHARD_TABLE.sortKey, type: dynamodb.AttributeType.STRING },
        billing: dynamodb.Billing.onDemand(),
        encryption: props.tableEncryption ?? dynamodb.TableEncryptionV2.awsManagedKey(),
        timeToLiveAttribute: SHARD_TABLE.ttl,
        deletionProtection: removalPolicy === RemovalPolicy.RETAIN,
        removalPolicy,
      });
    }

    // ── Event topics (docs/design.md §7) and the ops topic, under one rotated customer key: CloudWatch alarms can only
    // publish to an encrypted topic whose key policy lets them, which the AWS managed aws/sns key cannot.
    this.topicKey = new kms.Key(this, 'TopicKey', {
      description: 'offline-detector SNS topics',
      enableKeyRotation: true,
      removalPolicy,
    });
    this.onlineTopic = props.onlineTopic ?? this.newTopic('OnlineTopic', 'Device online events');
    this.offlineTopic = props.offlineTopic ?? this.newTopic('OfflineTopic', 'Device offline events');
    this.alarmTopic = props.alarmTopic ?? this.newTopic('AlarmTopic', 'offline-detector alarms');
    if (!props.alarmTopic) {
      // Only on behalf of alarms of this account and region (confused deputy): CloudWatch names the alarm it
      // publishes for in aws:SourceArn and its account in aws:SourceAccount, to SNS and to KMS alike.
      const { account, region, partition } = Stack.of(this);
      const fromOurAlarms = {
        StringEquals: { 'aws:SourceAccount': account },
        ArnLike: { 'aws:SourceArn': `arn:${partition}:cloudwatch:${region}:${account}:alarm:*` },
      };
      this.topicKey.addToResourcePolicy(
        new iam.PolicyStatement({
          principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
          actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          resources: ['*'], // in a key policy, '*' is this key
          conditions: fromOurAlarms,
        }),
      );
      this.alarmTopic.addToResourcePolicy(
        new iam.PolicyStatement({
          principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
          actions: ['sns:Publish'],
          resources: [this.alarmTopic.topicArn],
          conditions: fromOurAlarms,
        }),
      );
    }

    // ── Queues. SSE-SQS everywhere: encrypted without a key that every producer would need a grant on.
    const queueDefaults = {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      removalPolicy,
    };
    // Raw device payloads, kept 14 days: the user's key when given, and only the named readers may take them.
    const payloadKey = props.payloadQueues?.encryptionKey;
    const payloadQueueDefaults = {
      ...queueDefaults,
      retentionPeriod: Duration.days(14),
      ...(payloadKey ? { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: payloadKey } : {}),
    };
    this.rejectsQueue = new sqs.Queue(this, 'RejectsQueue', payloadQueueDefaults);

    // Memory and timeouts of the functions as the contract gives them for this deployment (the cost model prices the
    // same, bench/cost.ts).
    const deployment: Deployment = {
      engine: sizing ? 'batched' : 'per-device',
      stream: Boolean(props.kinesisIngest),
      sweepBudgetSeconds: sweepBudget.toSeconds(),
    };
    const spec = (fn: FunctionName) => {
      const { memoryMb, timeoutSeconds } = functionSpec(fn, deployment);
      return { memorySize: memoryMb, timeout: Duration.seconds(timeoutSeconds) };
    };
    const sweepTimeout = spec('sweep').timeout;
    this.sweepDeadLetterQueue = new sqs.Queue(this, 'SweepDLQ', {
      ...queueDefaults,
      retentionPeriod: Duration.days(14),
    });
    this.sweepQueue = new sqs.Queue(this, 'SweepQueue', {
      ...queueDefaults,
      // AWS guidance for SQS event sources: at least 6 × the function timeout, so retries don't double-process.
      visibilityTimeout: Duration.seconds(6 * sweepTimeout.toSeconds()),
      // A job older than a few ticks is superseded by newer jobs for the same shard.
      retentionPeriod: Duration.hours(1),
      deadLetterQueue: { queue: this.sweepDeadLetterQueue, maxReceiveCount: 5 },
    });

    const ingestSqsTimeout = spec('ingestSqs').timeout;
    const sqsIngest = props.sqsIngest === false ? undefined : (props.sqsIngest ?? {});
    if (sqsIngest) {
      if (sqsIngest.queue) {
        this.ingestQueue = sqsIngest.queue;
      } else {
        this.ingestDeadLetterQueue = new sqs.Queue(this, 'IngestDLQ', payloadQueueDefaults);
        this.ingestQueue = new sqs.Queue(this, 'IngestQueue', {
          ...queueDefaults,
          visibilityTimeout: Duration.seconds(6 * ingestSqsTimeout.toSeconds()),
          retentionPeriod: Duration.days(4),
          deadLetterQueue: { queue: this.ingestDeadLetterQueue, maxReceiveCount: 5 },
        });
      }
    }

    const kinesisIngest = props.kinesisIngest;
    if (kinesisIngest) {
      const streamMode = kinesisIngest.streamMode ?? kinesis.StreamMode.ON_DEMAND;
      this.ingestStream =
        kinesisIngest.stream ??
        new kinesis.Stream(this, 'IngestStream', {
          streamMode,
          shardCount: streamMode === kinesis.StreamMode.PROVISIONED ? (kinesisIngest.shardCount ?? 4) : undefined,
          encryption: kinesis.StreamEncryption.MANAGED,
          removalPolicy,
        });
      this.kinesisFailureQueue = new sqs.Queue(this, 'KinesisFailureQueue', {
        ...queueDefaults,
        retentionPeriod: Duration.days(14),
      });
    }

    if (props.payloadQueues?.readers) {
      for (const queue of [this.rejectsQueue, this.ingestDeadLetterQueue]) {
        if (queue) this.onlyReadersTake(queue, props.payloadQueues.readers);
      }
    }

    const ingestQueueUrls = this.ingestQueue ? this.ingestQueue.queueUrl : '';
    const ingestStreamArns = this.ingestStream ? this.ingestStream.streamArn : '';

    // ── Functions
    const common: Record<string, string> = {
      [ENV.tableName]: this.table.tableName,
      [ENV.shardCount]: String(shardCount),
      [ENV.deviceTypes]: deviceTypesJson.json,
      [ENV.defaultDeviceType]: deviceTypesJson.defaultType,
      [ENV.housekeepingTtlDays]: String(housekeepingTtlDays), // ingest writes it; every loader checks it
      [ENV.onlineTopicArn]: this.onlineTopic.topicArn,
      [ENV.offlineTopicArn]: this.offlineTopic.topicArn,
      POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
      NODE_OPTIONS: '--enable-source-maps',
      ...this.engineEnv(),
    };
    const ingestEnv: Record<string, string> = {
      ...common,
      POWERTOOLS_SERVICE_NAME: SERVICE.ingest,
      [ENV.deviceTsSkewMs]: String((props.deviceTimestampSkew ?? Duration.millis(0)).toMilliseconds()),
      [ENV.announceNewDevices]: String(props.announceNewDevices ?? true),
      ...(props.probeMaxBacklog !== undefined ? { [ENV.probeMaxBacklog]: String(props.probeMaxBacklog) } : {}),
      ...(sqsIngest?.messageRate !== undefined ? { [ENV.ingestMessageRate]: String(sqsIngest.messageRate) } : {}),
      [ENV.rejectsQueueUrl]: this.rejectsQueue.queueUrl,
      [ENV.ingestQueueUrls]: ingestQueueUrls,
      ...(props.fieldMap ? { [ENV.fieldMap]: JSON.stringify(props.fieldMap) } : {}),
    };
    const newFunction = (
      id: string,
      entry: string,
      opts: {
        timeout: Duration;
        memorySize: number;
        environment: Record<string, string>;
        description: string;
        reservedConcurrentExecutions?: number;
      },
    ) => {
      // An own role whose only log permissions are this function's log group, instead of the managed
      // AWSLambdaBasicExecutionRole (logs:* on every log group).
      const logGroup = new logs.LogGroup(this, `${id}Logs`, { retention: logRetention, removalPolicy });
      const role = new iam.Role(this, `${id}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      });
      logGroup.grantWrite(role);
      const fn = new nodejs.NodejsFunction(this, id, {
        entry: path.join(LAMBDAS_DIR, entry),
        handler: 'handler',
        ...prebuiltHandler(entry),
        projectRoot: PROJECT_ROOT,
        depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
        runtime: lambda.Runtime.NODEJS_22_X,
        architecture: lambda.Architecture.ARM_64,
        timeout: opts.timeout,
        memorySize: opts.memorySize,
        description: opts.description,
        environment: opts.environment,
        ...(opts.reservedConcurrentExecutions !== undefined
          ? { reservedConcurrentExecutions: opts.reservedConcurrentExecutions }
          : {}),
        role,
        logGroup,
        bundling: {
          format: nodejs.OutputFormat.ESM,
          target: 'node22',
          platform: 'node',
          mainFields: ['module', 'main'],
          banner: ESM_BANNER,
          minify: true,
          sourceMap: true,
          // Ship the SDK versions the tests ran against rather than whatever the runtime happens to carry.
          bundleAwsSDK: true,
          forceDockerBundling: false,
        },
      });
      return fn;
    };

    if (this.ingestQueue && sqsIngest) {
      const fn = newFunction('IngestSqsFunction', HANDLER_ENTRIES.ingestSqs, {
        ...spec('ingestSqs'),
        environment: ingestEnv,
        description: 'offline-detector: SQS ingest (coalesce, conditional write, online transitions)',
      });
      fn.addEventSource(
        new sources.SqsEventSource(this.ingestQueue, {
          batchSize: sqsIngest.batchSize ?? sizing?.batchSize ?? 100,
          maxBatchingWindow: sqsIngest.maxBatchingWindow ?? batchWindow,
          maxConcurrency: sqsIngest.maxConcurrency ?? 50,
          reportBatchItemFailures: true,
        }),
      ); // grants consume, which includes sqs:GetQueueAttributes for probe crediting
      this.grantIngest(fn);
      this.ingestSqsFunction = fn;
    }

    if (this.ingestStream && kinesisIngest && this.kinesisFailureQueue) {
      const fn = newFunction('IngestKinesisFunction', HANDLER_ENTRIES.ingestKinesis, {
        ...spec('ingestKinesis'),
        environment: {
          ...ingestEnv,
          [ENV.ingestStreamArns]: ingestStreamArns,
          [ENV.kinesisParallelizationFactor]: String(kinesisParallelizationFactor),
        },
        description: 'offline-detector: Kinesis ingest (coalesce, conditional write, online transitions)',
      });
      // A mapping of our own rather than CDK's KinesisEventSource, which grants the stream's whole read set: this one
      // uses a standard iterator (no enhanced fan-out), so it needs no SubscribeToShard, DescribeStreamConsumer or
      // ListStreams, and its on-failure queue needs SendMessage only. Same construct id as KinesisEventSource would
      // give it, so an existing mapping is kept, not replaced.
      const failureQueue = this.kinesisFailureQueue;
      fn.addEventSourceMapping(`KinesisEventSource:${Names.nodeUniqueId(this.ingestStream.node)}`, {
        eventSourceArn: this.ingestStream.streamArn,
        startingPosition: kinesisIngest.startingPosition ?? lambda.StartingPosition.LATEST,
        batchSize: kinesisIngest.batchSize ?? sizing?.batchSize ?? 500,
        maxBatchingWindow: kinesisIngest.maxBatchingWindow ?? batchWindow,
        parallelizationFactor: kinesisParallelizationFactor, // 1: checked above
        bisectBatchOnError: kinesisIngest.bisectBatchOnError ?? true,
        // Half the default 24 h retention: a stuck record reaches the failure queue before the stream expires it.
        maxRecordAge: kinesisIngest.maxRecordAge ?? Duration.hours(12),
        retryAttempts: kinesisIngest.retryAttempts ?? 10,
        onFailure: { bind: () => ({ destination: failureQueue.queueArn }) },
        reportBatchItemFailures: true,
      });
      this.ingestStream.grant(fn, ...KINESIS_STANDARD_READ);
      this.ingestStream.encryptionKey?.grantDecrypt(fn);
      grantSendOnly(failureQueue, fn); // Lambda sends the failed batch's description as the function's role
      this.grantIngest(fn);
      this.ingestKinesisFunction = fn;
    }

    const sweepSide = {
      ...common,
      [ENV.sweepQueueUrl]: this.sweepQueue.queueUrl,
      [ENV.sweepTickSeconds]: String(tickSeconds),
      [ENV.ingestQueueUrls]: ingestQueueUrls,
      [ENV.ingestStreamArns]: ingestStreamArns,
    };

    this.dispatchFunction = newFunction('DispatchFunction', HANDLER_ENTRIES.dispatch, {
      // Kinesis has no per-record delay, so with a stream the dispatcher stays the whole minute and puts each tick's
      // probes on time; without one it enqueues everything (SQS DelaySeconds) and returns at once.
      ...spec('dispatch'),
      environment: { ...sweepSide, POWERTOOLS_SERVICE_NAME: SERVICE.dispatch },
      description: 'offline-detector: every minute, enqueue sweep jobs per shard and tick, send watermark probes',
    });
    grantSendOnly(this.sweepQueue, this.dispatchFunction);
    // Watermark probes; GetQueueAttributes because the probes look each queue's ARN up by its URL.
    if (this.ingestQueue) grantSendOnly(this.ingestQueue, this.dispatchFunction, 'sqs:GetQueueAttributes');
    this.ingestStream?.grantWrite(this.dispatchFunction); // ListShards + PutRecord(s): one probe per shard
    // Only its control items: the watermarks and the probe key it creates. Every device item is out of its reach.
    this.grantTable(this.dispatchFunction, TABLE_ACTIONS.dispatch, {
      'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [WATERMARKS_KEY, PROBE_KEY_ITEM] },
      Null: { 'dynamodb:LeadingKeys': 'false' }, // ForAllValues holds for a request without keys: none here
    });

    this.sweepFunction = newFunction('SweepFunction', HANDLER_ENTRIES.sweep, {
      // A batched shard's state: ~55 MB in memory at its 125,000 devices (npm run bench:batched), kept warm.
      ...spec('sweep'),
      environment: {
        ...sweepSide,
        POWERTOOLS_SERVICE_NAME: SERVICE.sweep,
        [ENV.sweepBudgetMs]: String(sweepBudget.toMilliseconds()),
        [ENV.watermarkToleranceMs]: String(tolerance.toMilliseconds()),
        // A batched fleet has few shards: each job settles more devices at once, so that a storm still runs about
        // 1,024 commits in flight (64 shards × 16 on the per-device engine).
        ...(sizing
          ? {
              [ENV.sweepConcurrency]: String(batchedSweepConcurrency(sweepShards)),
              [ENV.sweepPageSize]: String(Math.max(100, batchedSweepConcurrency(sweepShards))),
              // Items written at once for new and returning devices, over all jobs about 128: a mass reconnect is
              // announced at ~4,000 devices/s, ~25,000 WCU/s with the indexes, under the default table quota.
              [ENV.writeConcurrency]: String(batchedReconnectConcurrency(sweepShards)),
            }
          : {}),
      },
      description: 'offline-detector: sweep one deadline-index shard, commit offline transitions, publish events',
    });
    this.sweepFunction.addEventSource(
      new sources.SqsEventSource(this.sweepQueue, {
        batchSize: 1, // one shard per invocation, so maxConcurrency is the number of shards swept at once
        maxConcurrency: sweepMaxConcurrency,
        reportBatchItemFailures: true,
      }),
    );
    grantSendOnly(this.sweepQueue, this.sweepFunction); // continuation jobs
    this.grantTable(this.sweepFunction, TABLE_ACTIONS.sweep);
    this.grantShardTable(this.sweepFunction, SHARD_TABLE_ACTIONS.sweep);
    iam.Grant.addToPrincipal({
      grantee: this.sweepFunction,
      actions: ['dynamodb:Query'],
      resourceArns: [DEADLINE_INDEX.name, OUTBOX_INDEX.name].map((index) => `${this.table.tableArn}/index/${index}`),
    });
    this.onlineTopic.grantPublish(this.sweepFunction); // outbox re-publishes include online events
    this.offlineTopic.grantPublish(this.sweepFunction);

    // Our own role rather than the stack-wide one aws-scheduler-targets would share with other schedules: its one
    // grant (invoke the dispatcher) is then all it holds, and the cdk-nag acknowledgement names exactly it. The same
    // trust as that shared role: schedules of this account's default group.
    const { account } = Stack.of(this);
    this.scheduleRole = new iam.Role(this, 'DispatchScheduleRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: {
          StringEquals: {
            'aws:SourceAccount': account,
            'aws:SourceArn': Stack.of(this).formatArn({
              service: 'scheduler',
              resource: 'schedule-group',
              resourceName: 'default',
            }),
          },
        },
      }),
    });
    this.schedule = new scheduler.Schedule(this, 'DispatchSchedule', {
      schedule: scheduler.ScheduleExpression.rate(Duration.minutes(1)),
      description: 'offline-detector sweep tick',
      // A tick that could not run within a minute is superseded by the next one.
      target: new schedulerTargets.LambdaInvoke(this.dispatchFunction, {
        retryAttempts: 2,
        maxEventAge: Duration.minutes(1),
        role: this.scheduleRole,
      }),
    });

    if (props.operatorApi ?? true) {
      const apiFunction = (id: string, access: ApiAccess, description: string) => {
        const fn = newFunction(id, HANDLER_ENTRIES.api, {
          ...spec('api'),
          environment: {
            [ENV.tableName]: this.table.tableName,
            [ENV.shardCount]: String(shardCount), // GET /stats reads every deadline-index shard
            [ENV.deviceTypes]: deviceTypesJson.json,
            [ENV.defaultDeviceType]: deviceTypesJson.defaultType,
            [ENV.housekeepingTtlDays]: String(housekeepingTtlDays),
            [ENV.apiAccess]: access,
            [ENV.statsCacheSeconds]: String(statsCacheSeconds),
            ...this.engineEnv(),
            POWERTOOLS_SERVICE_NAME: SERVICE.api,
            NODE_OPTIONS: '--enable-source-maps',
          },
          description,
          reservedConcurrentExecutions: apiReservedConcurrency,
        });
        this.grantTable(fn, access === 'read' ? TABLE_ACTIONS.apiRead : TABLE_ACTIONS.api);
        // Notes for the sweep, left by changes: the read function makes none.
        if (access === 'admin') this.grantShardTable(fn, SHARD_TABLE_ACTIONS.api);
        // The offline listing and the offline counts read byOffline; the online counts read byDeadline.
        iam.Grant.addToPrincipal({
          grantee: fn,
          actions: ['dynamodb:Query'],
          resourceArns: [DEADLINE_INDEX.name, OFFLINE_INDEX.name].map(
            (index) => `${this.table.tableArn}/index/${index}`,
          ),
        });
        // Device items only: no operator call reads or writes the watermarks, the probe key or spilled outboxes.
        fn.addToRolePolicy(
          new iam.PolicyStatement({
            effect: iam.Effect.DENY,
            actions: ITEM_ACTIONS,
            resources: [this.table.tableArn],
            conditions: { 'ForAnyValue:StringLike': { 'dynamodb:LeadingKeys': [`${CONTROL_KEY_PREFIX}*`] } },
          }),
        );
        // Never open: every call is SigV4-signed by a principal granted lambda:InvokeFunctionUrl.
        return { fn, url: fn.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.AWS_IAM }) };
      };
      const admin = apiFunction(
        'ApiFunction',
        'admin',
        'offline-detector: operator API, admin (status, offline list, stats, override, mute, decommission)',
      );
      this.apiFunction = admin.fn;
      this.apiUrl = admin.url;
      const read = apiFunction(
        'ApiReadFunction',
        'read',
        'offline-detector: operator API, read only (status, offline list, stats)',
      );
      this.apiReadFunction = read.fn;
      this.apiReadUrl = read.url;
    }

    this.onlyDetectorPublishes(props);
    this.acknowledgeNagFindings();

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

  /** cdk-nag AwsSolutions findings this construct accepts, each with its reason, each on the one resource it
   * excuses and, for findings with several parts, for that part only: a finding anywhere else still shows. */
  private acknowledgeNagFindings(): void {
    const acknowledge = (scope: IConstruct | undefined, id: string, reason: string) => {
      if (scope) Validations.of(scope).acknowledge({ id, reason });
    };
    const policyOf = (fn?: lambda.IFunction) => fn?.role?.node.tryFindChild('DefaultPolicy')?.node.defaultChild;
    for (const fn of this.functions()) {
      acknowledge(
        fn.node.defaultChild,
        'AwsSolutions-L1',
        'nodejs22.x is the runtime the project is built and tested for; a runtime upgrade is a deliberate, tested ' +
          'change, not an automatic one.',
      );
    }
    for (const queue of [this.rejectsQueue, this.kinesisFailureQueue]) {
      acknowledge(
        queue?.node.defaultChild,
        'AwsSolutions-SQS3',
        'A terminal destination (rejected messages / Kinesis records that failed every retry), i.e. a dead-letter ' +
          'queue itself: it is read by operators and alarmed on (RejectsQueueAge, KinesisFailuresDepth), never ' +
          'consumed by a function.',
      );
    }
    // The functions that publish events (grantPublish on the KMS-encrypted topics), and only them.
    for (const fn of [this.ingestSqsFunction, this.ingestKinesisFunction, this.sweepFunction]) {
      acknowledge(
        policyOf(fn),
        'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
        'grantPublish on a KMS-encrypted topic: SNS needs GenerateDataKey on the topic key, and the statement is ' +
          'scoped to that one key.',
      );
    }
    const dispatchId = Stack.of(this).getLogicalId(this.dispatchFunction.node.defaultChild as lambda.CfnFunction);
    acknowledge(
      this.scheduleRole.node.tryFindChild('DefaultPolicy')?.node.defaultChild,
      `AwsSolutions-IAM5[Resource::<${dispatchId}.Arn>:*]`,
      'The scheduler may invoke the dispatch function and its versions/aliases: one function, nothing else.',
    );
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

  /** Lets a principal (a dashboard, a support tool) call the read-only operator API: status, offline list, stats. */
  grantRead(grantee: iam.IGrantable): iam.Grant {
    if (!this.apiReadFunction) throw new Error('the operator API is disabled (operatorApi: false)');
    return this.apiReadFunction.grantInvokeUrl(grantee);
  }

  /** Lets a principal (an operator role, a CI user) call the admin operator API: every route, overrides, mutes and
   * decommissions included. */
  grantAdmin(grantee: iam.IGrantable): iam.Grant {
    if (!this.apiFunction) throw new Error('the operator API is disabled (operatorApi: false)');
    return this.apiFunction.grantInvokeUrl(grantee);
  }

  /** @deprecated use `grantAdmin` (the same grant) or, for callers that only look, `grantRead`. */
  grantApi(grantee: iam.IGrantable): iam.Grant {
    return this.grantAdmin(grantee);
  }

  /** Denies taking messages from a payload queue to every principal but the readers and the account root. Sending
   * (the ingest's rejects, SQS's own redrive into the DLQ), attributes and the policy itself stay as IAM allows. */
  private onlyReadersTake(queue: sqs.Queue, readers: readonly string[]): void {
    if (readers.length === 0) {
      throw new Error('payloadQueues.readers must name at least one principal: whoever runs offline-detector redrive');
    }
    for (const arn of readers) {
      if (!Token.isUnresolved(arn) && !/^arn:[^:]+:(iam|sts)::/.test(arn)) {
        throw new Error(`payloadQueues.readers: "${arn}" is not an IAM principal ARN`);
      }
    }
    const { account, partition } = Stack.of(this);
    queue.addToResourcePolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:PurgeQueue', 'sqs:ChangeMessageVisibility'],
        resources: [queue.queueArn],
        conditions: {
          ArnNotLike: { 'aws:PrincipalArn': [...readers, `arn:${partition}:iam::${account}:root`] },
        },
      }),
    );
    // A reader ARN of another account is no way in either: the payloads stay in this account.
    queue.addToResourcePolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:PurgeQueue', 'sqs:ChangeMessageVisibility'],
        resources: [queue.queueArn],
        conditions: { StringNotEquals: { 'aws:PrincipalAccount': account } },
      }),
    );
  }

  private newTopic(id: string, displayName: string): sns.Topic {
    return new sns.Topic(this, id, { displayName, masterKey: this.topicKey, enforceSSL: true, signatureVersion: '2' });
  }

  /** The event topics page people: on those the construct created, only the detector's own functions may publish,
   * whatever an account principal's `sns:Publish` allows (a fake device.offline must not reach the pager). */
  private onlyDetectorPublishes(props: OfflineDetectorProps): void {
    const publishers = [this.ingestSqsFunction, this.ingestKinesisFunction, this.sweepFunction].flatMap((fn) =>
      fn?.role ? [fn.role.roleArn] : [],
    );
    const created = [
      props.onlineTopic ? undefined : this.onlineTopic,
      props.offlineTopic ? undefined : this.offlineTopic,
    ];
    for (const topic of created) {
      topic?.addToResourcePolicy(
        new iam.PolicyStatement({
          effect: iam.Effect.DENY,
          principals: [new iam.AnyPrincipal()],
          actions: ['sns:Publish'],
          resources: [topic.topicArn],
          conditions: { ArnNotEquals: { 'aws:PrincipalArn': publishers } },
        }),
      );
    }
  }

  private grantIngest(fn: nodejs.NodejsFunction): void {
    this.grantTable(fn, TABLE_ACTIONS.ingest);
    this.grantShardTable(fn, SHARD_TABLE_ACTIONS.ingest);
    grantSendOnly(this.rejectsQueue, fn);
    this.onlineTopic.grantPublish(fn);
    this.offlineTopic.grantPublish(fn); // an online transition can flush an older offline event from the outbox
  }

  /** Item-level actions on the table itself; index access is granted separately, per index. */
  private grantTable(
    fn: iam.IGrantable,
    actions: readonly string[],
    conditions?: Record<string, Record<string, unknown>>,
  ): void {
    iam.Grant.addToPrincipal({
      grantee: fn,
      actions: [...actions],
      resourceArns: [this.table.tableArn],
      ...(conditions ? { conditions } : {}),
    });
    // With a customer key, DynamoDB decrypts the table key on the caller's behalf (kms:ViaService): name the actions
    // rather than grantEncryptDecrypt, whose ReEncrypt* nobody here needs.
    this.table.encryptionKey?.grant(fn, 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey');
  }

  /** Batched engine: item actions on the shard table (none on the per-device engine). */
  private grantShardTable(fn: iam.IGrantable, actions: readonly string[]): void {
    if (!this.shardTable) return;
    iam.Grant.addToPrincipal({ grantee: fn, actions: [...actions], resourceArns: [this.shardTable.tableArn] });
    this.shardTable.encryptionKey?.grant(fn, 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey');
  }

  private engineEnv(): Record<string, string> {
    return this.shardTable && this.sizing
      ? {
          [ENV.engine]: 'batched',
          [ENV.shardTableName]: this.shardTable.tableName,
          [ENV.batchedShardCount]: String(this.sizing.shardCount),
        }
      : {};
  }

  private batchedSizingOf(props: OfflineDetectorProps): BatchedSizing | undefined {
    const engine = props.engine ?? 'per-device';
    if (engine !== 'per-device' && engine !== 'batched') {
      throw new Error(`${this.node.path}: engine must be per-device or batched, got ${String(engine)}`);
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
      throw new Error(`${this.node.path}: fleet.devices must be ≥ 1 and fleet.messagesPerSecond > 0`);
    }
    return batchedSizing({ devices, messagesPerSecond });
  }

  /** Device types as the Lambdas read them (DEVICE_TYPES), validated here with the Lambdas' own parser so a bad
   * configuration fails at synth rather than at cold start; also warns of the watermark tolerance's bounds
   * (docs/design.md §6.4) with the dispatcher's own check. */
  private deviceTypesJson(
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
    const parsed = parseDeviceTypes(raw, defaultType);
    for (const warning of toleranceWarnings(parsed, tolerance.toMilliseconds(), tickSeconds)) {
      const id = warning.deviceType === undefined ? 'tolerance-tick' : `tolerance:${warning.deviceType}`;
      Annotations.of(this).addWarningV2(`offline-detector:${id}`, warning.message);
    }
    return { json: JSON.stringify(raw), defaultType, parsed };
  }
}
