// The dashboard a person opens during an incident, and the alarms that send them there. Top to bottom it follows
// the flow: ingest → table → lag/watermarks → transitions → sweep and outbox → Lambda health and dead letters.
import { Duration } from 'aws-cdk-lib';
import * as cw from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import type * as kinesis from 'aws-cdk-lib/aws-kinesis';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DIMENSION, type EmittedBy, METRIC, SERVICE, type ServiceName } from '../lambdas/core/contracts.js';

export interface AlarmOptions {
  /** Offline transitions per minute above which an offline storm is declared. @default 1000 */
  readonly offlineStormPerMinute?: number;
  /** Age of the oldest ingest message (SQS) or record (Kinesis iterator age) that means ingest is behind.
   * @default 2 minutes */
  readonly maxIngestAge?: Duration;
  /** Sweep lag (how far the sweep cutoff trails the wall clock) that means detection is late. @default 1 minute */
  readonly maxSweepLag?: Duration;
  /** Watermark age that means some ingest partition stopped crediting probes. @default 2 minutes */
  readonly maxWatermarkAge?: Duration;
  /** New device ids per minute above which someone may be flooding the ingest with made-up ids (each costs writes,
   * two events and storage until the housekeeping TTL). @default 1000 */
  readonly newDevicesPerMinute?: number;
  /** Rejected records per minute that mean a producer sends what the detector cannot use. @default 100 */
  readonly rejectedPerMinute?: number;
  /** Age of the oldest message in the rejects queue that means nobody looks at it (messages expire at 14 days).
   * @default 7 days */
  readonly maxRejectsAge?: Duration;
}

export interface OfflineDetectorDashboardProps {
  readonly dashboardName?: string;
  readonly namespace: string;
  readonly table: dynamodb.ITableV2;
  readonly indexNames: readonly string[];
  readonly functions: readonly lambda.IFunction[];
  /** The scheduled function whose silence means no detection at all. */
  readonly dispatchFunction: lambda.IFunction;
  readonly ingestQueue?: sqs.IQueue;
  readonly ingestStream?: kinesis.IStream;
  readonly deadLetterQueues: readonly { name: string; queue: sqs.IQueue }[];
  readonly rejectsQueue: sqs.IQueue;
  readonly alarmTopic: sns.ITopic;
  readonly alarms?: AlarmOptions;
}

/** DynamoDB's own metrics the dashboard reads, of the table and each index (AWS/DynamoDB; not the handlers'). */
type TableMetric =
  | 'ConsumedWriteCapacityUnits'
  | 'ConsumedReadCapacityUnits'
  | 'WriteThrottleEvents'
  | 'ReadThrottleEvents';

const PERIOD = Duration.minutes(1);
const WIDTH = 8; // three graphs per row of 24

export class OfflineDetectorDashboard extends Construct {
  readonly dashboard: cw.Dashboard;
  readonly alarms: cw.Alarm[] = [];
  private readonly namespace: string;
  private readonly alarmAction: cw.IAlarmAction;

  constructor(scope: Construct, id: string, props: OfflineDetectorDashboardProps) {
    super(scope, id);
    this.namespace = props.namespace;
    this.alarmAction = new cwActions.SnsAction(props.alarmTopic);
    const opts = props.alarms ?? {};
    const tableName = props.table.tableName;

    // The handlers' metrics: a name is accepted only under the service that emits it (contracts.ts EMITTED).
    const app = <S extends ServiceName>(
      service: S,
      metricName: EmittedBy<S>,
      statistic = cw.Stats.SUM,
      label?: string,
    ) =>
      new cw.Metric({
        namespace: this.namespace,
        metricName,
        dimensionsMap: { [DIMENSION.service]: service },
        statistic,
        period: PERIOD,
        label,
      });
    const ddb = (metricName: TableMetric, index?: string, statistic = cw.Stats.SUM) =>
      new cw.Metric({
        namespace: 'AWS/DynamoDB',
        metricName,
        dimensionsMap: index ? { TableName: tableName, GlobalSecondaryIndexName: index } : { TableName: tableName },
        statistic,
        period: PERIOD,
        label: index ? `${metricName} (${index})` : `${metricName} (table)`,
      });
    const ddbAll = (metricName: TableMetric) => [ddb(metricName), ...props.indexNames.map((i) => ddb(metricName, i))];

    // ── Alarms
    for (const { name, queue } of props.deadLetterQueues) {
      this.alarm(`${idOf(name)}Depth`, {
        metric: queue.metricApproximateNumberOfMessagesVisible({ period: PERIOD, statistic: cw.Stats.MAXIMUM }),
        threshold: 1,
        evaluationPeriods: 1,
        alarmDescription:
          `${name} holds messages: they failed every retry and need a look. Their devices may have been reported ` +
          'offline as if these messages were never sent; after fixing the cause, `offline-detector redrive` puts ' +
          'ingest DLQ messages back with the time they first entered (README, "Guarantees under faults").',
      });
    }
    const maxIngestAge = opts.maxIngestAge ?? Duration.minutes(2);
    if (props.ingestQueue) {
      this.alarm('IngestQueueAge', {
        metric: props.ingestQueue.metricApproximateAgeOfOldestMessage({ period: PERIOD, statistic: cw.Stats.MAXIMUM }),
        threshold: maxIngestAge.toSeconds(),
        evaluationPeriods: 3,
        alarmDescription:
          'Ingest is behind on the SQS queue. Watermarks hold the sweep cutoff back, so detection is delayed, ' +
          'not wrong. Check ingest errors, throttles and concurrency.',
      });
    }
    if (props.ingestStream) {
      this.alarm('IngestIteratorAge', {
        metric: props.ingestStream.metricGetRecordsIteratorAgeMilliseconds({
          period: PERIOD,
          statistic: cw.Stats.MAXIMUM,
        }),
        threshold: maxIngestAge.toMilliseconds(),
        evaluationPeriods: 3,
        alarmDescription:
          'Ingest is behind on the Kinesis stream. Watermarks hold the sweep cutoff back, so detection is delayed, ' +
          'not wrong. Check ingest errors and add shards if the stream is at capacity.',
      });
    }
    this.alarm('SweepLag', {
      metric: app(SERVICE.sweep, METRIC.SweepLagMs, cw.Stats.MAXIMUM),
      threshold: (opts.maxSweepLag ?? Duration.minutes(1)).toMilliseconds(),
      evaluationPeriods: 3,
      alarmDescription:
        'Sweep cutoff trails the clock: offline events are late. Usually follows ingest lag (watermarks) or a ' +
        'sweep that cannot keep up (continuations, throttles, sweep concurrency).',
    });
    this.alarm('WatermarkAge', {
      metric: app(SERVICE.sweep, METRIC.WatermarkAgeMs, cw.Stats.MAXIMUM),
      threshold: (opts.maxWatermarkAge ?? Duration.minutes(2)).toMilliseconds(),
      evaluationPeriods: 3,
      alarmDescription:
        'An ingest partition stopped crediting watermark probes: ingest is stalled or probes are not sent ' +
        '(dispatch). Offline detection is frozen at the last watermark until it recovers.',
    });
    this.alarm('DispatchNotRunning', {
      metric: props.dispatchFunction.metricInvocations({ period: PERIOD, statistic: cw.Stats.SUM }),
      threshold: 1,
      comparisonOperator: cw.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 3,
      treatMissingData: cw.TreatMissingData.BREACHING,
      alarmDescription: 'The dispatcher has not run for 3 minutes: no sweeps, no probes, no offline detection.',
    });
    this.alarm('TableThrottles', {
      metric: new cw.MathExpression({
        expression: 'SUM(METRICS())',
        usingMetrics: Object.fromEntries(
          [...ddbAll('WriteThrottleEvents'), ...ddbAll('ReadThrottleEvents')].map((m, i) => [`t${i}`, m]),
        ),
        period: PERIOD,
        label: 'throttle events (table + indexes)',
      }),
      threshold: 1,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      alarmDescription:
        'DynamoDB throttles on the table or an index (an index write throttle throttles the base table). ' +
        'Provisioned: raise capacity; on-demand: a hot shard or a sudden 2× peak; check the deadline shard count.',
    });
    this.alarm('OfflineStorm', {
      metric: app(SERVICE.sweep, METRIC.OfflineTransitions),
      threshold: opts.offlineStormPerMinute ?? 1000,
      evaluationPeriods: 1,
      alarmDescription:
        'More devices went offline in a minute than the storm threshold: a network or upstream outage, or a ' +
        'mass disconnect. The detector is doing its job; the fleet needs attention.',
    });
    this.alarm('NewDevices', {
      metric: app(SERVICE.ingest, METRIC.NewDevices),
      threshold: opts.newDevicesPerMinute ?? 1000,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      alarmDescription:
        'More new device ids than expected: a deployment of new devices, or a producer sending made-up ids (each ' +
        'costs writes, an online and an offline event, and storage until the housekeeping TTL).',
    });
    // Rejections come from the ingest, and in allow-list mode from the batched engine's sweep too.
    const ingestAndSweep = (metricName: EmittedBy<'ingest'> & EmittedBy<'sweep'>) =>
      new cw.MathExpression({
        expression: 'FILL(ingest, 0) + FILL(sweep, 0)',
        usingMetrics: { ingest: app(SERVICE.ingest, metricName), sweep: app(SERVICE.sweep, metricName) },
        label: metricName,
        period: PERIOD,
      });
    this.alarm('MessagesRejected', {
      metric: ingestAndSweep(METRIC.MessagesRejected),
      threshold: opts.rejectedPerMinute ?? 100,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      alarmDescription:
        'Producers send records the detector cannot use (see the reason dimension and the rejects queue).',
    });
    this.alarm('RejectsQueueAge', {
      metric: props.rejectsQueue.metricApproximateAgeOfOldestMessage({ period: PERIOD, statistic: cw.Stats.MAXIMUM }),
      threshold: (opts.maxRejectsAge ?? Duration.days(7)).toSeconds(),
      evaluationPeriods: 1,
      alarmDescription:
        'Rejected records wait unread in the rejects queue and expire after 14 days: read their reason and detail, ' +
        'fix the producer, then purge or drain the queue.',
    });
    this.alarm('PublishFailures', {
      metric: app(SERVICE.sweep, METRIC.PublishFailures),
      threshold: 1,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      alarmDescription:
        'Events keep failing to publish to SNS. Nothing is lost (the outbox re-publishes), but subscribers are ' +
        'behind. Check the topics, their key and SNS throttling.',
    });
    this.alarm('RejectsNotDelivered', {
      metric: ingestAndSweep(METRIC.RejectsNotDelivered),
      threshold: 1,
      evaluationPeriods: 1,
      alarmDescription:
        'The Kinesis ingest (or, in allow-list mode, the batched sweep) could not deliver rejected records to the ' +
        'rejects queue: they are in its log ' +
        '(reason, record id, excerpt), and the shard went on. Check the rejects queue and its permissions.',
    });
    this.alarm('HoldFailures', {
      metric: app(SERVICE.ingest, METRIC.HoldFailures),
      threshold: 1,
      evaluationPeriods: 1,
      alarmDescription:
        'The SQS ingest could not record a hold for records it failed: while they wait out the visibility ' +
        'timeout, probes may move the watermark past them and their devices may be reported offline. Check ' +
        'DynamoDB (throttling of the watermark item, errors).',
    });
    for (const fn of props.functions) {
      this.alarm(`${fn.node.id}Errors`, {
        metric: fn.metricErrors({ period: PERIOD, statistic: cw.Stats.SUM }),
        threshold: 1,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        alarmDescription: `${fn.node.id} fails whole invocations (not single records): see its logs.`,
      });
    }

    // ── Dashboard
    const fnMetric = (label: string, f: (fn: lambda.IFunction) => cw.IMetric) =>
      props.functions.map((fn) => withLabel(f(fn), `${fn.node.id.replace('Function', '')} ${label}`));
    const graph = (title: string, left: cw.IMetric[], extra: Partial<cw.GraphWidgetProps> = {}) =>
      new cw.GraphWidget({ title, left, width: WIDTH, height: 6, period: PERIOD, ...extra });

    const lagMetrics: cw.IMetric[] = [];
    if (props.ingestQueue) {
      lagMetrics.push(
        withLabel(
          props.ingestQueue.metricApproximateAgeOfOldestMessage({ period: PERIOD, statistic: cw.Stats.MAXIMUM }),
          'SQS age of oldest message (s)',
        ),
      );
    }
    const iteratorAge = props.ingestStream
      ? [
          withLabel(
            props.ingestStream.metricGetRecordsIteratorAgeMilliseconds({ period: PERIOD, statistic: cw.Stats.MAXIMUM }),
            'Kinesis iterator age (ms)',
          ),
        ]
      : [];

    this.dashboard = new cw.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName,
      defaultInterval: Duration.hours(3),
      widgets: [
        [
          new cw.TextWidget({
            markdown:
              '# offline-detector\nIngest → table → watermarks/sweep → events. Lag graphs explain late detection; ' +
              'the outbox graph explains duplicate events; DLQs must stay empty.',
            width: 24,
            height: 2,
          }),
        ],
        [
          graph('Ingest rate and rejects (per minute)', [
            app(SERVICE.ingest, METRIC.MessagesReceived),
            ingestAndSweep(METRIC.MessagesRejected),
            app(SERVICE.ingest, METRIC.StaleMessages),
          ]),
          graph('Writes vs skipped writes', [
            app(SERVICE.ingest, METRIC.WritesCommitted),
            app(SERVICE.ingest, METRIC.WritesCoalesced, cw.Stats.SUM, 'WritesCoalesced (skipped)'),
            app(SERVICE.ingest, METRIC.WriteFailures),
            app(SERVICE.ingest, METRIC.RecordsHeld, cw.Stats.SUM, 'RecordsHeld (failed, holding the watermark)'),
          ]),
          graph('Write units consumed', ddbAll('ConsumedWriteCapacityUnits'), {
            right: [app(SERVICE.ingest, METRIC.WriteUnits, cw.Stats.SUM, 'WriteUnits (ingest, EMF)')],
          }),
        ],
        [
          graph('Throttles (table and indexes)', [...ddbAll('WriteThrottleEvents'), ...ddbAll('ReadThrottleEvents')]),
          graph('Ingest lag', lagMetrics, { right: iteratorAge }),
          graph('Watermark and sweep lag (ms)', [
            app(SERVICE.sweep, METRIC.WatermarkAgeMs, cw.Stats.MAXIMUM),
            app(SERVICE.sweep, METRIC.SweepLagMs, cw.Stats.MAXIMUM),
          ]),
        ],
        [
          graph('Transitions (per minute)', [
            app(SERVICE.sweep, METRIC.OfflineTransitions),
            app(SERVICE.ingest, METRIC.OnlineTransitions),
            app(SERVICE.sweep, METRIC.FlapStarted),
            app(SERVICE.ingest, METRIC.FlapStarted),
            app(SERVICE.sweep, METRIC.FlapSettled),
          ]),
          graph(
            'Detection lateness (ms after the deadline)',
            ['p50', 'p90', 'p99', 'Maximum'].map((s) =>
              app(SERVICE.sweep, METRIC.DetectionLatenessMs, s, `DetectionLatenessMs ${s}`),
            ),
          ),
          graph('Outbox and publishing', [
            app(SERVICE.sweep, METRIC.EventsPublished),
            app(SERVICE.sweep, METRIC.OutboxRepublished),
            app(SERVICE.sweep, METRIC.PublishFailures),
          ]),
        ],
        [
          graph('Sweep work', [
            app(SERVICE.dispatch, METRIC.SweepJobsEnqueued),
            app(SERVICE.sweep, METRIC.ItemsScanned),
            app(SERVICE.sweep, METRIC.Rearms),
            app(SERVICE.sweep, METRIC.Continuations),
          ]),
          graph('Watermark probes', [
            app(SERVICE.dispatch, METRIC.ProbesSent),
            app(SERVICE.ingest, METRIC.ProbesCredited),
          ]),
          graph('Read units consumed', ddbAll('ConsumedReadCapacityUnits')),
        ],
        [
          graph('Lambda errors and throttles', [
            ...fnMetric('errors', (fn) => fn.metricErrors({ period: PERIOD })),
            ...fnMetric('throttles', (fn) => fn.metricThrottles({ period: PERIOD })),
          ]),
          graph(
            'Lambda duration p99 (ms)',
            fnMetric('p99', (fn) => fn.metricDuration({ period: PERIOD, statistic: 'p99' })),
          ),
          graph('Dead letters and rejects (messages)', [
            ...props.deadLetterQueues.map(({ name, queue }) =>
              withLabel(queue.metricApproximateNumberOfMessagesVisible({ period: PERIOD, statistic: 'Maximum' }), name),
            ),
            withLabel(
              props.rejectsQueue.metricApproximateNumberOfMessagesVisible({ period: PERIOD, statistic: 'Maximum' }),
              'rejects',
            ),
          ]),
        ],
        [new cw.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 24, height: 4 })],
      ],
    });
  }

  private alarm(id: string, props: cw.AlarmProps): cw.Alarm {
    const alarm = new cw.Alarm(this, id, {
      treatMissingData: cw.TreatMissingData.NOT_BREACHING,
      comparisonOperator: cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      ...props,
    });
    alarm.addAlarmAction(this.alarmAction);
    alarm.addOkAction(this.alarmAction);
    this.alarms.push(alarm);
    return alarm;
  }
}

function withLabel(metric: cw.IMetric, label: string): cw.IMetric {
  return metric instanceof cw.Metric ? metric.with({ label }) : metric;
}

function idOf(name: string): string {
  return name.replace(/(^|\s)(\w)/g, (_m, _s, c: string) => c.toUpperCase()).replace(/[^A-Za-z0-9]/g, '');
}
