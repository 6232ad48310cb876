// npm run bench — every benchmark, one results file (bench/results.json) that the README's performance table and
// `npm run cost` are generated from:
// - bench:ingest and bench:sweep (run as they are, their JSON kept whole);
// - the whole system in virtual time (sim/simulator.ts: the real handlers on DynamoDB Local): write units per
//   message of this design and of the naive design (every message moves the deadline) side by side, at precision 0
//   and precision = timeout; and the stall + disconnect scenario judged against the fleet's truth.
import '../sim/handler-env.js';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { RunConsole } from '../sim/console.js';
import { startDynamoDbLocal } from '../sim/engines/engines.js';
import type { RunReport } from '../sim/report.js';
import { loadScenario, type Scenario, steadyScenario } from '../sim/scenario.js';
import { runVirtual } from '../sim/simulator.js';

const MIN = 60_000;
// A smaller or shorter run (to try the benchmark out) sets these, and BENCH_RESULTS to keep bench/results.json.
const DEVICES = Number(process.env.BENCH_SYSTEM_DEVICES ?? 1_000);
const MINUTES = Number(process.env.BENCH_SYSTEM_MINUTES ?? 60);
const RESULTS = process.env.BENCH_RESULTS ?? 'bench/results.json';
const quiet = new RunConsole(process.stderr, 0, true);
const log = (text: string) => process.stderr.write(`${text}\n`);

function child(script: string): unknown {
  log(`bench: ${script} …`);
  const out = execFileSync(process.execPath, ['--import', 'tsx', script], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  return JSON.parse(out.slice(out.indexOf('{')));
}

const steady = (precisionMs: number) => steadyScenario(DEVICES, precisionMs, 8);

const engine = await startDynamoDbLocal();
let table = 0;
const simulate = async (
  scenario: Scenario,
  extra: { naive?: boolean; affinity?: 'sqs' | 'device'; engine?: 'per-device' | 'batched' } = {},
) => {
  log(
    `bench: simulate ${scenario.name}${extra.naive ? ' (naive)' : ''}${extra.affinity === 'device' ? ' (device affinity)' : ''}${extra.engine === 'batched' ? ' (batched engine)' : ''} …`,
  );
  const report: RunReport = await runVirtual({
    scenario,
    durationMs: MINUTES * MIN,
    seed: 1,
    console: quiet,
    signal: new AbortController().signal,
    dynamodbEndpoint: engine.endpoint,
    tableName: `bench-system-${table++}`,
    ...extra,
  });
  return report.summary;
};

try {
  const ingest = child('bench/ingest.ts');
  const sweep = child('bench/sweep.ts');
  const wru: Record<string, number> = {};
  const steadyUnits: Record<string, Record<string, { wru: number; rru: number }>> = {};
  for (const [label, precisionMs] of [
    ['precision0', 0],
    ['precisionTimeout', 5 * MIN],
  ] as const) {
    const design = await simulate(steady(precisionMs));
    const affinity = await simulate(steady(precisionMs), { affinity: 'device' });
    const naive = await simulate(steady(precisionMs), { naive: true });
    const batched = await simulate(steady(precisionMs), { engine: 'batched' });
    wru[`${label}.design`] = design.wruPerMessage;
    wru[`${label}.designDeviceAffinity`] = affinity.wruPerMessage;
    wru[`${label}.naive`] = naive.wruPerMessage;
    wru[`${label}.batched`] = batched.wruPerMessage;
    // Once every device has registered (a one-time transition each): what a month at the design point costs.
    steadyUnits[label] = Object.fromEntries(
      Object.entries({ design, designDeviceAffinity: affinity, naive, batched }).map(([variant, summary]) => [
        variant,
        { wru: summary.steadyWruPerMessage as number, rru: summary.steadyRruPerMessage as number },
      ]),
    );
  }
  const ratio = (label: string, variant = 'design') =>
    Number((wru[`${label}.${variant}`]! / wru[`${label}.naive`]!).toFixed(3));
  const scenario = loadScenario('simulate');
  scenario.devices = DEVICES;
  const judged = await simulate(scenario);
  const judgedBatched = await simulate(scenario, { engine: 'batched' });
  const tickMs = scenario.sweepTickSeconds * 1000;
  const latenessGoalOf = (run: typeof judged) =>
    Object.fromEntries(
      Object.entries(run.latenessByType).map(([type, l]) => [
        type,
        { p99Ms: l.p99, goalMs: l.precisionMs + tickMs + 5_000, ok: l.p99 <= l.precisionMs + tickMs + 5_000 },
      ]),
    );
  const scenarioSummary = (run: typeof judged) => ({
    name: scenario.name,
    description: scenario.description,
    devices: run.devices,
    messages: run.messages,
    offlineEvents: run.offlineEvents,
    onlineEvents: run.onlineEvents,
    falseOffline: run.falseOffline,
    missedOffline: run.missedOffline,
    requiredDetections: run.requiredDetections,
    stallDeferred: run.stallDeferred,
    duplicateEvents: run.duplicateEvents,
    latenessMs: run.latenessMs,
    latenessByType: run.latenessByType,
    latenessGoal: latenessGoalOf(run),
    onlineLatenessMs: run.onlineLatenessMs,
    wruPerMessage: run.wruPerMessage,
    rruPerMessage: run.rruPerMessage,
  });
  const results = {
    generatedAt: new Date().toISOString(),
    machine: { node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model },
    command: 'npm run bench',
    system: {
      fleet: {
        devices: DEVICES,
        virtualMinutes: MINUTES,
        steady: steady(0).description,
        engine: 'DynamoDB Local (units from ReturnConsumedCapacity; failed conditional writes 1 unit each)',
        note: 'write units per message include the devices’ first registration and every sweep re-arm and outbox clear',
      },
      wruPerMessage: {
        precision0: {
          design: wru['precision0.design'],
          designDeviceAffinity: wru['precision0.designDeviceAffinity'],
          naive: wru['precision0.naive'],
          ratio: ratio('precision0'),
          ratioDeviceAffinity: ratio('precision0', 'designDeviceAffinity'),
          goal: 0.5,
          batched: wru['precision0.batched'],
        },
        precisionTimeout: {
          design: wru['precisionTimeout.design'],
          designDeviceAffinity: wru['precisionTimeout.designDeviceAffinity'],
          naive: wru['precisionTimeout.naive'],
          ratio: ratio('precisionTimeout'),
          ratioDeviceAffinity: ratio('precisionTimeout', 'designDeviceAffinity'),
          goal: 0.25,
          batched: wru['precisionTimeout.batched'],
        },
      },
      /** Write and read units per message after a 10 min warm-up (every device registered), per variant. */
      steadyUnitsPerMessage: steadyUnits,
      scenarioBatched: scenarioSummary(judgedBatched),
      scenario: scenarioSummary(judged),
    },
    ingest,
    sweep,
  };
  writeFileSync(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
  log(`bench: wrote ${RESULTS} (npm run bench:readme puts the table into README.md)`);
  console.log(JSON.stringify(results.system, null, 2));
} finally {
  await engine.stop();
}
