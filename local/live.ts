// `npm start`: the real handlers in-process on the embedded engines, behind Lambda-like pollers, a scheduler that
// invokes the dispatcher every minute and at the maintenance windows' edges, a simulated fleet sending real messages,
// and a consumer subscribed to the topics through SQS whose every event is judged against the fleet's truth.
import { setTimeout as sleep } from 'node:timers/promises';
import { PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { DynamoWatermarkStore } from '../lambdas/adapters/watermark-store.js';
import { mapLimit } from '../lambdas/core/concurrency.js';
import { type EngineName, loadBatchedEngine } from '../lambdas/core/config.js';
import type { DeviceEvent } from '../lambdas/core/device.js';
import type { WindowEdge } from '../lambdas/core/maintenance.js';
import type { FleetEvent } from '../lambdas/core/outage.js';
import { sweepCutoff } from '../lambdas/core/watermark.js';
import { dispatchDepsFromEnv, dispatchHandler } from '../lambdas/dispatch.js';
import { ingestDepsFromEnv, kinesisIngestHandler, sqsIngestHandler } from '../lambdas/ingest-handler.js';
import { sweepDepsFromEnv, sweepHandler } from '../lambdas/sweep.js';
import { fleetLine, isFleetEvent, type RunConsole, clock as runTime } from '../sim/console.js';
import { dynaliteNotice, dynamoEngineFor } from '../sim/engines/engines.js';
import { type DueMessage, Fleet } from '../sim/fleet.js';
import { lambdaContext, timeoutMsOf } from '../sim/lambda-events.js';
import { LocalMaintenance } from '../sim/maintenance.js';
import { RuntimeObserver } from '../sim/observe.js';
import { type RunReport, type SeriesPoint, timelineOf } from '../sim/report.js';
import { groupTimings, outageConfigOf, type Scenario, scenarioEnv, toleranceOf } from '../sim/scenario.js';
import { Truth } from '../sim/truth.js';
import { KinesisPoller, SqsPoller } from './pollers.js';
import { type LocalStack, type Source, startLocalStack } from './stack.js';

export interface LiveOptions {
  scenario: Scenario;
  durationMs: number;
  source: Source;
  seed: number;
  /** No fleet: keep the stack up until stopped (`npm run local`). */
  fleet: boolean;
  console: RunConsole;
  signal: AbortSignal;
  /** Called once the stack is up, with what a user needs to point a client at it. */
  onReady?: (stack: LocalStack) => void;
  /** The detection engine. @default per-device */
  engine?: EngineName;
}

/** Everything the runtime starts, stopped in reverse order. */
class Running {
  private readonly stops: Array<() => Promise<unknown>> = [];
  add(stop: () => Promise<unknown>) {
    this.stops.push(stop);
  }
  async stop() {
    for (const stop of this.stops.reverse()) await stop().catch(() => undefined);
    this.stops.length = 0;
  }
}

/** The local runtime around a stack: pollers, scheduler. Shared by `npm start` and `npm run local`.
 * `edges.onWindowEdge` hears of each maintenance window schedule fired. */
export async function startRuntime(stack: LocalStack, scenario: Scenario, source: Source, outer: AbortSignal) {
  const running = new Running();
  const stopping = new AbortController();
  const signal = AbortSignal.any([outer, stopping.signal]);
  const { clients, env } = stack;
  // The pollers and contexts time out as the construct deploys the functions (contracts.ts functionSpec).
  const deployed = { engine: loadBatchedEngine(env) ? 'batched' : 'per-device', stream: source === 'kinesis' } as const;
  // Watched through their ports: which sweeps completed by which cutoff (the judge needs them), who published what.
  const observer = new RuntimeObserver();
  const ingestEnv = ingestDepsFromEnv(env, clients);
  const ingestDeps = { ...ingestEnv, publisher: observer.ingestPublisher(ingestEnv.publisher) };
  const sweepDeps = observer.sweepDeps(sweepDepsFromEnv(env, clients));
  const sweep = observer.sweepHandler(sweepHandler(() => sweepDeps));
  const abortableSleep = (ms: number) => sleep(ms, undefined, { signal }).catch(() => undefined);
  const dispatchDeps = { ...dispatchDepsFromEnv(env, clients), sleep: abortableSleep };
  const dispatch = dispatchHandler(() => dispatchDeps);

  const ingestPoller =
    source === 'sqs'
      ? new SqsPoller({
          name: 'ingest-sqs',
          sqs: clients.sqs,
          queueUrl: stack.ingestQueue!.url,
          queueArn: stack.ingestQueue!.arn,
          batchSize: 100,
          batchingWindowMs: 500,
          concurrency: 4,
          functionTimeoutMs: timeoutMsOf('ingestSqs', deployed),
          handler: sqsIngestHandler(() => ingestDeps),
        }).start()
      : await new KinesisPoller({
          name: 'ingest-kinesis',
          kinesis: clients.kinesis!,
          sqs: clients.sqs,
          streamName: stack.stream!.name,
          streamArn: stack.stream!.arn,
          batchSize: 500,
          batchingWindowMs: 500,
          retryAttempts: 10,
          failureQueueUrl: stack.kinesisFailures?.url,
          functionTimeoutMs: timeoutMsOf('ingestKinesis', deployed),
          handler: kinesisIngestHandler(() => ingestDeps),
        }).start();
  running.add(() => ingestPoller.stop());
  const sweepPoller = new SqsPoller({
    name: 'sweep',
    sqs: clients.sqs,
    queueUrl: stack.sweepQueue.url,
    queueArn: stack.sweepQueue.arn,
    batchSize: 1,
    batchingWindowMs: 0,
    concurrency: Math.min(scenario.shardCount, 8),
    functionTimeoutMs: timeoutMsOf('sweep', deployed),
    handler: sweep,
  }).start();
  running.add(() => sweepPoller.stop());

  // EventBridge Scheduler, rate(1 minute): the dispatcher spreads the minute's sweep jobs and probes itself.
  let dispatches = 0;
  let dispatchErrors = 0;
  const scheduler = (async () => {
    const started = Date.now();
    for (let minute = 1; !signal.aborted; minute++) {
      const invocation = dispatch({}, lambdaContext('dispatch', timeoutMsOf('dispatch', deployed))).then(
        () => dispatches++,
        () => dispatchErrors++,
      );
      // Kinesis: the dispatcher stays for the minute; the next one is still due on the minute.
      if (source === 'sqs') await invocation;
      await abortableSleep(Math.max(0, started + minute * 60_000 - Date.now()));
      if (source === 'kinesis') await invocation;
    }
  })();

  // EventBridge Scheduler's one-time schedules of maintenance windows, kept in the table here by whoever opened the
  // window (the scenario, or the CLI with --endpoint): the due ones go to the dispatcher, looked for every second.
  const maintenance = new LocalMaintenance(env, clients.dynamodb, Date.now);
  const edges: { fired: number; failed: number; onWindowEdge: (edge: WindowEdge) => void } = {
    fired: 0,
    failed: 0,
    onWindowEdge: () => undefined,
  };
  const windowScheduler = (async () => {
    while (!signal.aborted) {
      await abortableSleep(1_000);
      const fired = await maintenance
        .fireDue(Date.now(), (event) => dispatch(event, lambdaContext('dispatch', timeoutMsOf('dispatch', deployed))))
        .catch(() => {
          edges.failed++;
          return [];
        });
      for (const edge of fired) {
        edges.fired++;
        edges.onWindowEdge(edge);
      }
    }
  })();
  running.add(() => {
    stopping.abort();
    return Promise.all([scheduler, windowScheduler]);
  });
  return {
    ingestPoller,
    sweepPoller,
    observer,
    maintenance,
    edges,
    stop: () => running.stop(),
    get dispatches() {
      return dispatches;
    },
  };
}

export async function runLive(options: LiveOptions): Promise<RunReport | undefined> {
  const { scenario, durationMs, source, seed, console: out, signal } = options;
  const toleranceMs = toleranceOf(scenario);
  const tickMs = scenario.sweepTickSeconds * 1000;
  const slackMs = scenario.slackMs ?? 5_000;
  const tailMs = options.fleet ? tickMs + toleranceMs + slackMs : 0;
  const fleet = new Fleet(scenario, durationMs, seed, tailMs);
  const rate = fleet.devices.reduce((sum, d) => sum + 1000 / d.policy.heartbeatMs, 0);
  const deviceTypes = Object.fromEntries(
    Object.entries(scenario.deviceTypes).map(([name, t]) => [
      name,
      { timeoutMs: t.timeoutMs, precisionMs: t.precisionMs, heartbeatMs: t.heartbeatMs },
    ]),
  );
  // Without Java, DynamoDB runs on dynalite (sim/engines/dynalite.ts): said in one line.
  const dynamodb = dynamoEngineFor('auto');
  if (dynamodb === 'dynalite') out.line(dynaliteNotice());
  const engineName = dynamodb === 'dynalite' ? 'dynalite' : 'DynamoDB Local';
  out.line(`Starting ${engineName}, fauxqs${source === 'kinesis' ? ', kinesis-local' : ''} on 127.0.0.1 …`);
  const stack = await startLocalStack({
    dynamodb,
    source,
    deviceTypes,
    tickSeconds: scenario.sweepTickSeconds,
    toleranceMs,
    shardCount: scenario.shardCount,
    // A healthy pipeline shows about one poll interval of messages; a stall shows far more.
    probeMaxBacklog: Math.max(10, Math.ceil(rate)),
    engine: options.engine,
    handlerEnv: scenarioEnv(scenario),
  });
  const running = new Running();
  running.add(() => stack.stop());
  out.line(
    `Engines up (${stack.pids.length > 0 ? `child process ids: ${stack.pids.join(', ')}` : 'all in this process'}); resources created from lambdas/core/table-schema.ts`,
  );
  try {
    const runtime = await startRuntime(stack, scenario, source, signal);
    running.add(() => runtime.stop());
    options.onReady?.(stack);
    runtime.edges.onWindowEdge = (edge) =>
      out.line(`  maintenance window ${edge.windowId}: ${edge.edge} (its schedule fired)`);
    if (!options.fleet) {
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      return undefined;
    }
    return await driveFleet(stack, runtime, fleet, { ...options, toleranceMs, tickMs, slackMs, tailMs });
  } finally {
    out.clearStatus();
    await running.stop();
  }
}

async function driveFleet(
  stack: LocalStack,
  runtime: Awaited<ReturnType<typeof startRuntime>>,
  fleet: Fleet,
  options: LiveOptions & { toleranceMs: number; tickMs: number; slackMs: number; tailMs: number },
): Promise<RunReport> {
  const { scenario, durationMs, source, console: out, signal, tickMs, toleranceMs, slackMs, tailMs } = options;
  const { clients } = stack;
  let startedAt = Date.now();
  const outage = outageConfigOf(scenario);
  const truth = new Truth({
    policies: scenario.deviceTypes,
    parents: fleet.parents(),
    ...groupTimings(scenario),
    tickMs,
    toleranceMs,
    slackMs,
    startedAt,
    shardCount: scenario.shardCount,
    ...(outage ? { outage: { config: outage, groups: fleet.groups(outage) } } : {}),
  });
  const stop = new AbortController();
  const stopped = AbortSignal.any([signal, stop.signal]);
  const pause = (ms: number) => sleep(ms, undefined, { signal: stopped }).catch(() => undefined);
  let sentWindow = 0;
  let eventsWindow = 0;
  let sendErrors = 0;

  const send = async (batch: DueMessage[]) => {
    const enteredAt = Date.now();
    try {
      if (source === 'sqs') {
        const out = await clients.sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: stack.ingestQueue!.url,
            Entries: batch.map((m, i) => ({
              Id: String(i),
              MessageBody: m.device.body,
            })),
          }),
        );
        const spread = Date.now() - enteredAt;
        for (const ok of out.Successful ?? []) {
          const m = batch[Number(ok.Id)]!;
          truth.sent(m.device.id, m.device.type, enteredAt, spread);
        }
        sendErrors += out.Failed?.length ?? 0;
        sentWindow += out.Successful?.length ?? 0;
      } else {
        const out = await clients.kinesis!.send(
          new PutRecordsCommand({
            StreamName: stack.stream!.name,
            Records: batch.map((m) => ({
              PartitionKey: m.device.id,
              Data: Buffer.from(m.device.body),
            })),
          }),
        );
        const spread = Date.now() - enteredAt;
        (out.Records ?? []).forEach((r, i) => {
          if (r.ErrorCode) sendErrors++;
          else {
            const m = batch[i]!;
            truth.sent(m.device.id, m.device.type, enteredAt, spread);
            sentWindow++;
          }
        });
      }
    } catch {
      sendErrors += batch.length;
    }
  };

  // The user's consumer: one queue per topic, raw delivery, deleted once judged. Once the fleet has stopped, it
  // drains its queue: a receive that started after `drainFrom` and found nothing has seen every event published
  // before then (the engine delivers to the queue within the publish call). A receive is never aborted midway: the
  // messages it took would stay invisible, and the judge would miss them.
  let drainFrom: number | undefined;
  const consume = async (queueUrl: string) => {
    while (!signal.aborted) {
      const receivedAt = Date.now();
      const received = await clients.sqs
        .send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }))
        .catch(() => ({ Messages: [] }));
      const messages = received.Messages ?? [];
      if (messages.length === 0 && drainFrom !== undefined && receivedAt >= drainFrom) return;
      for (const message of messages) {
        const event = JSON.parse(message.Body!) as DeviceEvent | FleetEvent;
        // The offline topic also carries the dispatcher's fleet events (outage detection): no device, judged apart.
        if (isFleetEvent(event)) {
          if (truth.fleet(event)) out.milestone(Date.now() - startedAt, fleetLine(event));
          continue;
        }
        eventsWindow++;
        out.transition(event, Date.now() - startedAt, startedAt, truth.event(event));
      }
      if (messages.length > 0) {
        await clients.sqs
          .send(
            new DeleteMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
            }),
          )
          .catch(() => undefined);
      }
    }
  };
  const consumers = [consume(stack.onlineEvents.url), consume(stack.offlineEvents.url)];

  const watermarks = new DynamoWatermarkStore(clients.dynamodb, stack.tableName);
  // Warm-up, before the run's clock starts: every device registers (its first message costs a failed touch, a
  // commit and an announcement) and keeps sending on its heartbeat until the ingest has taken that burst in and a
  // watermark past it is credited. The scenario's events then meet a running pipeline, as a deployed fleet's
  // would: on a busy machine a cold start alone held every cutoff back for ten seconds, longer than the quick
  // scenario's mass disconnect, which no sweep could then judge.
  const warmUp = async (): Promise<boolean> => {
    const began = Date.now();
    const next = new Map(fleet.devices.map((device) => [device, began]));
    let registeredAt: number | undefined;
    while (!signal.aborted && Date.now() - began < WARM_UP_MAX_MS) {
      const now = Date.now();
      const due = fleet.devices.filter((device) => next.get(device)! <= now);
      for (const device of due) next.set(device, now + device.policy.heartbeatMs);
      const size = source === 'sqs' ? 10 : 500;
      const batches: DueMessage[][] = [];
      for (let i = 0; i < due.length; i += size)
        batches.push(due.slice(i, i + size).map((device) => ({ device, at: 0 })));
      await mapLimit(batches, 16, send);
      registeredAt ??= Date.now();
      const snapshot = await watermarks.read().catch(() => undefined);
      const marks = snapshot?.live.map((p) => snapshot.marks[p]) ?? [];
      if (marks.length > 0 && marks.every((m) => m !== undefined && m >= registeredAt!)) return true;
      await sleep(100, undefined, { signal }).catch(() => undefined);
    }
    return false;
  };
  const warmUpStarted = Date.now();
  const warm = await warmUp();
  startedAt = Date.now();
  truth.startClock(startedAt);
  out.line(
    warm
      ? `  warm-up: ${fleet.devices.length.toLocaleString('en-US')} devices registered, a watermark past them credited after ${((startedAt - warmUpStarted) / 1000).toFixed(1)} s; the run starts`
      : `  warm-up: no watermark past the registrations after ${WARM_UP_MAX_MS / 1000} s; the run starts anyway`,
  );

  // The fleet: every 100 ms, what is due is sent (an SQS batch holds 10; a Kinesis PutRecords up to 500).
  const sender = (async () => {
    const endAt = durationMs + tailMs;
    while (!stopped.aborted) {
      const elapsed = Date.now() - startedAt;
      if (elapsed >= endAt) break;
      const due = fleet.due(elapsed);
      const size = source === 'sqs' ? 10 : 500;
      const batches: DueMessage[][] = [];
      for (let i = 0; i < due.length; i += size) batches.push(due.slice(i, i + size));
      await mapLimit(batches, 16, send);
      await pause(100);
    }
  })();

  // Our own outage: the ingest pollers stop taking batches; devices keep sending into the queue.
  const stalls = (async () => {
    for (const stall of [...fleet.stalls].sort((a, b) => a.from - b.from)) {
      await pause(startedAt + stall.from - Date.now());
      if (stopped.aborted) return;
      runtime.ingestPoller.pause();
      truth.stallStarted(Date.now());
      out.milestone(
        Date.now() - startedAt,
        `ingest pollers paused (our own outage, ${runTime(stall.to - stall.from)})`,
      );
      await pause(startedAt + stall.to - Date.now());
      runtime.ingestPoller.resume();
      truth.stallEnded(Date.now());
      out.milestone(Date.now() - startedAt, 'ingest pollers resumed');
    }
  })();
  const announce = (at: number, text: string) =>
    void pause(startedAt + at - Date.now()).then(() => {
      if (!stopped.aborted) out.milestone(at, text);
    });
  for (const d of fleet.disconnects) {
    announce(
      d.from,
      `${d.site === undefined ? 'mass disconnect' : `disconnect at ${d.site}`}: ${d.devices} devices silent for ${runTime(d.to - d.from)}`,
    );
  }
  for (const g of fleet.gatewayOutages) {
    announce(
      g.from,
      `gateway ${g.gateway} down with the ${g.devices} devices behind it for ${runTime(g.to - g.from)}${g.stragglers > 0 ? ` (${g.stragglers} of them stay silent longer)` : ''}`,
    );
  }

  // The operator: the scenario's maintenance windows, opened through the API core at their times.
  const windowsOpened: RunReport['windows'] = [];
  runtime.edges.onWindowEdge = (edge) =>
    out.milestone(
      Date.now() - startedAt,
      `maintenance window ${edge.edge === 'end' ? 'ended' : 'started'}: its schedule fired, the dispatcher ${edge.edge === 'end' ? 'removed' : 'activated'} it`,
    );
  const windows = (async () => {
    for (const planned of [...fleet.windows].sort((a, b) => a.from - b.from)) {
      await pause(startedAt + planned.from - Date.now());
      if (stopped.aborted) return;
      const window = await runtime.maintenance.openPlanned(planned, fleet, truth);
      const [from, until] = [window.from - startedAt, window.until - startedAt];
      windowsOpened.push({ from: from / 1000, to: until / 1000, group: planned.group, devices: window.devices });
      out.milestone(
        from,
        `maintenance window over ${planned.group} (${window.devices} devices) until ${runTime(until)}: their offline events are held until then`,
      );
    }
  })().catch((error: unknown) => out.line(`  maintenance window not opened: ${(error as Error).message}`));

  // Once a second: watermark and sweep lag as the sweep would compute them, and the status line.
  const series: SeriesPoint[] = [];
  const sampler = (async () => {
    while (!stopped.aborted) {
      await pause(1_000);
      const now = Date.now();
      let watermarkLagMs: number | undefined;
      let sweepLagMs: number | undefined;
      try {
        const snapshot = await watermarks.read();
        const marks = snapshot.live.map((p) => snapshot.marks[p]);
        if (marks.length > 0 && marks.every((m) => m !== undefined)) {
          const slowest = Math.min(...(marks as number[]));
          watermarkLagMs = now - slowest;
          truth.watermark(slowest, now);
        }
        const cutoff = sweepCutoff(now, snapshot, toleranceMs);
        if (cutoff !== undefined) sweepLagMs = now - cutoff;
      } catch {
        // The table may be going away at shutdown.
      }
      const point: SeriesPoint = {
        t: (now - startedAt) / 1000,
        online: truth.online,
        offline: truth.offline,
        messagesPerSecond: sentWindow,
        eventsPerSecond: eventsWindow,
        watermarkLagMs,
        sweepLagMs,
      };
      series.push(point);
      sentWindow = 0;
      eventsWindow = 0;
      out.status({
        elapsedMs: now - startedAt,
        totalMs: durationMs + tailMs,
        online: point.online,
        offline: point.offline,
        messagesPerSecond: point.messagesPerSecond,
        eventsPerSecond: point.eventsPerSecond,
        watermarkLagMs,
        sweepLagMs,
        note: runtime.ingestPoller.isPaused ? 'INGEST PAUSED' : undefined,
      });
    }
  })();

  await sender;
  stop.abort();
  await Promise.allSettled([stalls, sampler, windows]);
  // Judged against the sweeps completed by now, once their events are all received.
  const sweeps = runtime.observer.completedSweeps();
  const judgedAt = Date.now();
  drainFrom = judgedAt;
  await Promise.allSettled(consumers);
  const summary = truth.finish(judgedAt, sweeps, (e) => runtime.observer.jobStartedAt(e.eventId));
  const duplicatesBy = runtime.observer.republishedBy();
  for (const sample of truth.duplicateSamples) {
    out.line(
      `  duplicate ${sample.eventId} ${sample.type}: published by ${runtime.observer.describe(sample, startedAt)}`,
    );
  }
  return {
    mode: 'live',
    scenario: { name: scenario.name, description: scenario.description },
    source,
    seed: options.seed,
    durationMs,
    startedAt,
    interrupted: signal.aborted,
    enginePids: stack.pids,
    summary: {
      ...summary,
      duplicatesBy,
      sweepsCompleted: sweeps.length,
      wruPerMessage: round(stack.writeUnits.device / Math.max(1, summary.messages)),
      controlWriteUnits: stack.writeUnits.control,
      readsPerMessage: round(stack.writeUnits.reads / Math.max(1, summary.messages)),
      sendErrors,
      dispatches: runtime.dispatches,
      maintenanceEdgesFired: runtime.edges.fired,
      maintenanceEdgesFailed: runtime.edges.failed,
      ingest: { ...runtime.ingestPoller.stats },
      sweep: { ...runtime.sweepPoller.stats },
    },
    settings: {
      tickMs,
      toleranceMs,
      slackMs,
      shardCount: scenario.shardCount,
      deviceTypes: scenario.deviceTypes,
      ...(outage ? { outage: scenario.outageDetection } : {}),
    },
    series,
    ...timelineOf(truth, fleet, windowsOpened, startedAt, Date.now()),
  };
}

const round = (x: number) => Number(x.toFixed(3));
/** Longest warm-up before the run starts anyway. */
const WARM_UP_MAX_MS = 120_000;
