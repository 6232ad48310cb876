// The virtual-time fleet simulator: `npm run simulate` and the benchmarks (bench/run.ts, bench/ingest.ts) run it. The
// same handlers as `npm start` (ingest, dispatch, sweep: middy, Powertools, the cores and the DynamoDB adapters) on a
// virtual clock, for fleets and durations real time cannot show. Every write goes to DynamoDB Local (or dynalite),
// metered as DynamoDB bills it. The simulator plays the parts that only move messages: it builds the Lambda-shaped
// SQS events (SentTimestamp = the virtual entry time), holds the ingest and sweep queues in memory with their delays,
// spreads ingest batches over Lambda containers (each with its own coalescing cache), and collects published events
// in place of SNS. Time advances in 1 s steps; the ingest drains at most `ingestPerSecond` messages per virtual
// second (Lambda's throughput), so a backlog after a stall takes virtual time to drain, as it would in AWS.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { DynamoOutageStore } from '../lambdas/adapters/outage-store.js';
import { DynamoShardStates, DynamoSightingLog } from '../lambdas/adapters/shard-log.js';
import { DynamoWatermarkStore } from '../lambdas/adapters/watermark-store.js';
import { mapLimit } from '../lambdas/core/concurrency.js';
import type { EngineName } from '../lambdas/core/config.js';
import type { DeviceEvent } from '../lambdas/core/device.js';
import { DeviceCache } from '../lambdas/core/device-cache.js';
import { type FleetEvent, OutageAwarePublisher } from '../lambdas/core/outage.js';
import type { DeviceStore, EventPublisher, TouchOutcome, TouchRequest } from '../lambdas/core/ports.js';
import { shardOf } from '../lambdas/core/shard.js';
import { batchedSizing } from '../lambdas/core/sizing.js';
import type { SweepJob } from '../lambdas/core/sweep.js';
import { sweepCutoff } from '../lambdas/core/watermark.js';
import { type DispatchHandlerDeps, dispatchDepsFromEnv, dispatchHandler } from '../lambdas/dispatch.js';
import { ingestDepsFromEnv, sqsIngestHandler } from '../lambdas/ingest-handler.js';
import { sweepDepsFromEnv, sweepHandler } from '../lambdas/sweep.js';
import { VirtualClock } from './clock.js';
import { fleetLine, type RunConsole, clock as runTime } from './console.js';
import {
  type DynamoEngineChoice,
  dynaliteNotice,
  dynamoEngineFor,
  LOCAL_CREDENTIALS,
  LOCAL_REGION,
  startDynamoDb,
} from './engines/engines.js';
import { createDeviceTable, createShardTable } from './engines/resources.js';
import { WriteUnits } from './engines/write-units.js';
import { type DueMessage, Fleet } from './fleet.js';
import { lambdaContext, sqsRecord, timeoutMsOf } from './lambda-events.js';
import { LocalMaintenance } from './maintenance.js';
import { RuntimeObserver } from './observe.js';
import { type RunReport, type SeriesPoint, timelineOf } from './report.js';
import { groupTimings, outageConfigOf, type Scenario, scenarioEnv, toleranceOf } from './scenario.js';
import { Truth } from './truth.js';

const INGEST_ARN = 'arn:aws:sqs:us-east-1:000000000000:offline-detector-ingest';
const SWEEP_ARN = 'arn:aws:sqs:us-east-1:000000000000:offline-detector-sweep';
const STEP_MS = 1_000;
/** Every device has sent (and registered) by then in the scenarios' heartbeats (at most a few minutes). */
const WARM_UP_MS = 10 * 60_000;
const T0 = Date.UTC(2030, 0, 1);

export interface VirtualOptions {
  scenario: Scenario;
  durationMs: number;
  seed: number;
  console: RunConsole;
  signal: AbortSignal;
  /** Lambda containers the ingest batches are spread over (each keeps its own coalescing cache). */
  containers?: number;
  /** 'sqs': each batch goes to a random container; 'device': a device always reaches the same one (Kinesis). */
  affinity?: 'sqs' | 'device';
  /** The naive design for comparison: every message moves the deadline, no coalescing. */
  naive?: boolean;
  /** The steady-state figures (`steadyWruPerMessage`, `steadyRruPerMessage`) count from here, once every device has
   * registered; a whole number of seconds. @default 10 min */
  warmUpMs?: number;
  /** Messages the ingest drains per virtual second at most; default 20 × the fleet's rate. */
  ingestPerSecond?: number;
  /** The detection engine. @default per-device */
  engine?: EngineName;
  /** An engine to reuse (the benchmark runs several simulations on one). */
  dynamodbEndpoint?: string;
  /** The engine to start when none is given (engines.ts); default DynamoDB Local, `npm run simulate` says auto. */
  dynamodb?: DynamoEngineChoice;
  tableName?: string;
}

interface QueuedMessage {
  id: string;
  body: string;
  enteredAt: number;
  visibleAt: number;
}

/** How long a failed message stays invisible before it is delivered again. */
const VISIBILITY_TIMEOUT_MS = 30_000;

/** The in-memory ingest queue: device messages in entry order, and the dispatcher's delayed probes beside them. */
class VirtualIngestQueue {
  private readonly messages: DueMessage[] = [];
  private head = 0;
  private probes: QueuedMessage[] = [];
  private seq = 0;

  constructor(private readonly start: number) {}

  send(message: DueMessage) {
    this.messages.push(message);
  }

  probe(body: string, probeAt: number) {
    this.probes.push({ id: `probe-${this.seq++}`, body, enteredAt: probeAt, visibleAt: probeAt });
  }

  /** Up to `max` visible messages. Visible probes first: SQS standard does not keep order, and a probe that
   * overtakes the backlog is the case the backlog check exists for. */
  take(max: number, now: number): QueuedMessage[] {
    const out: QueuedMessage[] = [];
    const visible = this.probes.filter((p) => p.visibleAt <= now);
    if (visible.length > 0) {
      const taken = new Set(visible.slice(0, max));
      out.push(...taken);
      this.probes = this.probes.filter((p) => !taken.has(p));
    }
    while (out.length < max && this.head < this.messages.length) {
      const m = this.messages[this.head]!;
      const enteredAt = this.start + Math.round(m.at);
      if (enteredAt > now) break;
      this.head++;
      out.push({
        id: `m-${this.seq++}`,
        body: m.device.body,
        enteredAt,
        visibleAt: enteredAt,
      });
    }
    if (this.head > 100_000) {
      this.messages.splice(0, this.head);
      this.head = 0;
    }
    return out;
  }

  /** A message whose record failed becomes visible again (after the visibility timeout). */
  retry(message: QueuedMessage, visibleAt: number) {
    this.probes.push({ ...message, visibleAt });
  }

  visible(now: number): number {
    let n = this.probes.filter((p) => p.visibleAt <= now).length;
    for (let i = this.head; i < this.messages.length && this.start + this.messages[i]!.at <= now; i++) n++;
    return n;
  }
}

/** The design everyone writes first: every message moves the deadline (and no write is ever skipped). */
function naiveStore(store: DeviceStore): DeviceStore {
  const naive: DeviceStore = Object.create(store);
  naive.touch = (request: TouchRequest): Promise<TouchOutcome> =>
    store.touch({
      ...request,
      moveDeadline: {
        deadline: request.lastSeen + request.typePolicy.timeoutMs + request.typePolicy.precisionMs,
        policy: request.typePolicy,
        flapping: false,
      },
    });
  return naive;
}

export async function runVirtual(options: VirtualOptions): Promise<RunReport> {
  const { durationMs, seed, console: out, signal } = options;
  const batched = options.engine === 'batched';
  // The Lambda contexts time out as the construct deploys the functions (SQS ingest in the simulator).
  const deployed = { engine: options.engine ?? 'per-device', stream: false } as const;
  const rateOf = (s: Scenario) =>
    Object.values(s.deviceTypes).reduce((sum, t) => sum + (s.devices * t.share * 1000) / t.heartbeatMs, 0);
  // The batched engine takes its shards and ingest batching from the fleet, as the construct does; the watermark
  // tolerance covers the batching window too.
  const sizing = batched
    ? batchedSizing({ devices: options.scenario.devices, messagesPerSecond: rateOf(options.scenario) })
    : undefined;
  const { scenario } = options;
  const batchWindowMs = (sizing?.batchWindowSeconds ?? 0) * 1000;
  const batchSize = sizing?.batchSize ?? 100;
  const toleranceMs = toleranceOf(scenario) + batchWindowMs;
  const tickMs = scenario.sweepTickSeconds * 1000;
  const slackMs = scenario.slackMs ?? 5_000;
  const tailMs = tickMs + toleranceMs + slackMs;
  const containers = options.containers ?? 4;
  const fleet = new Fleet(scenario, durationMs, seed, tailMs);
  const rate = fleet.devices.reduce((sum, d) => sum + 1000 / d.policy.heartbeatMs, 0);
  const ingestPerSecond = options.ingestPerSecond ?? Math.max(1_000, Math.ceil(rate * 20));

  let engine: Awaited<ReturnType<typeof startDynamoDb>> | undefined;
  if (!options.dynamodbEndpoint) {
    const choice = dynamoEngineFor(options.dynamodb);
    if (choice === 'dynalite') out.line(dynaliteNotice());
    out.line(`Starting ${choice === 'dynalite' ? 'dynalite' : 'DynamoDB Local'} on 127.0.0.1 …`);
    engine = await startDynamoDb(choice);
  }
  const endpoint = options.dynamodbEndpoint ?? engine!.endpoint;
  const common = { region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS };
  const dynamodb = new DynamoDBClient({ ...common, endpoint, maxAttempts: 6 });
  // Never called: the simulator stands in for SQS and SNS. Pointed at a closed port so a slip fails loudly.
  const sqs = new SQSClient({ ...common, endpoint: 'http://127.0.0.1:9' });
  const sns = new SNSClient({ ...common, endpoint: 'http://127.0.0.1:9' });
  const tableName = options.tableName ?? 'offline-detector-sim';
  const shardTableName = `${tableName}-shards`;
  const writeUnits = new WriteUnits(shardTableName);
  writeUnits.attach(dynamodb);
  try {
    await createDeviceTable(dynamodb, tableName);
    if (batched) await createShardTable(dynamodb, shardTableName);
    const env: Record<string, string> = {
      TABLE_NAME: tableName,
      SHARD_COUNT: String(scenario.shardCount),
      DEVICE_TYPES: JSON.stringify(
        Object.fromEntries(
          Object.entries(scenario.deviceTypes).map(([name, t]) => [
            name,
            { timeoutMs: t.timeoutMs, precisionMs: t.precisionMs, heartbeatMs: t.heartbeatMs },
          ]),
        ),
      ),
      SWEEP_TICK_SECONDS: String(scenario.sweepTickSeconds),
      WATERMARK_TOLERANCE_MS: String(toleranceMs),
      PROBE_MAX_BACKLOG: String(Math.max(10, Math.ceil(rate))),
      SWEEP_QUEUE_URL: 'virtual://sweep',
      INGEST_QUEUE_URLS: 'virtual://ingest',
      ...scenarioEnv(scenario),
      ...(options.naive ? { COALESCE_CACHE_SIZE: '0' } : {}),
      ...(sizing
        ? { ENGINE: 'batched', SHARD_TABLE_NAME: shardTableName, BATCHED_SHARD_COUNT: String(sizing.shardCount) }
        : {}),
    };
    const clock = new VirtualClock(T0);
    const events: DeviceEvent[] = [];
    const publisher: EventPublisher = {
      publish: async (published) => {
        events.push(...published);
        return { failed: [] };
      },
    };
    // With outage detection, ingest and sweep publish through the hold and marking (runtime.ts `devicePublisher`),
    // stamped by the virtual clock; the dispatcher's fleet events are collected beside the device events.
    const outage = outageConfigOf(scenario);
    const devicePublisher: EventPublisher = outage
      ? new OutageAwarePublisher(publisher, outage, new DynamoOutageStore(dynamodb, tableName), clock.now)
      : publisher;
    const fleetEvents: FleetEvent[] = [];
    const queue = new VirtualIngestQueue(T0);
    const sweepJobs: Array<{ job: SweepJob; visibleAt: number }> = [];

    const base = ingestDepsFromEnv(env, { dynamodb, sqs, sns });
    // The shard logs are stamped by the virtual clock.
    const shardTables = { retentionMs: 7 * 24 * 3_600_000, now: clock.now };
    if (sizing) {
      base.sightings = {
        log: new DynamoSightingLog(dynamodb, shardTableName, shardTables),
        shardCount: sizing.shardCount,
      };
    }
    const store = options.naive ? naiveStore(base.store) : base.store;
    // Watched through their ports: which sweeps completed by which cutoff (the judge needs them), who published what.
    const observer = new RuntimeObserver(clock.now);
    const handlers = Array.from({ length: containers }, () => {
      const deps = {
        ...base,
        store,
        publisher: observer.ingestPublisher(devicePublisher),
        rejects: { send: async () => ({ failed: [] }) },
        cache: new DeviceCache(base.config.cacheSize),
        now: clock.now,
        // Failed records come back after the visibility timeout here: the simulated queue has no receipt handles.
        queue: {
          state: async () => ({ visible: queue.visible(clock.t), visibilityTimeoutMs: VISIBILITY_TIMEOUT_MS }),
          retryAfter: async (_partition: string, handles: string[]) => ({ failed: handles }),
        },
      };
      return sqsIngestHandler(() => deps);
    });
    const fromEnv = sweepDepsFromEnv(env, { dynamodb, sqs, sns });
    const sweepDeps = observer.sweepDeps({
      ...fromEnv,
      ...('log' in fromEnv
        ? {
            log: new DynamoSightingLog(dynamodb, shardTableName, shardTables),
            states: new DynamoShardStates(dynamodb, shardTableName, shardTables),
          }
        : {}),
      publisher: devicePublisher,
      now: clock.now,
      queue: {
        enqueue: async (jobs: SweepJob[], delaySeconds = 0) => {
          for (const job of jobs) sweepJobs.push({ job, visibleAt: clock.t + delaySeconds * 1000 });
        },
      },
    });
    const sweep = observer.sweepHandler(sweepHandler(() => sweepDeps));
    const dispatchEnv = dispatchDepsFromEnv(env, { dynamodb, sqs, sns });
    const dispatchDeps: DispatchHandlerDeps = {
      ...dispatchEnv,
      ...(dispatchEnv.outage
        ? {
            outage: {
              ...dispatchEnv.outage,
              now: clock.now,
              publisher: {
                publishFleet: async (published: FleetEvent[]) => {
                  fleetEvents.push(...published);
                  return { failed: [] };
                },
              },
            },
          }
        : {}),
      sweepQueue: sweepDeps.queue,
      queues: {
        partitions: async () => [INGEST_ARN],
        send: async (probes) => {
          for (const p of probes) queue.probe(p.body, p.probeAt);
          return { sent: probes.length, failed: 0 };
        },
      },
      streams: { openShards: async () => [], send: async () => ({ sent: 0, failed: 0 }) },
      now: clock.now,
      sleep: async () => undefined,
    };
    const dispatch = dispatchHandler(() => dispatchDeps);
    // Polled only when the scenario opens windows: its reads would count in a benchmark's read units.
    const maintenance = fleet.windows.length > 0 ? new LocalMaintenance(env, dynamodb, clock.now) : undefined;
    const windowsToOpen = [...fleet.windows].sort((a, b) => a.from - b.from);
    const windowsOpened: RunReport['windows'] = [];
    let edgesFired = 0;
    const watermarks = new DynamoWatermarkStore(dynamodb, tableName);
    const truth = new Truth({
      policies: scenario.deviceTypes,
      parents: fleet.parents(),
      ...groupTimings(scenario),
      tickMs,
      toleranceMs,
      slackMs,
      startedAt: T0,
      // The shards the sweep jobs are for: the batched engine's own.
      shardCount: sizing?.shardCount ?? scenario.shardCount,
      ...(outage ? { outage: { config: outage, groups: fleet.groups(outage) } } : {}),
    });
    const series: SeriesPoint[] = [];
    const sampleEveryMs = Math.max(STEP_MS, Math.round((durationMs + tailMs) / 400 / 1000) * 1000);
    let sentWindow = 0;
    let sentTotal = 0;
    /** Counts when every device has registered: the steady state is measured after it. */
    let warm: { messages: number; writes: number; reads: number } | undefined;
    let eventsWindow = 0;
    let stalled = false;
    const realStart = Date.now();
    const ingestStats = { invocations: 0, records: 0, failedRecords: 0 };
    let sweepInvocations = 0;

    const runIngest = async (budget: number) => {
      while (budget > 0 && !signal.aborted) {
        const taken = queue.take(Math.min(budget, containers * batchSize), clock.t);
        if (taken.length === 0) return;
        budget -= taken.length;
        const perContainer: QueuedMessage[][] = Array.from({ length: containers }, () => []);
        taken.forEach((m, i) => {
          const c =
            options.affinity === 'device' && !m.id.startsWith('probe')
              ? Number(shardOf(JSON.parse(m.body).deviceId, containers))
              : (i * 7919 + Math.floor(clock.t / 1000)) % containers;
          perContainer[c]!.push(m);
        });
        await Promise.all(
          perContainer.map(async (batch, c) => {
            for (let i = 0; i < batch.length; i += batchSize) {
              const chunk = batch.slice(i, i + batchSize);
              const event: SQSEvent = {
                Records: chunk.map((m) =>
                  sqsRecord(
                    {
                      MessageId: m.id,
                      ReceiptHandle: m.id,
                      Body: m.body,
                      Attributes: { SentTimestamp: String(m.enteredAt) },
                    },
                    INGEST_ARN,
                  ),
                ),
              };
              ingestStats.invocations++;
              ingestStats.records += chunk.length;
              let failed = new Set<string>();
              try {
                const response = (await handlers[c]!(
                  event,
                  lambdaContext('ingest', timeoutMsOf('ingestSqs', deployed), clock.now),
                )) as SQSBatchResponse | undefined;
                failed = new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
              } catch {
                failed = new Set(chunk.map((m) => m.id));
              }
              ingestStats.failedRecords += failed.size;
              for (const m of chunk) if (failed.has(m.id)) queue.retry(m, clock.t + VISIBILITY_TIMEOUT_MS);
            }
          }),
        );
      }
    };

    const runSweeps = async () => {
      for (;;) {
        const due = sweepJobs.filter((j) => j.visibleAt <= clock.t);
        if (due.length === 0) return;
        for (const j of due) sweepJobs.splice(sweepJobs.indexOf(j), 1);
        await mapLimit(due, 8, async ({ job }) => {
          sweepInvocations++;
          const event: SQSEvent = {
            Records: [
              sqsRecord(
                { MessageId: `job-${sweepInvocations}`, ReceiptHandle: 'r', Body: JSON.stringify(job) },
                SWEEP_ARN,
              ),
            ],
          };
          // The runtime's remaining time is real time, as on Lambda: a job with more work than its real budget hands
          // the rest on (a batched job's item writes for a fleet registering at once), instead of being cut off.
          const response = (await sweep(
            event,
            lambdaContext('sweep', timeoutMsOf('sweep', deployed)),
          )) as SQSBatchResponse;
          if (response.batchItemFailures.length > 0) sweepJobs.push({ job, visibleAt: clock.t + 60_000 });
        });
      }
    };

    const endMs = durationMs + tailMs;
    let lastProgress = Date.now();
    for (let elapsed = 0; elapsed < endMs && !signal.aborted; elapsed += STEP_MS) {
      clock.t = T0 + elapsed;
      while (maintenance && windowsToOpen[0] && windowsToOpen[0].from <= elapsed) {
        const planned = windowsToOpen.shift()!;
        const { devices } = await maintenance.openPlanned(planned, fleet, truth);
        windowsOpened.push({ from: elapsed / 1000, to: planned.to / 1000, group: planned.group, devices });
        out.milestone(
          elapsed,
          `maintenance window over ${planned.group} (${devices} devices) until ${runTime(planned.to)}`,
        );
      }
      for (const edge of (await maintenance?.fireDue(clock.t, (event) =>
        dispatch(event, lambdaContext('dispatch', timeoutMsOf('dispatch', deployed), clock.now)),
      )) ?? []) {
        edgesFired++;
        out.milestone(elapsed, `maintenance window ${edge.edge === 'end' ? 'ended' : 'started'}: its schedule fired`);
      }
      for (const m of fleet.due(elapsed + STEP_MS)) {
        queue.send(m);
        truth.sent(m.device.id, m.device.type, T0 + Math.round(m.at));
        sentWindow++;
        sentTotal++;
      }
      if (elapsed === (options.warmUpMs ?? WARM_UP_MS))
        warm = { messages: sentTotal, writes: writeUnits.device + writeUnits.shards, reads: writeUnits.readUnits };
      const stalledNow = fleet.stalledAt(elapsed);
      if (stalledNow && !stalled) truth.stallStarted(clock.t);
      if (!stalledNow && stalled) truth.stallEnded(clock.t);
      stalled = stalledNow;
      if (elapsed % 60_000 === 0)
        await dispatch({}, lambdaContext('dispatch', timeoutMsOf('dispatch', deployed), clock.now));
      // A batching window: the ingest is invoked once the window has filled its batches.
      const windowDue = batchWindowMs === 0 || (clock.t - T0) % batchWindowMs === 0;
      if (!stalled && windowDue)
        await runIngest(Math.round((ingestPerSecond * Math.max(STEP_MS, batchWindowMs)) / 1000));
      await runSweeps();
      for (const event of events.splice(0)) {
        eventsWindow++;
        truth.event(event);
      }
      for (const event of fleetEvents.splice(0)) {
        if (truth.fleet(event)) out.milestone(elapsed, fleetLine(event));
      }
      // The watermark moves with the probes, once a tick: reading it then is enough to see a stall caught up.
      if (elapsed % tickMs === 0 || elapsed % sampleEveryMs === 0) {
        const snapshot = await watermarks.read();
        const marks = snapshot.live.map((p) => snapshot.marks[p]);
        const slowest =
          marks.length > 0 && marks.every((m) => m !== undefined) ? Math.min(...(marks as number[])) : undefined;
        if (slowest !== undefined) truth.watermark(slowest, clock.t);
        if (elapsed % sampleEveryMs === 0) {
          const cutoff = sweepCutoff(clock.t, snapshot, toleranceMs);
          series.push({
            t: elapsed / 1000,
            online: truth.online,
            offline: truth.offline,
            messagesPerSecond: (sentWindow * 1000) / sampleEveryMs,
            eventsPerSecond: (eventsWindow * 1000) / sampleEveryMs,
            watermarkLagMs: slowest === undefined ? undefined : clock.t - slowest,
            sweepLagMs: cutoff === undefined ? undefined : clock.t - cutoff,
          });
          sentWindow = 0;
          eventsWindow = 0;
        }
      }
      if (Date.now() - lastProgress >= 1_000) {
        lastProgress = Date.now();
        const last = series.at(-1);
        out.status({
          elapsedMs: elapsed,
          totalMs: endMs,
          online: truth.online,
          offline: truth.offline,
          messagesPerSecond: last?.messagesPerSecond ?? 0,
          eventsPerSecond: last?.eventsPerSecond ?? 0,
          watermarkLagMs: last?.watermarkLagMs,
          sweepLagMs: last?.sweepLagMs,
          note: `virtual ×${Math.round(elapsed / Math.max(1, Date.now() - realStart))}${stalled ? ' │ INGEST STALLED' : ''}`,
        });
      }
    }
    out.clearStatus();
    if (stalled) truth.stallEnded(clock.t);
    const summary = truth.finish(clock.t, observer.completedSweeps(), (e) => observer.jobStartedAt(e.eventId));
    return {
      mode: 'virtual',
      scenario: { name: scenario.name, description: scenario.description },
      source: `sqs (simulated, ${containers} containers, ${options.affinity === 'device' ? 'device affinity' : 'batches spread'})${options.naive ? ', naive design' : ''}${sizing ? `, batched engine: ${sizing.shardCount} shards, batches of ${batchSize} over ${sizing.batchWindowSeconds} s` : ''}`,
      seed,
      durationMs,
      startedAt: T0,
      interrupted: signal.aborted,
      enginePids: engine?.pid === undefined ? [] : [engine.pid],
      summary: {
        ...summary,
        duplicatesBy: observer.republishedBy(),
        sweepsCompleted: observer.completedSweeps().length,
        engine: options.engine ?? 'per-device',
        // All-in: device items and (batched) shard logs and states; the watermark items are counted apart.
        wruPerMessage: round((writeUnits.device + writeUnits.shards) / Math.max(1, summary.messages)),
        shardWriteUnits: writeUnits.shards,
        controlWriteUnits: writeUnits.control,
        readsPerMessage: round(writeUnits.reads / Math.max(1, summary.messages)),
        rruPerMessage: round(writeUnits.readUnits / Math.max(1, summary.messages)),
        // After the warm-up: without each device's one-time registration (its first message's transition).
        ...(warm
          ? {
              steadyWruPerMessage: round(
                (writeUnits.device + writeUnits.shards - warm.writes) / Math.max(1, sentTotal - warm.messages),
              ),
              steadyRruPerMessage: round((writeUnits.readUnits - warm.reads) / Math.max(1, sentTotal - warm.messages)),
            }
          : {}),
        realSeconds: round((Date.now() - realStart) / 1000),
        ingest: ingestStats,
        sweepInvocations,
        maintenanceEdgesFired: edgesFired,
      },
      settings: {
        tickMs,
        toleranceMs,
        slackMs,
        shardCount: scenario.shardCount,
        containers,
        ingestPerSecond,
        deviceTypes: scenario.deviceTypes,
        ...(outage ? { outage: scenario.outageDetection } : {}),
      },
      series,
      ...timelineOf(truth, fleet, windowsOpened, T0),
    };
  } finally {
    dynamodb.destroy();
    sqs.destroy();
    sns.destroy();
    await engine?.stop();
  }
}

const round = (x: number) => Number(x.toFixed(3));
