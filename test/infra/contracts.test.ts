// The contracts (lambdas/core/contracts.ts) hold on both sides: the handlers emit exactly the metrics the contract
// lists for their service, the dashboard and alarms read only metrics some handler emits (under that handler's
// service, in the handlers' namespace), and the construct deploys each function with the memory, timeout and service
// the contract gives it, which is what bench/cost.ts prices. A metric renamed on one side only fails here.
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type Deployment,
  DIMENSION,
  EMITTED,
  type EmittedBy,
  type FunctionName,
  functionSpec,
  METRIC,
  METRICS_NAMESPACE,
  type MetricName,
  REJECT_REASONS,
  SERVICE,
  type ServiceName,
} from '../../lambdas/core/contracts.js';
import { emptyStats } from '../../lambdas/core/ingest.js';
import { report as reportDispatch } from '../../lambdas/dispatch.js';
import { report as reportIngest, reportProgress } from '../../lambdas/ingest-handler.js';
import { metrics } from '../../lambdas/runtime.js';
import { report as reportSweep } from '../../lambdas/sweep.js';
import { OfflineDetector, type OfflineDetectorProps } from '../../lib/offline-detector.js';

// Type-level: a metric exists only under the service that emits it (tsc checks these lines).
// @ts-expect-error SweepLagMs is the sweep's, not the dispatcher's
const _notDispatch: EmittedBy<'dispatch'> = METRIC.SweepLagMs;
// @ts-expect-error the operator API emits no metrics
const _notApi: EmittedBy<'api'> = METRIC.MessagesReceived;
void _notDispatch;
void _notApi;

type Emf = { _aws: { CloudWatchMetrics: Array<{ Dimensions: string[][]; Metrics: Array<{ Name: string }> }> } };

/** The metric names one report call adds (tests run with POWERTOOLS_METRICS_DISABLED: read, don't print). */
function emittedBy(run: () => void): { names: string[]; dimensions: string[][] } {
  metrics.clearMetrics();
  run();
  const emf = metrics.serializeMetrics() as unknown as Emf;
  metrics.clearMetrics();
  const sets = emf._aws.CloudWatchMetrics;
  return {
    names: [...new Set(sets.flatMap((m) => m.Metrics.map((x) => x.Name)))].sort(),
    dimensions: sets.flatMap((m) => m.Dimensions),
  };
}

const sorted = (names: readonly string[]) => [...new Set(names)].sort();

describe('the handlers emit the contract', () => {
  afterEach(() => vi.restoreAllMocks());

  it('ingest: every name the contract lists for it, no other, and MessagesRejected per reason', () => {
    const perReason: Array<{ dimension: string; value: string; metric: string }> = [];
    let dimension = '';
    let value = '';
    vi.spyOn(metrics, 'singleMetric').mockImplementation(
      () =>
        ({
          addDimension: (d: string, v: string) => {
            dimension = d;
            value = v;
          },
          addMetric: (metric: string) => perReason.push({ dimension, value, metric }),
        }) as unknown as Metrics,
    );
    const stats = { ...emptyStats(3), rejected: { [REJECT_REASONS[0]]: 1 }, rejectedTotal: 1 };
    const { names, dimensions } = emittedBy(() => {
      reportIngest({ failedRecordIds: new Set(), probes: [], stats, undeliveredRejections: [] });
      reportProgress({ credited: 1, notCredited: 0, held: 0, errors: [] });
    });
    expect(names).toEqual(sorted(EMITTED.ingest));
    // Powertools' default dimension is the one the dashboard and alarms select by.
    expect(dimensions).toContainEqual([DIMENSION.service]);
    expect(perReason).toEqual([
      { dimension: DIMENSION.reason, value: REJECT_REASONS[0], metric: METRIC.MessagesRejected },
    ]);
  });

  it('sweep: every name the contract lists for it, no other (the rejections only from a batched merge)', () => {
    const stats = {
      shard: '0',
      cutoff: 1,
      lagMs: 1,
      watermarkAgeMs: 1,
      pages: 1,
      scanned: 1,
      offline: 1,
      flapStarted: 0,
      settled: 0,
      rearmed: 0,
      skipped: 0,
      continued: false,
      republished: 0,
      published: 1,
      publishFailures: 0,
      writeUnits: 1,
      latenessMs: [1],
      errors: [],
    };
    const batched = emittedBy(() => reportSweep({ ...stats, merge: emptyStats(0), undeliveredRejections: [] }));
    expect(batched.names).toEqual(sorted(EMITTED.sweep));
    const perDevice = emittedBy(() => reportSweep(stats));
    expect(perDevice.names).toEqual(
      sorted(EMITTED.sweep.filter((n) => n !== METRIC.MessagesRejected && n !== METRIC.RejectsNotDelivered)),
    );
  });

  it('sweep, batched in allow-list mode: MessagesRejected per reason, as the ingest emits it', () => {
    const perReason: string[] = [];
    vi.spyOn(metrics, 'singleMetric').mockImplementation(
      () =>
        ({
          addDimension: (d: string, v: string) => perReason.push(`${d}=${v}`),
          addMetric: (metric: string) => perReason.push(metric),
        }) as unknown as Metrics,
    );
    const merge = { ...emptyStats(1), rejected: { UNREGISTERED: 2 }, rejectedTotal: 2 };
    const { names } = emittedBy(() =>
      reportSweep({
        shard: '0',
        pages: 0,
        scanned: 0,
        offline: 0,
        flapStarted: 0,
        settled: 0,
        rearmed: 0,
        skipped: 0,
        continued: false,
        republished: 0,
        published: 0,
        publishFailures: 0,
        writeUnits: 0,
        latenessMs: [],
        errors: [],
        merge,
        undeliveredRejections: [],
      }),
    );
    expect(names).toEqual(expect.arrayContaining([METRIC.MessagesRejected, METRIC.RejectsNotDelivered]));
    expect(perReason).toEqual([`${DIMENSION.reason}=UNREGISTERED`, METRIC.MessagesRejected]);
  });

  it('dispatch: every name the contract lists for it, no other', () => {
    const { names } = emittedBy(() =>
      reportDispatch({
        ticks: 6,
        jobsEnqueued: 1,
        live: ['p'],
        probesSent: 1,
        probeFailures: 0,
        ticksSkipped: 0,
        errors: [],
      }),
    );
    expect(names).toEqual(sorted(EMITTED.dispatch));
  });

  it('every metric name of the contract is emitted by some service', () => {
    expect(sorted(Object.values(EMITTED).flat())).toEqual(sorted(Object.values(METRIC)));
  });
});

type Cfn = { Type: string; Properties: Record<string, unknown> };
type Dimension = { Name: string; Value: unknown };
/** One handler metric read by the dashboard or an alarm. */
type Read = { where: string; namespace: unknown; name: unknown; dimensions: Record<string, unknown> };

/** A dashboard body is a Fn::Join of JSON text and tokens (names, region): tokens become a placeholder string. */
function dashboardBody(body: unknown): { widgets: Array<{ properties: { metrics?: unknown[][] } }> } {
  if (typeof body === 'string') return JSON.parse(body);
  const [, parts] = (body as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
  return JSON.parse(parts.map((p) => (typeof p === 'string' ? p : 'TOKEN')).join(''));
}

/** The metrics of the handlers' namespace that the alarms and the dashboard read. */
function readsOf(template: Template): Read[] {
  const reads: Read[] = [];
  const dims = (ds: Dimension[] | undefined) => Object.fromEntries((ds ?? []).map((d) => [d.Name, d.Value]));
  for (const [id, alarm] of Object.entries(template.findResources('AWS::CloudWatch::Alarm') as Record<string, Cfn>)) {
    const p = alarm.Properties as {
      Namespace?: string;
      MetricName?: string;
      Dimensions?: Dimension[];
      Metrics?: Array<{ MetricStat?: { Metric: { Namespace: string; MetricName: string; Dimensions?: Dimension[] } } }>;
    };
    const metrics = [
      ...(p.MetricName ? [{ Namespace: p.Namespace, MetricName: p.MetricName, Dimensions: p.Dimensions }] : []),
      ...(p.Metrics ?? []).flatMap((m) => (m.MetricStat ? [m.MetricStat.Metric] : [])),
    ];
    for (const m of metrics) {
      reads.push({ where: `alarm ${id}`, namespace: m.Namespace, name: m.MetricName, dimensions: dims(m.Dimensions) });
    }
  }
  for (const dash of Object.values(template.findResources('AWS::CloudWatch::Dashboard') as Record<string, Cfn>)) {
    for (const widget of dashboardBody(dash.Properties.DashboardBody).widgets) {
      for (const row of widget.properties.metrics ?? []) {
        // [namespace, name, dimension, value, ..., {options}], or [{expression}] for math
        const [namespace, name, ...rest] = row.filter((x) => typeof x === 'string') as string[];
        if (namespace === undefined) continue;
        const dimensions: Record<string, unknown> = {};
        for (let i = 0; i + 1 < rest.length; i += 2) dimensions[rest[i]!] = rest[i + 1];
        reads.push({ where: `dashboard ${JSON.stringify(row)}`, namespace, name, dimensions });
      }
    }
  }
  return reads;
}

function synth(props: OfflineDetectorProps): { detector: OfflineDetector; template: Template; stack: Stack } {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Contracts');
  const detector = new OfflineDetector(stack, 'Detector', props);
  return { detector, stack, template: Template.fromStack(stack) };
}

const DEPLOYMENTS: Array<[string, OfflineDetectorProps, Deployment]> = [
  ['per-device, SQS', {}, { engine: 'per-device', stream: false }],
  [
    'batched, SQS and Kinesis, a longer sweep budget',
    { engine: 'batched', kinesisIngest: {}, sweepBudget: Duration.seconds(40) },
    { engine: 'batched', stream: true, sweepBudgetSeconds: 40 },
  ],
  ['per-device, Kinesis only', { sqsIngest: false, kinesisIngest: {} }, { engine: 'per-device', stream: true }],
];

describe.each(DEPLOYMENTS)('the construct keeps the contract (%s)', (_, props, deployment) => {
  const { detector, template, stack } = synth(props);

  it('the dashboard and alarms read only metrics a handler emits, under its service', () => {
    const reads = readsOf(template).filter((r) => r.namespace === METRICS_NAMESPACE);
    // The handlers' metrics are all read from this one namespace (the AWS/* ones are AWS's).
    const namespaces = new Set(readsOf(template).map((r) => r.namespace));
    expect([...namespaces].filter((n) => typeof n !== 'string' || !n.startsWith('AWS/'))).toEqual([METRICS_NAMESPACE]);
    expect(reads.length).toBeGreaterThan(20);
    const services = Object.values(SERVICE) as string[];
    for (const read of reads) {
      expect(Object.keys(read.dimensions), read.where).toEqual([DIMENSION.service]);
      const service = read.dimensions[DIMENSION.service];
      expect(services, read.where).toContain(service);
      expect(EMITTED[service as ServiceName] as readonly MetricName[], read.where).toContain(read.name);
    }
    // The alarms on the handlers' metrics are among them.
    const alarmed = reads.filter((r) => r.where.startsWith('alarm')).map((r) => r.name);
    expect(alarmed).toEqual(
      expect.arrayContaining([METRIC.OfflineTransitions, METRIC.SweepLagMs, METRIC.HoldFailures]),
    );
  });

  it('deploys each function with the memory, timeout and service of functionSpec (what bench/cost.ts prices)', () => {
    const functions: Array<[FunctionName, lambda.IFunction | undefined]> = [
      ['ingestSqs', detector.ingestSqsFunction],
      ['ingestKinesis', detector.ingestKinesisFunction],
      ['dispatch', detector.dispatchFunction],
      ['sweep', detector.sweepFunction],
      ['api', detector.apiFunction],
      ['api', detector.apiReadFunction],
    ];
    const deployed = template.findResources('AWS::Lambda::Function') as Record<string, Cfn>;
    let checked = 0;
    for (const [name, fn] of functions) {
      if (!fn) continue;
      const p = deployed[stack.getLogicalId(fn.node.defaultChild as never)]!.Properties as {
        MemorySize: number;
        Timeout: number;
        Environment: { Variables: Record<string, unknown> };
      };
      const spec = functionSpec(name, deployment);
      expect(
        { memory: p.MemorySize, timeout: p.Timeout, service: p.Environment.Variables.POWERTOOLS_SERVICE_NAME },
        name,
      ).toEqual({
        memory: spec.memoryMb,
        timeout: spec.timeoutSeconds,
        service: spec.service,
      });
      expect(p.Environment.Variables.POWERTOOLS_METRICS_NAMESPACE ?? METRICS_NAMESPACE, name).toBe(METRICS_NAMESPACE);
      checked++;
    }
    expect(checked).toBe(Object.keys(deployed).length);
  });
});
