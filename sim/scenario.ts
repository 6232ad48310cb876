// A scenario: the fleet (device types, heartbeats, churn, disconnects), our own stalls, and the detector settings of
// the run (tick, tolerance, shards). Every run that simulates a fleet reads it from here: `npm start`,
// `npm run simulate`, the benchmarks and the tests. The files are in ./scenarios (see its README).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SimDeviceType {
  timeoutMs: number;
  precisionMs: number;
  heartbeatMs: number;
  /** Share of the fleet, relative to the other types' shares. */
  share: number;
}

/** A time in a scenario: seconds (number), `"90s"`, `"5m"`, `"2h"`, or `"35%"` of the run's duration. */
export type ScenarioTime = number | string;

export type ScenarioEvent =
  | { type: 'disconnect'; at: ScenarioTime; for: ScenarioTime; fraction: number; deviceType?: string }
  | { type: 'stall'; at: ScenarioTime; for: ScenarioTime };

export interface Scenario {
  name: string;
  description: string;
  devices: number;
  duration: ScenarioTime;
  /** Sweep period of the local run (SWEEP_TICK_SECONDS). */
  sweepTickSeconds: number;
  /** WATERMARK_TOLERANCE_MS; default one tick + 7 s of pipeline latency. */
  watermarkToleranceMs?: number;
  shardCount: number;
  /** Allowance for polling and delivery delays when judging a missed offline (default 5 s). */
  slackMs?: number;
  /** Each heartbeat interval is heartbeat × (1 ± jitter), uniformly. */
  jitter: number;
  deviceTypes: Record<string, SimDeviceType>;
  /** Devices that go silent on their own and come back: per device and minute, the chance of a silence. */
  churn?: { perMinute: number; silence: [ScenarioTime, ScenarioTime] };
  events: ScenarioEvent[];
}

const SCENARIOS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'scenarios');

/** A scenario that cannot run as written: the command line reports it as a usage error. */
export class ScenarioError extends Error {}

/** A scenario by name (a file of ./scenarios) or path, with the defaults filled in and its shape checked. */
export function loadScenario(nameOrPath: string): Scenario {
  const path = existsSync(nameOrPath) ? nameOrPath : join(SCENARIOS_DIR, `${nameOrPath.replace(/\.json$/, '')}.json`);
  if (!existsSync(path))
    throw new ScenarioError(`no scenario "${nameOrPath}" (neither a file nor in ${SCENARIOS_DIR})`);
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Partial<Scenario>;
  const name = nameOrPath.replace(/^.*\//, '').replace(/\.json$/, '');
  const scenario: Scenario = {
    name,
    description: raw.description ?? '',
    devices: raw.devices ?? 2000,
    duration: raw.duration ?? '3m',
    sweepTickSeconds: raw.sweepTickSeconds ?? 10,
    watermarkToleranceMs: raw.watermarkToleranceMs,
    shardCount: raw.shardCount ?? 8,
    slackMs: raw.slackMs,
    jitter: raw.jitter ?? 0.1,
    deviceTypes: raw.deviceTypes ?? {},
    churn: raw.churn,
    events: raw.events ?? [],
  };
  for (const [type, t] of Object.entries(scenario.deviceTypes)) {
    for (const key of ['timeoutMs', 'heartbeatMs'] as const) {
      if (!(Number(t[key]) > 0)) throw new ScenarioError(`scenario ${name}: deviceTypes.${type}.${key} must be > 0`);
    }
    t.precisionMs ??= 0;
    t.share ??= 1;
  }
  if (60 % scenario.sweepTickSeconds !== 0) throw new ScenarioError('sweepTickSeconds must divide 60');
  return scenario;
}

export function parseDuration(value: ScenarioTime, totalMs = 0): number {
  if (typeof value === 'number') return Math.round(value * 1000);
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|%)?\s*$/.exec(value);
  if (!match) throw new Error(`not a duration: "${value}" (use 90, "90s", "5m", "2h" or "35%")`);
  const n = Number(match[1]);
  const unit = match[2] ?? 's';
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, '%': totalMs / 100 }[unit] ?? 1000;
  return Math.round(n * factor);
}

export function toleranceOf(scenario: Scenario): number {
  return scenario.watermarkToleranceMs ?? scenario.sweepTickSeconds * 1000 + 7_000;
}

/** Checks a scenario beyond its shape: the watermark bound per type (docs/design.md §6.4), counting jitter. */
export function scenarioProblems(scenario: Scenario): string[] {
  const problems: string[] = [];
  const tolerance = toleranceOf(scenario);
  if (Object.keys(scenario.deviceTypes).length === 0) problems.push('deviceTypes is empty');
  for (const [name, type] of Object.entries(scenario.deviceTypes)) {
    const longest = type.heartbeatMs * (1 + scenario.jitter);
    if (tolerance >= type.timeoutMs - longest) {
      problems.push(
        `device type "${name}": watermark tolerance ${tolerance} ms must be below timeout − longest heartbeat ` +
          `(${type.timeoutMs} − ${Math.round(longest)} ms), or a stall could report devices that kept sending`,
      );
    }
  }
  return problems;
}

/** A healthy fleet of one device type, timeout 5 min and a message a minute (± 10 %), no silences, no stall, a 10 s
 * tick: the fleet the benchmarks measure write and read units per message on. */
export function steadyScenario(devices: number, precisionMs: number, shardCount: number): Scenario {
  return {
    name: `steady-p${precisionMs / 1000}s`,
    description: 'one device type, timeout 5 min, heartbeat 1 min ±10 %, no silences, no stall',
    devices,
    duration: '1h',
    sweepTickSeconds: 10,
    shardCount,
    jitter: 0.1,
    deviceTypes: { meter: { timeoutMs: 5 * 60_000, precisionMs, heartbeatMs: 60_000, share: 1 } },
    events: [],
  };
}
