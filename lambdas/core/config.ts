// Configuration of the Lambdas, read once at cold start from environment variables. The CDK construct and the
// local runtime set exactly these names (ENV below, part of the contracts in contracts.ts); everything has a sensible
// default except the resources.
import { ConfigError } from './errors.js';
import { DEFAULT_RECHECK_MS } from './maintenance.js';
import { type OutageConfig, parseOutageConfig } from './outage.js';
import { type DeviceTypes, type Policy, parseDeviceTypes } from './policy.js';
import { DEFAULT_PARENT_GRACE_MS } from './sweep.js';
import { DEFAULT_SHARD_COUNT } from './table-schema.js';
import { MAX_TAGS, TAG_NAME_PATTERN } from './tags.js';

export const ENV = {
  tableName: 'TABLE_NAME',
  shardCount: 'SHARD_COUNT',
  deviceTypes: 'DEVICE_TYPES',
  defaultDeviceType: 'DEFAULT_DEVICE_TYPE',
  fieldMap: 'FIELD_MAP',
  deviceTsSkewMs: 'DEVICE_TS_SKEW_MS',
  maxFutureMs: 'MAX_FUTURE_MS',
  maxPayloadBytes: 'MAX_PAYLOAD_BYTES',
  maxArrayElements: 'MAX_ARRAY_ELEMENTS',
  announceNewDevices: 'ANNOUNCE_NEW_DEVICES',
  /** `true`: only registered devices are tracked (PUT /devices/{id}); others are rejected (UNREGISTERED). */
  allowList: 'ALLOW_LIST',
  housekeepingTtlDays: 'HOUSEKEEPING_TTL_DAYS',
  cacheSize: 'COALESCE_CACHE_SIZE',
  writeConcurrency: 'WRITE_CONCURRENCY',
  probeMaxBacklog: 'PROBE_MAX_BACKLOG',
  /** Messages per second the SQS ingest queue takes at its usual peak: sizes PROBE_MAX_BACKLOG when that is unset. */
  ingestMessageRate: 'INGEST_MESSAGE_RATE',
  ingestTimeoutMs: 'INGEST_TIMEOUT_MS',
  rejectsQueueUrl: 'REJECTS_QUEUE_URL',
  onlineTopicArn: 'ONLINE_TOPIC_ARN',
  offlineTopicArn: 'OFFLINE_TOPIC_ARN',
  // sweep side
  sweepQueueUrl: 'SWEEP_QUEUE_URL',
  sweepTickSeconds: 'SWEEP_TICK_SECONDS',
  sweepBudgetMs: 'SWEEP_BUDGET_MS',
  watermarkToleranceMs: 'WATERMARK_TOLERANCE_MS',
  sweepPageSize: 'SWEEP_PAGE_SIZE',
  sweepConcurrency: 'SWEEP_CONCURRENCY',
  outboxRepublishAfterMs: 'OUTBOX_REPUBLISH_AFTER_MS',
  ingestQueueUrls: 'INGEST_QUEUE_URLS',
  ingestStreamArns: 'INGEST_STREAM_ARNS',
  /** The Kinesis event source mapping's ParallelizationFactor, mirrored so the ingest can refuse one above 1. */
  kinesisParallelizationFactor: 'KINESIS_PARALLELIZATION_FACTOR',
  // the batched engine (batched.ts)
  engine: 'ENGINE',
  shardTableName: 'SHARD_TABLE_NAME',
  /** The batched engine's shards (logs, states, sweep jobs); SHARD_COUNT stays the device table indexes' shards. */
  batchedShardCount: 'BATCHED_SHARD_COUNT',
  shardLogRetentionHours: 'SHARD_LOG_RETENTION_HOURS',
  shardLogLookbackMs: 'SHARD_LOG_LOOKBACK_MS',
  shardCheckpointEveryMs: 'SHARD_CHECKPOINT_EVERY_MS',
  // operator API
  /** `read` (GET routes only) or `admin` (every route). */
  apiAccess: 'API_ACCESS',
  /** How long a container answers GET /stats from the counts it read last. */
  statsCacheSeconds: 'STATS_CACHE_SECONDS',
  // maintenance windows (maintenance.ts): the schedules the admin API creates, and how often the sweep looks again
  maintenanceScheduleGroup: 'MAINTENANCE_SCHEDULE_GROUP',
  maintenanceTargetArn: 'MAINTENANCE_TARGET_ARN',
  maintenanceSchedulerRoleArn: 'MAINTENANCE_SCHEDULER_ROLE_ARN',
  maintenanceRecheckSeconds: 'MAINTENANCE_RECHECK_SECONDS',
  // gateway dependency (sweep.ts `parentVerdict`): the tag naming a device's parent, and the grace
  parentTag: 'PARENT_TAG',
  parentGraceSeconds: 'PARENT_GRACE_SECONDS',
  /** One incident for a mass outage (outage.ts): `{"groupBy", "minDevices", "windowSeconds"?, "holdSeconds"?}`. */
  outageDetection: 'OUTAGE_DETECTION',
} as const;

export type EngineName = 'per-device' | 'batched';

/** The batched engine's settings, or undefined on the per-device engine (the default). */
export interface BatchedEngineConfig {
  shardTableName: string;
  shardCount: number;
  /** How long log records, checkpoints and journals are kept: a sweep outage longer than this loses sightings. */
  retentionMs: number;
  lookbackMs: number;
  checkpointEveryMs: number;
  refreshAfterMs: number;
}

export function loadBatchedEngine(env: Env): BatchedEngineConfig | undefined {
  const engine = env[ENV.engine] || 'per-device';
  if (engine !== 'per-device' && engine !== 'batched') {
    throw new ConfigError(ENV.engine, `must be per-device or batched, not ${JSON.stringify(engine)}`);
  }
  if (engine === 'per-device') return undefined;
  const ingestTimeoutMs = intSetting(env, ENV.ingestTimeoutMs, 10_000, 1_000, 900_000);
  return {
    shardTableName: requireString(env, ENV.shardTableName),
    shardCount: intSetting(env, ENV.batchedShardCount, intSetting(env, ENV.shardCount, DEFAULT_SHARD_COUNT), 1, 10_000),
    retentionMs: intSetting(env, ENV.shardLogRetentionHours, 7 * 24, 1, 90 * 24) * 3_600_000,
    // An append lands within the ingest's answer budget, an operator's write within the API's 10 s timeout.
    lookbackMs: intSetting(env, ENV.shardLogLookbackMs, Math.max(ingestTimeoutMs, 10_000) + 5_000, 0),
    checkpointEveryMs: intSetting(env, ENV.shardCheckpointEveryMs, 300_000, 1_000),
    refreshAfterMs: loadHousekeepingTtlMs(env) / 2,
  };
}

export type Env = Readonly<Record<string, string | undefined>>;

/** Where the device id, timestamp and type are found in a message: dotted paths into the JSON payload. */
export interface FieldMap {
  deviceId: string;
  ts: string;
  deviceType: string;
  /** Device tags (tags.ts): tag name → path. A message carrying any of them sets the device's tags to those it
   * carries; one carrying none leaves them as they are. @default none */
  tags?: Readonly<Record<string, string>>;
}

export interface IngestConfig {
  tableName: string;
  shardCount: number;
  deviceTypes: DeviceTypes;
  fieldMap: FieldMap;
  /** Use the device's own timestamp when it is within this many ms of the pipeline entry time; 0 = never. */
  deviceTsSkewMs: number;
  /** A device timestamp more than this far after the entry time is rejected as invalid. */
  maxFutureMs: number;
  maxPayloadBytes: number;
  /** Messages one aggregated record may hold. */
  maxArrayElements: number;
  /** Whether a device's very first message publishes a device.online event. */
  announceNewDevices: boolean;
  /** Allow-list mode: a message of a device with no item, or a decommissioned one, is rejected (UNREGISTERED)
   * instead of registering it; devices are registered by an operator (admin.ts `register`). Read by the ingest and,
   * on the batched engine, by the sweep, which writes new devices' items. */
  allowList: boolean;
  housekeepingTtlMs: number;
  cacheSize: number;
  writeConcurrency: number;
  /** An SQS probe is credited only while the ingest queue shows at most this many visible messages (see
   * `probeCredit`): `PROBE_MAX_BACKLOG` if set, else `PROBE_BACKLOG_WAIT_MS` of `INGEST_MESSAGE_RATE` (and at least
   * 10, one ReceiveMessage's worth, without a rate). A fixed small number is not enough at fleet rates: at 16.7k
   * messages/s a healthy queue shows tens to thousands of visible messages, and a threshold of 10 credits about one
   * probe in eight (bench/probe-credit.ts). */
  probeMaxBacklog: number;
  /** The longest the ingest works on a batch before it answers (every record not yet committed then fails and is
   * held): holds on failed SQS records are released this long after the records return, and linger this long, for
   * a batch still running (progress.ts). Well above a healthy batch's time (~0.1 s) and the SDK's retries of a
   * throttled write; below the function timeout. */
  ingestTimeoutMs: number;
  /** Outbox entries younger than this have a live publisher, which the ingest leaves newer events to (outbox.ts);
   * the sweep re-publishes older ones. The sweep reads the same setting. */
  outboxRepublishAfterMs: number;
  rejectsQueueUrl?: string;
  onlineTopicArn?: string;
  offlineTopicArn?: string;
}

export const DEFAULT_FIELD_MAP: FieldMap = { deviceId: 'deviceId', ts: 'ts', deviceType: 'deviceType' };
export const DEFAULT_DEVICE_TYPES = { default: { timeoutMs: 300_000, precisionMs: 0 } };

export function requireString(env: Env, name: string): string {
  const value = env[name];
  if (!value) throw new ConfigError(name, 'is required');
  return value;
}

export function intSetting(env: Env, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(name, `must be a whole number in ${min}..${max}, got "${raw}"`);
  }
  return value;
}

function boolSetting(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(name, `must be true or false, got "${raw}"`);
}

export function jsonSetting(env: Env, name: string): unknown {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw new ConfigError(name, 'is not valid JSON');
  }
}

export function parseFieldMap(raw: unknown): FieldMap {
  if (raw === undefined) return DEFAULT_FIELD_MAP;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(ENV.fieldMap, 'must be a JSON object like {"deviceId": "thingName"}');
  }
  const map: FieldMap = { ...DEFAULT_FIELD_MAP };
  for (const [field, path] of Object.entries(raw)) {
    if (field === 'tags') {
      map.tags = parseTagFields(path);
      continue;
    }
    if (!(field in map)) {
      throw new ConfigError(ENV.fieldMap, `unknown field "${field}" (deviceId, ts, deviceType, tags)`);
    }
    if (typeof path !== 'string' || path === '') throw new ConfigError(ENV.fieldMap, `${field} must be a path`);
    map[field as 'deviceId' | 'ts' | 'deviceType'] = path;
  }
  return map;
}

function parseTagFields(raw: unknown): Record<string, string> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(ENV.fieldMap, 'tags must be an object of tag name → path, like {"site": "meta.site"}');
  }
  const entries = Object.entries(raw);
  if (entries.length > MAX_TAGS) throw new ConfigError(ENV.fieldMap, `at most ${MAX_TAGS} tags`);
  for (const [name, path] of entries) {
    if (!TAG_NAME_PATTERN.test(name)) {
      throw new ConfigError(ENV.fieldMap, `tag name "${name}" must match ${TAG_NAME_PATTERN.source}`);
    }
    if (typeof path !== 'string' || path === '') throw new ConfigError(ENV.fieldMap, `tag ${name} must be a path`);
  }
  return Object.fromEntries(entries) as Record<string, string>;
}

function parentTagSetting(env: Env): string | undefined {
  const tag = env[ENV.parentTag] || undefined;
  if (tag !== undefined && !TAG_NAME_PATTERN.test(tag)) {
    throw new ConfigError(ENV.parentTag, `must be a tag name of the field map (${TAG_NAME_PATTERN.source})`);
  }
  return tag;
}

/** Outage detection's settings (dispatch, sweep, ingest), or undefined when it is off (the default). */
export function loadOutageConfig(env: Env): OutageConfig | undefined {
  return parseOutageConfig(jsonSetting(env, ENV.outageDetection), ENV.outageDetection);
}

export function loadDeviceTypes(env: Env): DeviceTypes {
  const raw = jsonSetting(env, ENV.deviceTypes) ?? DEFAULT_DEVICE_TYPES;
  const defaultType = env[ENV.defaultDeviceType] || Object.keys(raw as object)[0] || 'default';
  return parseDeviceTypes(raw, defaultType);
}

const DAY_MS = 24 * 3600_000;

function loadHousekeepingTtlMs(env: Env): number {
  return intSetting(env, ENV.housekeepingTtlDays, 30, 1, 3650) * DAY_MS;
}

/** What `checkInvariants` judges: the settings whose combination can break the detector's promises. */
export interface InvariantInputs {
  deviceTypes: DeviceTypes;
  /** DynamoDB TTL of a device item after its last message (`expiresAt = lastSeen + housekeepingTtl`). */
  housekeepingTtlMs: number;
  /** The Kinesis event source's parallelization factor, where there is one. */
  kinesisParallelizationFactor?: number;
}

function showMs(ms: number): string {
  const days = ms / DAY_MS;
  return `${ms} ms (${Number.isInteger(days) ? days : days.toFixed(2)} days)`;
}

/** How long after its last message a silent device may still have to be reported: `timeout + precision`, plus the
 * flap window when it is flap-damped (a flapping device goes offline held and settles `windowMs` after that last
 * transition). The housekeeping TTL must outlast it: `checkInvariants` refuses a device type, and the operator API a
 * per-device override (admin.ts `setPolicy`), by this one rule. */
export function silentWaitMs(policy: Policy, flapWindowMs = 0): number {
  return policy.timeoutMs + policy.precisionMs + flapWindowMs;
}

/** Refuses configuration under which the detector would break its own promises, with a message that says what and
 * why. Called at Lambda start (loadIngestConfig, loadSweepConfig) and by the CDK construct at synth, so the rule
 * lives here only. It refuses only what breaks an invariant; it asks for no safety margin.
 *
 * - The housekeeping TTL must outlast, for every device type, the time a silent device waits to be reported:
 *   `timeout + precision`, plus the flap window when the type has flap damping (a flapping device goes offline held
 *   and settles `windowMs` after that last transition). DynamoDB deletes an expired item at some time after
 *   `expiresAt`, never before, but possibly right at it, while the sweep reports a device only after its deadline
 *   (by up to a tick + the watermark tolerance when healthy): a TTL equal to the wait is too short as well.
 * - Kinesis parallelization factor 1: above it Lambda keeps order only per partition key, so a shard's watermark
 *   probe says nothing about the other devices' records in that shard. */
export function checkInvariants(inputs: InvariantInputs): void {
  const ttl = inputs.housekeepingTtlMs;
  for (const [name, type] of Object.entries(inputs.deviceTypes.types)) {
    const windowMs = type.flap?.windowMs ?? 0;
    const wait = silentWaitMs(type, windowMs);
    if (ttl > wait) continue;
    const terms = type.flap ? 'timeout + precision + flap window' : 'timeout + precision';
    const values = [type.timeoutMs, type.precisionMs, ...(type.flap ? [windowMs] : [])].map((ms) => `${ms} ms`);
    throw new ConfigError(
      ENV.housekeepingTtlDays,
      `the housekeeping TTL (housekeepingTtl) of ${ttl / DAY_MS} day(s) = ${ttl} ms does not outlast device type ` +
        `"${name}": ${terms} = ${values.join(' + ')} = ${showMs(wait)}. DynamoDB may delete a device item as soon ` +
        `as it expires (lastSeen + TTL), and a silent "${name}" device is reported only after lastSeen + ${terms}, ` +
        `so its offline event could be lost with the item. Set the TTL to at least ${Math.floor(wait / DAY_MS) + 1} ` +
        `days, or shorten the type's ${terms.replaceAll(' + ', ' or ')}. Only a TTL that breaks this is refused: ` +
        'no further margin is asked for.',
    );
  }
  const factor = inputs.kinesisParallelizationFactor;
  if (factor !== undefined && factor !== 1) {
    throw new ConfigError(
      ENV.kinesisParallelizationFactor,
      `the Kinesis parallelization factor (kinesisIngest.parallelizationFactor) must be 1, got ${factor}: above 1 ` +
        'Lambda keeps record order only per partition key, not per shard, so a watermark probe proves nothing about ' +
        "the other devices' records in its shard and devices could be reported offline while their messages wait. " +
        "Scale with shards instead. This variable mirrors the event source mapping's ParallelizationFactor: if you " +
        'change the mapping outside CDK, update it too.',
    );
  }
}

/** A watermark tolerance the detector runs with but should not (`toleranceWarnings`). */
export interface ToleranceWarning {
  /** The device type the warning is about; absent when it is about the tolerance alone. */
  deviceType?: string;
  message: string;
}

/**
 * The watermark tolerance's bounds that warn rather than refuse (docs/design.md §6.4). One function for both places
 * that warn: the dispatcher (logged once per container) and the construct (synth annotations).
 *
 * - `tolerance < timeout − heartbeat` for every device type: a stall starting at S freezes the cutoff at most at
 *   S + tolerance, and the stored `lastSeen` of a device that keeps sending is at least S − heartbeat (less up to
 *   `precision` when writes are coalesced, which its deadline adds back), so it is never judged while the bound
 *   holds. A type without `heartbeatMs` is checked against its timeout alone: a tolerance that reaches the timeout
 *   fails whatever the heartbeat.
 * - `tolerance ≥ tick`: below one probe interval even a healthy pipeline holds the sweep behind the clock.
 *
 * The SQS ingest's own bound (`tolerance ≥ 0.5 s + batching window + INGEST_TIMEOUT_MS`, `probeCredit`) needs the
 * event source's batching window, which only the construct knows: it warns of that one itself.
 */
export function toleranceWarnings(
  deviceTypes: DeviceTypes,
  toleranceMs: number,
  tickSeconds: number,
): ToleranceWarning[] {
  const warnings: ToleranceWarning[] = [];
  if (toleranceMs < tickSeconds * 1000) {
    warnings.push({
      message:
        `watermark tolerance ${toleranceMs} ms is below one probe interval (${tickSeconds * 1000} ms): even a ` +
        'healthy pipeline will hold the sweep behind the clock, and detection will be late',
    });
  }
  for (const [deviceType, type] of Object.entries(deviceTypes.types)) {
    const limit = type.timeoutMs - (type.heartbeatMs ?? 0);
    if (toleranceMs < limit) continue;
    const bound =
      type.heartbeatMs === undefined
        ? `its timeout (${type.timeoutMs} ms; no heartbeatMs given, which would tighten this to timeout − heartbeat)`
        : `timeout − heartbeat (${type.timeoutMs} − ${type.heartbeatMs} = ${limit} ms)`;
    warnings.push({
      deviceType,
      message:
        `device type "${deviceType}": watermark tolerance ${toleranceMs} ms must be below ${bound}, or an ingest ` +
        'stall can report devices that kept sending as offline',
    });
  }
  return warnings;
}

export function loadIngestConfig(env: Env): IngestConfig {
  const config: IngestConfig = {
    tableName: requireString(env, ENV.tableName),
    shardCount: intSetting(env, ENV.shardCount, DEFAULT_SHARD_COUNT, 1, 10_000),
    deviceTypes: loadDeviceTypes(env),
    fieldMap: parseFieldMap(jsonSetting(env, ENV.fieldMap)),
    deviceTsSkewMs: intSetting(env, ENV.deviceTsSkewMs, 0),
    maxFutureMs: intSetting(env, ENV.maxFutureMs, 24 * 3600_000),
    maxPayloadBytes: intSetting(env, ENV.maxPayloadBytes, 64 * 1024, 1),
    maxArrayElements: intSetting(env, ENV.maxArrayElements, 500, 1, 100_000),
    announceNewDevices: boolSetting(env, ENV.announceNewDevices, true),
    allowList: boolSetting(env, ENV.allowList, false),
    housekeepingTtlMs: loadHousekeepingTtlMs(env),
    cacheSize: intSetting(env, ENV.cacheSize, 100_000),
    writeConcurrency: intSetting(env, ENV.writeConcurrency, 32, 1, 1000),
    probeMaxBacklog: probeMaxBacklogSetting(env),
    ingestTimeoutMs: intSetting(env, ENV.ingestTimeoutMs, 10_000, 1_000, 900_000),
    outboxRepublishAfterMs: intSetting(env, ENV.outboxRepublishAfterMs, 15_000, 0),
    rejectsQueueUrl: env[ENV.rejectsQueueUrl] || undefined,
    onlineTopicArn: env[ENV.onlineTopicArn] || undefined,
    offlineTopicArn: env[ENV.offlineTopicArn] || undefined,
  };
  checkInvariants({
    ...config,
    // Absent on the SQS ingest, which has no shard order to keep.
    kinesisParallelizationFactor: intSetting(env, ENV.kinesisParallelizationFactor, 1, 1, 10),
  });
  return config;
}

/** The queue wait a probe's credit may leave behind: the visible backlog allowed is this much of the queue's usual
 * peak rate, since a queue served roughly in order that shows `n` visible messages at rate `r` is handing out
 * messages that entered about `n / r` ago. It counts against the tolerance (`probeCredit`). */
export const PROBE_BACKLOG_WAIT_MS = 500;

/** PROBE_MAX_BACKLOG, or derived from INGEST_MESSAGE_RATE (see `IngestConfig.probeMaxBacklog`). */
export function probeMaxBacklogSetting(env: Env): number {
  const rate = intSetting(env, ENV.ingestMessageRate, 0, 0, 100_000_000);
  return intSetting(env, ENV.probeMaxBacklog, Math.max(10, Math.ceil((rate * PROBE_BACKLOG_WAIT_MS) / 1000)));
}

function listSetting(env: Env, name: string): string[] {
  return (env[name] ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

/** What the dispatcher and the sweep share: the shards to sweep, the tick, and the ingest partitions to probe. */
export interface SweepConfig {
  tableName: string;
  shardCount: number;
  deviceTypes: DeviceTypes;
  sweepQueueUrl?: string;
  /** Seconds between sweeps of a shard (the dispatcher runs every minute and spreads jobs over it). */
  sweepTickSeconds: number;
  /** How long one sweep job may work before it hands the rest of its shard to a continuation job. */
  sweepBudgetMs: number;
  /** Added to the slowest watermark: one probe interval plus the healthy pipeline latency. */
  watermarkToleranceMs: number;
  /** Deadline-index entries per query page (one page is the unit of work between budget checks). */
  sweepPageSize: number;
  /** Devices one sweep job settles in parallel. */
  sweepConcurrency: number;
  /** Outbox entries older than this are re-published by the sweep: well above a healthy commit-to-publish time,
   * so a re-publish rarely duplicates an event that is merely in flight. */
  outboxRepublishAfterMs: number;
  /** How often the sweep looks again at a device a maintenance window holds (maintenance.ts), or one reported behind
   * its offline parent. */
  maintenanceRecheckMs: number;
  /** The tag naming a device's parent (gateway), when devices have one. */
  parentTag?: string;
  parentGraceMs: number;
  ingestQueueUrls: string[];
  ingestStreamArns: string[];
  onlineTopicArn?: string;
  offlineTopicArn?: string;
}

export function loadSweepConfig(env: Env): SweepConfig {
  const sweepTickSeconds = intSetting(env, ENV.sweepTickSeconds, 10, 1, 60);
  const config: SweepConfig = {
    tableName: requireString(env, ENV.tableName),
    shardCount: intSetting(env, ENV.shardCount, DEFAULT_SHARD_COUNT, 1, 10_000),
    deviceTypes: loadDeviceTypes(env),
    sweepQueueUrl: env[ENV.sweepQueueUrl] || undefined,
    sweepTickSeconds,
    sweepBudgetMs: intSetting(env, ENV.sweepBudgetMs, 20_000, 100),
    // One probe interval (a tick) plus healthy pipeline latency; the construct uses the same default.
    watermarkToleranceMs: intSetting(env, ENV.watermarkToleranceMs, sweepTickSeconds * 1000 + 20_000, 0),
    sweepPageSize: intSetting(env, ENV.sweepPageSize, 100, 1, 1000),
    sweepConcurrency: intSetting(env, ENV.sweepConcurrency, 16, 1, 256),
    outboxRepublishAfterMs: intSetting(env, ENV.outboxRepublishAfterMs, 15_000, 0),
    maintenanceRecheckMs: intSetting(env, ENV.maintenanceRecheckSeconds, DEFAULT_RECHECK_MS / 1000, 10, 86_400) * 1000,
    parentTag: parentTagSetting(env),
    parentGraceMs: intSetting(env, ENV.parentGraceSeconds, DEFAULT_PARENT_GRACE_MS / 1000, 0, 3600) * 1000,
    ingestQueueUrls: listSetting(env, ENV.ingestQueueUrls),
    ingestStreamArns: listSetting(env, ENV.ingestStreamArns),
    onlineTopicArn: env[ENV.onlineTopicArn] || undefined,
    offlineTopicArn: env[ENV.offlineTopicArn] || undefined,
  };
  // The sweep writes no TTL, but it is what reports silent devices: it refuses what ingest refuses.
  checkInvariants({ deviceTypes: config.deviceTypes, housekeepingTtlMs: loadHousekeepingTtlMs(env) });
  return config;
}
