// Command line of the local runtime: flags, scenarios, signals, summary, exit code.
//   start     the detector on embedded engines with a simulated fleet in real time (npm start)
//   local     the detector on embedded engines, no fleet: endpoints printed, up until Ctrl-C (npm run local)
//   simulate  the same handlers in virtual time, for fleets and durations real time cannot show (npm run simulate)
import { parseArgs } from 'node:util';
import type { EngineName } from '../lambdas/core/config.js';
import { RunConsole } from '../sim/console.js';
import { type RunReport, writeReport } from '../sim/report.js';
import { loadScenario, parseDuration, ScenarioError, scenarioProblems } from '../sim/scenario.js';
import { runLive } from './live.js';
import type { LocalStack, Source } from './stack.js';

const USAGE = `Usage:
  npm start -- [--devices N] [--duration 3m] [--scenario default|quick|groups|steady|<file.json>] [--source sqs|kinesis]
               [--engine per-device|batched] [--seed N] [--json] [--report-dir reports]
  npm run local -- [--source sqs|kinesis]
  npm run simulate -- [--devices N] [--hours H | --duration 2h] [--scenario simulate|groups|<file.json>]
                      [--seed N] [--json] [--engine per-device|batched]

Durations: seconds (90), or 90s, 5m, 2h. Scenarios: sim/scenarios/*.json (see sim/scenarios/README.md).
Exit code: 0 when every offline event was right (its cause too) and none was missed, 1 otherwise, 130 when
interrupted.`;

class UsageError extends Error {}

export interface CliResult {
  report?: RunReport;
  reportPath?: string;
}

export async function main(argv: string[]): Promise<number> {
  const [command = 'start', ...rest] = argv;
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        devices: { type: 'string' },
        duration: { type: 'string' },
        hours: { type: 'string' },
        source: { type: 'string' },
        scenario: { type: 'string' },
        seed: { type: 'string' },
        engine: { type: 'string' },
        json: { type: 'boolean' },
        'report-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (values.help || !['start', 'local', 'simulate'].includes(command)) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const json = Boolean(values.json);
  const out = new RunConsole(process.stderr);
  const abort = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      // A second Ctrl-C: leave now; the exit hook still kills the engines' child processes.
      process.exit(130);
    }
    out.line(`\n${signal}: stopping (engines, pollers, fleet) …`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const source = (values.source ?? 'sqs') as Source;
    if (source !== 'sqs' && source !== 'kinesis') throw new UsageError('--source must be sqs or kinesis');
    const scenario = loadScenario(
      (values.scenario as string | undefined) ?? (command === 'simulate' ? 'simulate' : 'default'),
    );
    if (values.devices !== undefined) scenario.devices = Number(values.devices);
    if (!Number.isInteger(scenario.devices) || scenario.devices < 1) throw new UsageError('--devices must be ≥ 1');
    const durationMs = values.hours
      ? Math.round(Number(values.hours) * 3_600_000)
      : parseDuration((values.duration as string | undefined) ?? scenario.duration);
    if (!(durationMs > 0)) throw new UsageError('the duration must be > 0');
    const seed = values.seed === undefined ? 1 : Number(values.seed);
    const engine = (values.engine ?? 'per-device') as EngineName;
    if (engine !== 'per-device' && engine !== 'batched') throw new UsageError('--engine must be per-device or batched');
    const problems = scenarioProblems(scenario);
    if (problems.length > 0) throw new UsageError(`scenario ${scenario.name}:\n  ${problems.join('\n  ')}`);

    let report: RunReport | undefined;
    if (command === 'simulate') {
      const { runVirtual } = await import('../sim/simulator.js');
      report = await runVirtual({
        scenario,
        durationMs,
        seed,
        engine,
        console: out,
        signal: abort.signal,
        dynamodb: 'auto',
      });
    } else {
      out.line(
        command === 'local'
          ? 'offline-detector local stack (no fleet); Ctrl-C stops it.'
          : `offline-detector: ${scenario.devices.toLocaleString('en-US')} simulated devices, ${Math.round(durationMs / 1000)} s, scenario "${scenario.name}", source ${source}, sweep tick ${scenario.sweepTickSeconds} s`,
      );
      report = await runLive({
        scenario,
        durationMs,
        source,
        seed,
        fleet: command === 'start',
        engine,
        console: out,
        signal: abort.signal,
        onReady: (stack) => (command === 'local' ? printEndpoints(stack, out) : undefined),
      });
    }
    if (!report) return abort.signal.aborted ? 0 : 2;
    const reportPath = writeReport(report, (values['report-dir'] as string | undefined) ?? 'reports');
    const s = report.summary;
    const { findings: _findings, ...summary } = s;
    const line = {
      ...summary,
      reportPath,
      mode: report.mode,
      scenario: report.scenario.name,
      source: report.source,
      seed: report.seed,
      durationMs: report.durationMs,
      startedAt: report.startedAt,
      interrupted: report.interrupted,
      enginePids: report.enginePids ?? [],
    };
    printSummary(report, reportPath, json ? process.stderr : process.stdout);
    if (json) process.stdout.write(`${JSON.stringify(line)}\n`);
    if (report.interrupted) return 130;
    return s.falseOffline === 0 && s.missedOffline === 0 && s.wrongCause === 0 && s.falseIncidents === 0 ? 0 : 1;
  } catch (error) {
    out.clearStatus();
    if (error instanceof UsageError || error instanceof ScenarioError) {
      process.stderr.write(`${error.message}\n`);
      return 2;
    }
    process.stderr.write(`error: ${(error as Error).stack ?? String(error)}\n`);
    return 2;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function printEndpoints(stack: LocalStack, out: RunConsole) {
  const e = stack.endpoints;
  const lines = [
    'Endpoints (127.0.0.1, free ports chosen at start):',
    `  DynamoDB   ${e.dynamodb}   table ${stack.tableName}`,
    `  SQS + SNS  ${e.sqs}`,
    ...(e.kinesis ? [`  Kinesis    ${e.kinesis}   stream ${stack.stream?.name}`] : []),
    ...(stack.ingestQueue ? [`  ingest queue   ${stack.ingestQueue.url}`] : []),
    `  online events  ${stack.onlineEvents.url}`,
    `  offline events ${stack.offlineEvents.url}`,
    `  rejects        ${stack.rejects.url}`,
    '',
    'Point the aws CLI at it:',
    '  export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1',
    `  export AWS_ENDPOINT_URL_DYNAMODB=${e.dynamodb} AWS_ENDPOINT_URL_SQS=${e.sqs} AWS_ENDPOINT_URL_SNS=${e.sns}${e.kinesis ? ` AWS_ENDPOINT_URL_KINESIS=${e.kinesis}` : ''}`,
    stack.ingestQueue
      ? `  aws sqs send-message --queue-url ${stack.ingestQueue.url} --message-body '{"deviceId":"my-device","deviceType":"${Object.keys(JSON.parse(stack.env.DEVICE_TYPES ?? '{}'))[0] ?? ''}"}'`
      : `  aws kinesis put-record --stream-name ${stack.stream?.name} --partition-key my-device --cli-binary-format raw-in-base64-out --data '{"deviceId":"my-device"}'`,
    `  aws sqs receive-message --queue-url ${stack.offlineEvents.url} --wait-time-seconds 20`,
    '',
    'A maintenance window (its schedules wait in the table; this runtime fires them):',
    `  npx offline-detector maintenance add --all --for 5m --endpoint ${e.dynamodb} --table ${stack.tableName}`,
    '',
    `Device types: ${stack.env.DEVICE_TYPES}`,
    'Running: ingest and sweep pollers, the dispatcher every minute and at maintenance windows’ schedules. Ctrl-C stops everything.',
  ];
  for (const line of lines) out.line(line);
}

/** " (published twice by sweep+ingest: 2)": which publishers made the duplicates, when the run logged them. */
function duplicatesBy(report: RunReport): string {
  const by = report.summary.duplicatesBy as Record<string, number> | undefined;
  const entries = Object.entries(by ?? {});
  return entries.length === 0 ? '' : ` (published more than once: ${entries.map(([k, n]) => `${k} ${n}`).join(', ')})`;
}

/** The mass-outage lines: the fleet events received, and the offline events marked as part of an incident. */
function outageLines(report: RunReport): string[] {
  const s = report.summary;
  if (s.fleetOutages === 0 && s.fleetRecovered === 0 && s.markedOutage === 0 && report.settings.outage === undefined)
    return [];
  const outages = s.incidents.map((i) => `${i.group} (count ${i.count})`).join(', ');
  return [
    `  mass outage        fleet.outage ${s.fleetOutages}${outages ? ` for ${outages}` : ''}, fleet.recovered ${s.fleetRecovered}; false incidents ${s.falseIncidents}`,
    `  marked offline     ${s.markedOutage} offline events marked as part of incident${s.incidents.length === 1 ? '' : 's'} ${s.incidents.map((i) => `${i.incidentId.slice(0, 8)} (${i.group}: ${i.marked})`).join(', ') || '—'}`,
  ];
}

function printSummary(report: RunReport, reportPath: string, stream: NodeJS.WriteStream) {
  const s = report.summary;
  const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const ok = s.falseOffline === 0 && s.missedOffline === 0 && s.wrongCause === 0 && s.falseIncidents === 0;
  const lines = [
    '',
    `Summary (${report.mode === 'live' ? 'live' : 'virtual time'}, scenario ${report.scenario.name}, seed ${report.seed})${report.interrupted ? ' — interrupted' : ''}`,
    `  devices            ${s.devices.toLocaleString('en-US')}`,
    `  messages           ${s.messages.toLocaleString('en-US')}`,
    `  transitions        ${s.offlineEvents.toLocaleString('en-US')} offline, ${s.onlineEvents.toLocaleString('en-US')} online`,
    `  false offline      ${s.falseOffline}`,
    `  missed offline     ${s.missedOffline} (of ${s.requiredDetections.toLocaleString('en-US')} detections a completed sweep had to make)`,
    `  duplicate events   ${s.duplicateEvents}${duplicatesBy(report)}`,
    ...report.windows.map(
      (w) =>
        `  maintenance        window over ${w.group} (${w.devices.toLocaleString('en-US')} devices) from ${w.from.toFixed(0)} s to ${w.to.toFixed(0)} s`,
    ),
    ...(report.windows.length > 0
      ? [
          `  held offline       ${s.heldByMaintenance} events, reported at their window's end (the latest ${secs(s.heldLatenessMaxMs)} after max(end, last message + timeout))`,
        ]
      : []),
    ...(report.gatewayOutages.length > 0 || s.behindGateway > 0 || s.wrongCause > 0
      ? [
          `  behind a gateway   ${s.behindGateway} offline events with cause parent-offline, ${s.reportedAgain} reported again without it (still silent after the gateway was back); wrong cause ${s.wrongCause}`,
        ]
      : []),
    ...outageLines(report),
    `  lateness           p50 ${secs(s.latenessMs.p50)}, p99 ${secs(s.latenessMs.p99)}, max ${secs(s.latenessMs.max)} (after last message + timeout; ${s.stallDeferred} deferred by our own stall)`,
    ...(s.overdueDetections > 0
      ? [
          `  overdue            ${s.overdueDetections} silences past the design's bound still undetected at the end, by up to ${secs(s.overdueMaxMs)} (slow, not missed: no completed sweep had reached their deadline)`,
        ]
      : []),
    `  write units        ${s.wruPerMessage} per message`,
    ...s.findings.slice(0, 10).map((f) => `  ! ${f.kind} ${f.deviceId}: ${f.detail}`),
    `  report             ${reportPath}`,
    ok ? '  result             OK: no false and no missed offline' : '  result             FAILED',
  ];
  stream.write(`${lines.join('\n')}\n`);
}
