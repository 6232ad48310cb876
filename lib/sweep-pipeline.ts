// The sweep (docs/design.md §5): every minute EventBridge Scheduler invokes the dispatcher, which puts a job per shard
// and tick on the sweep queue and the watermark probes into the ingest sources; the sweep function takes one job at a
// time and settles one shard of the deadline index.
import { Duration, type RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as schedulerTargets from 'aws-cdk-lib/aws-scheduler-targets';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ENV } from '../lambdas/core/contracts.js';
import { batchedReconnectConcurrency, batchedSweepConcurrency } from '../lambdas/core/sizing.js';
import {
  DEADLINE_INDEX,
  MAINTENANCE_KEY,
  OFFLINE_INDEX,
  OUTAGES_KEY,
  OUTBOX_INDEX,
  PROBE_KEY_ITEM,
  WATERMARKS_KEY,
} from '../lambdas/core/table-schema.js';
import type { DeviceTables } from './device-tables.js';
import type { EventTopics } from './event-topics.js';
import type { FunctionFactory } from './function-factory.js';
import type { IngestSources } from './ingest-sources.js';
import { grantSendOnly, queueDefaults } from './queues.js';

export interface SweepPipelineProps {
  readonly tables: DeviceTables;
  readonly topics: EventTopics;
  /** Where the dispatcher puts its probes and whose watermarks the sweep waits for. */
  readonly ingest: IngestSources;
  readonly functions: FunctionFactory;
  /** Sweep period, a whole number of seconds dividing 60. */
  readonly tickSeconds: number;
  /** Shards swept at once. */
  readonly maxConcurrency: number;
  /** Time one job works before it hands the rest of its shard to a continuation job. */
  readonly budget: Duration;
  readonly watermarkTolerance: Duration;
  /** Batched engine: its shard count, which the sweep's concurrency within a job is sized from. */
  readonly batchedShards?: number;
  /** The tag naming a device's parent (gateway dependency). @default none */
  readonly parentTag?: string;
  /** Allow-list mode: the batched engine's sweep rejects unregistered devices (to the rejects queue). */
  readonly allowList?: boolean;
  /** Outage detection on: the dispatcher reads the offline index, writes the incidents, publishes fleet events. */
  readonly outageDetection?: boolean;
  /** Of the queues. */
  readonly removalPolicy: RemovalPolicy;
}

/** DynamoDB actions of the dispatcher (on its control items only) and of the sweep; the sweep also reads the batched
 * engine's shard log and loads and saves the shard states. */
const DISPATCH_TABLE_ACTIONS = ['dynamodb:GetItem', 'dynamodb:UpdateItem'];
const SWEEP_TABLE_ACTIONS = ['dynamodb:GetItem', 'dynamodb:UpdateItem'];
const SWEEP_SHARD_TABLE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
];

export class SweepPipeline extends Construct {
  readonly sweepQueue: sqs.Queue;
  readonly sweepDeadLetterQueue: sqs.Queue;
  readonly dispatchFunction: nodejs.NodejsFunction;
  readonly sweepFunction: nodejs.NodejsFunction;
  readonly schedule: scheduler.Schedule;
  /** The role the schedule invokes the dispatcher with. */
  readonly scheduleRole: iam.Role;

  constructor(scope: Construct, id: string, props: SweepPipelineProps) {
    super(scope, id);
    const defaults = queueDefaults(props.removalPolicy);
    this.sweepDeadLetterQueue = new sqs.Queue(this, 'SweepDLQ', { ...defaults, retentionPeriod: Duration.days(14) });
    this.sweepQueue = new sqs.Queue(this, 'SweepQueue', {
      ...defaults,
      // AWS guidance for SQS event sources: at least 6 × the function timeout, so retries don't double-process.
      visibilityTimeout: Duration.seconds(6 * props.functions.timeout('sweep').toSeconds()),
      // A job older than a few ticks is superseded by newer jobs for the same shard.
      retentionPeriod: Duration.hours(1),
      deadLetterQueue: { queue: this.sweepDeadLetterQueue, maxReceiveCount: 5 },
    });
    const environment = {
      ...props.topics.environment,
      ...props.ingest.sourcesEnvironment,
      [ENV.sweepQueueUrl]: this.sweepQueue.queueUrl,
      [ENV.sweepTickSeconds]: String(props.tickSeconds),
    };
    this.dispatchFunction = this.createDispatch(props, environment);
    this.sweepFunction = this.createSweep(props, environment);
    this.scheduleRole = this.createScheduleRole();
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
    this.acknowledgeInvokingVersions();
  }

  private createDispatch(props: SweepPipelineProps, environment: Record<string, string>): nodejs.NodejsFunction {
    const fn = props.functions.create(this, 'DispatchFunction', 'dispatch', {
      description: 'offline-detector: every minute, enqueue sweep jobs per shard and tick, send watermark probes',
      environment,
    });
    grantSendOnly(this.sweepQueue, fn);
    props.ingest.grantProbes(fn);
    // Only its control items: the watermarks, the probe key it creates, the maintenance windows it moves along at
    // their schedules' edges. Every device item is out of its reach.
    props.tables.grantItems(fn, DISPATCH_TABLE_ACTIONS, {
      'ForAllValues:StringEquals': {
        'dynamodb:LeadingKeys': [
          WATERMARKS_KEY,
          PROBE_KEY_ITEM,
          MAINTENANCE_KEY,
          ...(props.outageDetection ? [OUTAGES_KEY] : []),
        ],
      },
      Null: { 'dynamodb:LeadingKeys': 'false' }, // ForAllValues holds for a request without keys: none here
    });
    if (props.outageDetection) {
      // The outage evaluation: the offline index's newest entries, and one fleet event per incident change.
      props.tables.grantIndexQuery(fn, [OFFLINE_INDEX.name]);
      props.topics.grantPublish(fn);
    }
    return fn;
  }

  private createSweep(props: SweepPipelineProps, environment: Record<string, string>): nodejs.NodejsFunction {
    const batchedShards = props.batchedShards;
    const fn = props.functions.create(this, 'SweepFunction', 'sweep', {
      description: 'offline-detector: sweep one deadline-index shard, commit offline transitions, publish events',
      environment: {
        ...environment,
        [ENV.sweepBudgetMs]: String(props.budget.toMilliseconds()),
        [ENV.watermarkToleranceMs]: String(props.watermarkTolerance.toMilliseconds()),
        ...(props.parentTag ? { [ENV.parentTag]: props.parentTag } : {}),
        ...(props.allowList && batchedShards !== undefined
          ? { [ENV.allowList]: 'true', ...props.ingest.rejectsEnvironment }
          : {}),
        // A batched fleet has few shards: each job settles more devices at once, so that a storm still runs about
        // 1,024 commits in flight (64 shards × 16 on the per-device engine).
        ...(batchedShards !== undefined
          ? {
              [ENV.sweepConcurrency]: String(batchedSweepConcurrency(batchedShards)),
              [ENV.sweepPageSize]: String(Math.max(100, batchedSweepConcurrency(batchedShards))),
              // Items written at once for new and returning devices, over all jobs about 128: a mass reconnect is
              // announced at ~4,000 devices/s, ~25,000 WCU/s with the indexes, under the default table quota.
              [ENV.writeConcurrency]: String(batchedReconnectConcurrency(batchedShards)),
            }
          : {}),
      },
    });
    fn.addEventSource(
      new sources.SqsEventSource(this.sweepQueue, {
        batchSize: 1, // one shard per invocation, so maxConcurrency is the number of shards swept at once
        maxConcurrency: props.maxConcurrency,
        reportBatchItemFailures: true,
      }),
    );
    grantSendOnly(this.sweepQueue, fn); // continuation jobs
    props.tables.grantItems(fn, SWEEP_TABLE_ACTIONS);
    props.tables.grantShardItems(fn, SWEEP_SHARD_TABLE_ACTIONS);
    props.tables.grantIndexQuery(fn, [DEADLINE_INDEX.name, OUTBOX_INDEX.name]);
    props.topics.grantPublish(fn); // outbox re-publishes include online events
    // The batched engine's slow path meets unregistered devices in allow-list mode: their rejections.
    if (props.allowList && batchedShards !== undefined) props.ingest.grantSendRejects(fn);
    return fn;
  }

  /** Our own role rather than the stack-wide one aws-scheduler-targets would share with other schedules: its one
   * grant (invoke the dispatcher) is then all it holds, and the cdk-nag acknowledgement names exactly it. The same
   * trust as that shared role: schedules of this account's default group. */
  private createScheduleRole(): iam.Role {
    const stack = Stack.of(this);
    return new iam.Role(this, 'DispatchScheduleRole', {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: {
          StringEquals: {
            'aws:SourceAccount': stack.account,
            'aws:SourceArn': stack.formatArn({
              service: 'scheduler',
              resource: 'schedule-group',
              resourceName: 'default',
            }),
          },
        },
      }),
    });
  }

  /** cdk-nag AwsSolutions-IAM5 on the schedule's role, for the one wildcard LambdaInvoke grants it. */
  private acknowledgeInvokingVersions(): void {
    const policy = this.scheduleRole.node.tryFindChild('DefaultPolicy')?.node.defaultChild;
    if (!policy) return;
    const dispatchId = Stack.of(this).getLogicalId(this.dispatchFunction.node.defaultChild as lambda.CfnFunction);
    Validations.of(policy).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${dispatchId}.Arn>:*]`,
      reason: 'The scheduler may invoke the dispatch function and its versions/aliases: one function, nothing else.',
    });
  }
}
