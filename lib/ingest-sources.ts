// Where device messages enter (docs/design.md §4): the SQS ingest queue and its dead-letter queue, the Kinesis stream
// and its on-failure queue, the rejects queue, and the ingest functions that read them.
import { Duration, Names, type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct, type IConstruct } from 'constructs';
import type { FieldMap } from '../lambdas/core/config.js';
import { ENV } from '../lambdas/core/contracts.js';
import type { DeviceTables } from './device-tables.js';
import type { EventTopics } from './event-topics.js';
import type { FunctionFactory } from './function-factory.js';
import { grantSendOnly, queueDefaults } from './queues.js';

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

export interface IngestSourcesProps {
  /** The SQS source. @default none */
  readonly sqs?: SqsIngestOptions;
  /** The Kinesis source. @default none */
  readonly kinesis?: KinesisIngestOptions;
  readonly payloadQueues?: PayloadQueueOptions;
  /** Batching of both sources unless their options say otherwise. */
  readonly batching: { readonly size?: number; readonly window: Duration };
  readonly tables: DeviceTables;
  readonly topics: EventTopics;
  readonly functions: FunctionFactory;
  /** Use the device's own timestamp when within this of the pipeline entry time. @default 0 (never) */
  readonly deviceTimestampSkew?: Duration;
  /** Publish device.online for a device's very first message. @default true */
  readonly announceNewDevices?: boolean;
  /** A watermark probe is credited only when the SQS queue's visible backlog is at most this. @default half a second
   * of `sqs.messageRate`, at least 10 */
  readonly probeMaxBacklog?: number;
  /** Where deviceId, ts and deviceType are found in a message payload. @default the same names */
  readonly fieldMap?: Partial<FieldMap>;
  /** Allow-list mode: only registered devices are tracked. @default false */
  readonly allowList?: boolean;
  /** Of the queues and the stream. */
  readonly removalPolicy: RemovalPolicy;
}

/** DynamoDB actions of the ingest on the device table's items (it never scans, batches or deletes) and on the batched
 * engine's shard table (it appends to the shard logs). */
const TABLE_ACTIONS = ['dynamodb:GetItem', 'dynamodb:UpdateItem'];
const SHARD_TABLE_ACTIONS = ['dynamodb:PutItem'];

/** What a Lambda event source mapping with a standard iterator reads a stream with (Lambda developer guide,
 * "Process Amazon Kinesis Data Streams records with Lambda"); SubscribeToShard is for enhanced fan-out only. */
const KINESIS_STANDARD_READ = [
  'kinesis:DescribeStream',
  'kinesis:DescribeStreamSummary',
  'kinesis:GetRecords',
  'kinesis:GetShardIterator',
  'kinesis:ListShards',
];

export class IngestSources extends Construct {
  /** The SQS ingest queue devices send to (absent without an SQS source). */
  readonly ingestQueue?: sqs.IQueue;
  /** Dead-letter queue of a created ingest queue. */
  readonly ingestDeadLetterQueue?: sqs.Queue;
  readonly ingestStream?: kinesis.IStream;
  /** On-failure destination of the Kinesis event source. */
  readonly kinesisFailureQueue?: sqs.Queue;
  /** Invalid messages, each with the reason it was rejected. */
  readonly rejectsQueue: sqs.Queue;
  readonly ingestSqsFunction?: nodejs.NodejsFunction;
  readonly ingestKinesisFunction?: nodejs.NodejsFunction;
  /** The sources as the dispatcher (where to put probes) and the sweep (whose watermarks to wait for) read them. */
  readonly sourcesEnvironment: Readonly<Record<string, string>>;
  /** Where rejections go, as a function that sends them reads it. */
  readonly rejectsEnvironment: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: IngestSourcesProps) {
    super(scope, id);
    const defaults = queueDefaults(props.removalPolicy);
    // Raw device payloads, kept 14 days: the user's key when given, and only the named readers may take them.
    const payloadKey = props.payloadQueues?.encryptionKey;
    const payloadQueueDefaults = {
      ...defaults,
      retentionPeriod: Duration.days(14),
      ...(payloadKey ? { encryption: sqs.QueueEncryption.KMS, encryptionMasterKey: payloadKey } : {}),
    };
    this.rejectsQueue = new sqs.Queue(this, 'RejectsQueue', payloadQueueDefaults);
    if (props.sqs) {
      if (props.sqs.queue) {
        this.ingestQueue = props.sqs.queue;
      } else {
        this.ingestDeadLetterQueue = new sqs.Queue(this, 'IngestDLQ', payloadQueueDefaults);
        this.ingestQueue = new sqs.Queue(this, 'IngestQueue', {
          ...defaults,
          visibilityTimeout: Duration.seconds(6 * props.functions.timeout('ingestSqs').toSeconds()),
          retentionPeriod: Duration.days(4),
          deadLetterQueue: { queue: this.ingestDeadLetterQueue, maxReceiveCount: 5 },
        });
      }
    }
    if (props.kinesis) {
      const streamMode = props.kinesis.streamMode ?? kinesis.StreamMode.ON_DEMAND;
      this.ingestStream =
        props.kinesis.stream ??
        new kinesis.Stream(this, 'IngestStream', {
          streamMode,
          shardCount: streamMode === kinesis.StreamMode.PROVISIONED ? (props.kinesis.shardCount ?? 4) : undefined,
          encryption: kinesis.StreamEncryption.MANAGED,
          removalPolicy: props.removalPolicy,
        });
      this.kinesisFailureQueue = new sqs.Queue(this, 'KinesisFailureQueue', {
        ...defaults,
        retentionPeriod: Duration.days(14),
      });
    }
    const readers = props.payloadQueues?.readers;
    if (readers) {
      for (const queue of [this.rejectsQueue, this.ingestDeadLetterQueue]) {
        if (queue) this.onlyReadersTake(queue, readers);
      }
    }
    this.rejectsEnvironment = { [ENV.rejectsQueueUrl]: this.rejectsQueue.queueUrl };
    const queueUrls = this.ingestQueue?.queueUrl ?? '';
    this.sourcesEnvironment = {
      [ENV.ingestQueueUrls]: queueUrls,
      [ENV.ingestStreamArns]: this.ingestStream?.streamArn ?? '',
    };

    const ingestEnvironment = {
      ...props.topics.environment,
      [ENV.deviceTsSkewMs]: String((props.deviceTimestampSkew ?? Duration.millis(0)).toMilliseconds()),
      [ENV.announceNewDevices]: String(props.announceNewDevices ?? true),
      ...(props.probeMaxBacklog !== undefined ? { [ENV.probeMaxBacklog]: String(props.probeMaxBacklog) } : {}),
      ...(props.sqs?.messageRate !== undefined ? { [ENV.ingestMessageRate]: String(props.sqs.messageRate) } : {}),
      ...(props.fieldMap ? { [ENV.fieldMap]: JSON.stringify(props.fieldMap) } : {}),
      ...this.rejectsEnvironment,
      [ENV.ingestQueueUrls]: queueUrls,
      ...(props.allowList ? { [ENV.allowList]: 'true' } : {}),
    };
    if (props.sqs && this.ingestQueue) {
      this.ingestSqsFunction = this.createSqsIngest(props, props.sqs, this.ingestQueue, ingestEnvironment);
    }
    if (props.kinesis && this.ingestStream && this.kinesisFailureQueue) {
      this.ingestKinesisFunction = this.createKinesisIngest(
        props,
        props.kinesis,
        this.ingestStream,
        this.kinesisFailureQueue,
        ingestEnvironment,
      );
    }
    this.acknowledgeDeadLetterDestinations();
  }

  /** Lets the dispatcher put watermark probes into every source: SendMessage to the queue (GetQueueAttributes
   * because the probes look the queue's ARN up by its URL), ListShards and PutRecord(s) on the stream. */
  grantProbes(grantee: iam.IGrantable): void {
    if (this.ingestQueue) grantSendOnly(this.ingestQueue, grantee, 'sqs:GetQueueAttributes');
    this.ingestStream?.grantWrite(grantee);
  }

  private createSqsIngest(
    props: IngestSourcesProps,
    options: SqsIngestOptions,
    queue: sqs.IQueue,
    ingestEnvironment: Record<string, string>,
  ): nodejs.NodejsFunction {
    const fn = props.functions.create(this, 'IngestSqsFunction', 'ingestSqs', {
      description: 'offline-detector: SQS ingest (coalesce, conditional write, online transitions)',
      environment: ingestEnvironment,
    });
    fn.addEventSource(
      new sources.SqsEventSource(queue, {
        batchSize: options.batchSize ?? props.batching.size ?? 100,
        maxBatchingWindow: options.maxBatchingWindow ?? props.batching.window,
        maxConcurrency: options.maxConcurrency ?? 50,
        reportBatchItemFailures: true,
      }),
    ); // grants consume, which includes sqs:GetQueueAttributes for probe crediting
    this.grantIngest(fn, props);
    return fn;
  }

  private createKinesisIngest(
    props: IngestSourcesProps,
    options: KinesisIngestOptions,
    stream: kinesis.IStream,
    failureQueue: sqs.Queue,
    ingestEnvironment: Record<string, string>,
  ): nodejs.NodejsFunction {
    const parallelizationFactor = options.parallelizationFactor ?? 1; // the detector refuses any other
    const fn = props.functions.create(this, 'IngestKinesisFunction', 'ingestKinesis', {
      description: 'offline-detector: Kinesis ingest (coalesce, conditional write, online transitions)',
      environment: {
        ...ingestEnvironment,
        [ENV.ingestStreamArns]: stream.streamArn,
        [ENV.kinesisParallelizationFactor]: String(parallelizationFactor),
      },
    });
    // A mapping of our own rather than CDK's KinesisEventSource, which grants the stream's whole read set: this one
    // uses a standard iterator (no enhanced fan-out), so it needs no SubscribeToShard, DescribeStreamConsumer or
    // ListStreams, and its on-failure queue needs SendMessage only. Same construct id as KinesisEventSource would
    // give it.
    fn.addEventSourceMapping(`KinesisEventSource:${Names.nodeUniqueId(stream.node)}`, {
      eventSourceArn: stream.streamArn,
      startingPosition: options.startingPosition ?? lambda.StartingPosition.LATEST,
      batchSize: options.batchSize ?? props.batching.size ?? 500,
      maxBatchingWindow: options.maxBatchingWindow ?? props.batching.window,
      parallelizationFactor,
      bisectBatchOnError: options.bisectBatchOnError ?? true,
      // Half the default 24 h retention: a stuck record reaches the failure queue before the stream expires it.
      maxRecordAge: options.maxRecordAge ?? Duration.hours(12),
      retryAttempts: options.retryAttempts ?? 10,
      onFailure: { bind: () => ({ destination: failureQueue.queueArn }) },
      reportBatchItemFailures: true,
    });
    stream.grant(fn, ...KINESIS_STANDARD_READ);
    stream.encryptionKey?.grantDecrypt(fn);
    grantSendOnly(failureQueue, fn); // Lambda sends the failed batch's description as the function's role
    this.grantIngest(fn, props);
    return fn;
  }

  /** Lets a function send rejections (with `rejectsEnvironment`). */
  grantSendRejects(fn: iam.IGrantable): void {
    grantSendOnly(this.rejectsQueue, fn);
  }

  private grantIngest(fn: nodejs.NodejsFunction, props: IngestSourcesProps): void {
    props.tables.grantItems(fn, TABLE_ACTIONS);
    props.tables.grantShardItems(fn, SHARD_TABLE_ACTIONS);
    this.grantSendRejects(fn);
    props.topics.grantPublish(fn);
  }

  /** Denies taking messages from a payload queue to every principal but the readers and the account root. Sending
   * (the ingest's rejects, SQS's own redrive into the DLQ), attributes and the policy itself stay as IAM allows. */
  private onlyReadersTake(queue: sqs.Queue, readers: readonly string[]): void {
    const { account, partition } = Stack.of(this);
    const take = ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:PurgeQueue', 'sqs:ChangeMessageVisibility'];
    queue.addToResourcePolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: take,
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
        actions: take,
        resources: [queue.queueArn],
        conditions: { StringNotEquals: { 'aws:PrincipalAccount': account } },
      }),
    );
  }

  /** cdk-nag AwsSolutions-SQS3 (a queue without a DLQ), on the two queues that are terminal destinations. */
  private acknowledgeDeadLetterDestinations(): void {
    for (const queue of [this.rejectsQueue, this.kinesisFailureQueue]) {
      const resource: IConstruct | undefined = queue?.node.defaultChild;
      if (!resource) continue;
      Validations.of(resource).acknowledge({
        id: 'AwsSolutions-SQS3',
        reason:
          'A terminal destination (rejected messages / Kinesis records that failed every retry), i.e. a dead-letter ' +
          'queue itself: it is read by operators and alarmed on (RejectsQueueAge, KinesisFailuresDepth), never ' +
          'consumed by a function.',
      });
    }
  }
}
