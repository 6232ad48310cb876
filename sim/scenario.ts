// A scenario: the fleet (device types, heartbeats, churn, disconnects, tags: sites and gateways), our own stalls,
// the operator's maintenance windows, gateway outages, and the detector settings of the run (tick, tolerance,
// shards, the handlers' tag and gateway environment). Every run that simulates a fleet reads it from here: `npm start`,
// `npm run simulate`, the benchmarks and the tests. The files are in ./scenarios (see its README).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENV } from '../lambdas/core/config.js';
import { ConfigError } from '../lambdas/core/errors.js';
import { DEFAULT_RECHECK_MS } from '../lambdas/core/maintenance.js';
import { type OutageConfig, parseOutageConfig } from '../lambdas/core/outage.js';
import { DEFAULT_PARENT_GRACE_MS } from '../lambdas/core/sweep.js';

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
  | { type: 'disconnect'; at: ScenarioTime; for: ScenarioTime; fraction: number; deviceType?: string; site?: string }
  | { type: 'stall'; at: ScenarioTime; for: ScenarioTime }
  /** A maintenance window opened at `at` through the API, until `at + for`: over a site, a device type, or all. */
  | { type: 'maintenance'; at: ScenarioTime; for: ScenarioTime; site?: string; deviceType?: string }
  /** Gateway `gw-<gateway>` (default 0) and every device behind it fall silent; the gateway is back after `for`, its
   * devices over the next 2 s, but `stragglers.fraction` of them only `stragglers.for` later. */
  | {
      type: 'gateway-down';
      at: ScenarioTime;
      for: ScenarioTime;
      gateway?: number;
      stragglers?: { fraction: number; for: ScenarioTime };
    };

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
  /** Tag `site`: device i is at `site-<i mod sites>`. */
  sites?: number;
  /** Devices behind gateways: device i is behind `gw-<i mod gateways>` (tag `gatewayId`, PARENT_TAG). The gateways
   * are devices of their own beyond `devices`, heartbeating, never in churn or a disconnect. */
  gateways?: number;
  /** The gateways' device type. @default the type with the shortest timeout */
  gatewayType?: string;
  /** MAINTENANCE_RECHECK_SECONDS (at least 10): how soon a device behind a gateway that is back is looked at again. */
  maintenanceRecheckSeconds?: number;
  /** PARENT_GRACE_SECONDS: how long after a device went silent its gateway may go offline and still be the cause. */
  parentGraceSeconds?: number;
  /** OUTAGE_DETECTION: one incident for a mass outage of a site (`"groupBy": "site"`), a gateway's devices
   * (`"gatewayId"`) or a device type (`"deviceType"`). */
  outageDetection?: ScenarioOutageDetection;
  events: ScenarioEvent[];
}

/** The setting as the handlers read it (lambdas/core/outage.ts `parseOutageConfig`). */
export interface ScenarioOutageDetection {
  groupBy: string;
  minDevices: number;
  windowSeconds?: number;
  holdSeconds?: number;
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
    sites: raw.sites,
    gateways: raw.gateways,
    gatewayType: raw.gatewayType,
    maintenanceRecheckSeconds: raw.maintenanceRecheckSeconds,
    parentGraceSeconds: raw.parentGraceSeconds,
    outageDetection: raw.outageDetection,
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
  const problem = groupProblem(scenario);
  if (problem) throw new ScenarioError(`scenario ${name}: ${problem}`);
  return scenario;
}

/** What is wrong with a scenario's sites, gateways and the events that name them, if anything. */
function groupProblem(scenario: Scenario): string | undefined {
  const { sites = 0, gateways = 0 } = scenario;
  for (const [key, n] of [
    ['sites', sites],
    ['gateways', gateways],
  ] as const) {
    if (!Number.isInteger(n) || n < 0) return `${key} must be a whole number ≥ 0`;
  }
  if (scenario.outageDetection !== undefined) {
    let config: OutageConfig | undefined;
    try {
      config = outageConfigOf(scenario);
    } catch (error) {
      if (error instanceof ConfigError) return `outageDetection: ${error.message}`;
      throw error;
    }
    const groupBy = config?.groupBy;
    if (groupBy === 'site' && sites === 0) return 'outageDetection groups by site: set "sites"';
    if (groupBy === PARENT_TAG && gateways === 0) return `outageDetection groups by ${PARENT_TAG}: set "gateways"`;
    if (groupBy !== undefined && !['deviceType', 'site', PARENT_TAG].includes(groupBy))
      return `outageDetection: groupBy must be "deviceType", "site" or "${PARENT_TAG}" (the tags the fleet carries)`;
  }
  if (gateways > 0 && !scenario.deviceTypes[gatewayTypeOf(scenario)])
    return `gatewayType "${gatewayTypeOf(scenario)}" is not in deviceTypes`;
  if (!Object.values(scenario.deviceTypes).some((t) => t.share > 0)) return 'no device type has a share > 0';
  const knownSite = (site: string | undefined) =>
    site === undefined || Array.from({ length: sites }, (_, k) => siteName(k)).includes(site);
  for (const event of scenario.events) {
    if (event.type === 'stall') continue;
    if ('deviceType' in event && event.deviceType !== undefined && !scenario.deviceTypes[event.deviceType])
      return `${event.type} event: unknown device type "${event.deviceType}"`;
    if ('site' in event && !knownSite(event.site))
      return `${event.type} event: no site "${event.site}" (sites are site-0 … site-${sites - 1}; set "sites")`;
    if (event.type === 'maintenance' && event.site !== undefined && event.deviceType !== undefined)
      return 'maintenance event: a site or a device type, not both';
    if (event.type === 'gateway-down' && !((event.gateway ?? 0) < gateways))
      return `gateway-down event: no gateway ${event.gateway ?? 0} (set "gateways")`;
  }
  return undefined;
}

export const siteName = (k: number) => `site-${k}`;
export const gatewayName = (k: number) => `gw-${k}`;

export function gatewayTypeOf(scenario: Scenario): string {
  const shortest = Object.entries(scenario.deviceTypes).sort(([, a], [, b]) => a.timeoutMs - b.timeoutMs)[0]?.[0];
  return scenario.gatewayType ?? shortest ?? '';
}

/** Where the simulated devices' messages carry their tags: the FIELD_MAP paths of tags `site` and `gatewayId`. */
export const MESSAGE_TAG_FIELDS = { site: 'site', gatewayId: 'gw' } as const;
/** The tag naming a device's gateway (PARENT_TAG). */
export const PARENT_TAG = 'gatewayId';

/** What a scenario adds to the handlers' environment: the tags its messages carry, and the gateway dependency. */
export function scenarioEnv(scenario: Scenario): Record<string, string> {
  const tags = {
    ...(scenario.sites ? { site: MESSAGE_TAG_FIELDS.site } : {}),
    ...(scenario.gateways ? { [PARENT_TAG]: MESSAGE_TAG_FIELDS.gatewayId } : {}),
  };
  return {
    ...(Object.keys(tags).length > 0 ? { [ENV.fieldMap]: JSON.stringify({ tags }) } : {}),
    ...(scenario.gateways ? { [ENV.parentTag]: PARENT_TAG } : {}),
    ...(scenario.maintenanceRecheckSeconds !== undefined
      ? { [ENV.maintenanceRecheckSeconds]: String(scenario.maintenanceRecheckSeconds) }
      : {}),
    ...(scenario.parentGraceSeconds !== undefined
      ? { [ENV.parentGraceSeconds]: String(scenario.parentGraceSeconds) }
      : {}),
    ...(scenario.outageDetection !== undefined
      ? { [ENV.outageDetection]: JSON.stringify(scenario.outageDetection) }
      : {}),
  };
}

/** The outage detection the handlers run with (scenarioEnv), as they parse it; undefined when off. */
export function outageConfigOf(scenario: Scenario): OutageConfig | undefined {
  return parseOutageConfig(scenario.outageDetection, ENV.outageDetection);
}

/** The recheck interval and the parent grace the handlers run with (scenarioEnv, else the Lambdas' defaults). */
export function groupTimings(scenario: Scenario): { recheckMs: number; parentGraceMs: number } {
  return {
    recheckMs: (scenario.maintenanceRecheckSeconds ?? DEFAULT_RECHECK_MS / 1000) * 1000,
    parentGraceMs: (scenario.parentGraceSeconds ?? DEFAULT_PARENT_GRACE_MS / 1000) * 1000,
  };
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
 * tick: the fleet the benchmarks measure write and read units per message on; with `sites`, every message carries
 * tag `site`. */
export function steadyScenario(devices: number, precisionMs: number, shardCount: number, sites = 0): Scenario {
  return {
    name: `steady-p${precisionMs / 1000}s${sites > 0 ? '-tags' : ''}`,
    description: `one device type, timeout 5 min, heartbeat 1 min ±10 %, no silences, no stall${sites > 0 ? `; every message carries tag site (${sites} sites)` : ''}`,
    devices,
    duration: '1h',
    sweepTickSeconds: 10,
    shardCount,
    jitter: 0.1,
    deviceTypes: { meter: { timeoutMs: 5 * 60_000, precisionMs, heartbeatMs: 60_000, share: 1 } },
    ...(sites > 0 ? { sites } : {}),
    events: [],
  };
}
