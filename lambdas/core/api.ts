// The operator API: routes, input validation and the HTTP answer. Every input is checked before anything is read
// or written, so a refused request (4xx with a reason code) has changed nothing. Transport-neutral: the Lambda
// handler maps a Function URL event onto ApiRequest; the CLI calls the same function against a local table.
import {
  type AdminDeps,
  forget,
  getDevice,
  listOffline,
  mute,
  register,
  type Stats,
  setPolicy,
  stats,
  unmute,
} from './admin.js';
import { ENV, type Env, intSetting, loadDeviceTypes, requireString, silentWaitMs } from './config.js';
import { ApiError, ConfigError } from './errors.js';
import {
  addWindow,
  endWindow,
  instantOf,
  listWindows,
  type MaintenanceDeps,
  parseWindowRequest,
} from './maintenance.js';
import { DEVICE_ID_PATTERN } from './message.js';
import type { Policy } from './policy.js';
import { DEFAULT_SHARD_COUNT } from './table-schema.js';
import { MAX_TAGS, TAG_NAME_PATTERN, TAG_VALUE_PATTERN } from './tags.js';

export interface ApiRequest {
  method: string;
  /** The raw path; a device id with '/' in it comes percent-encoded (%2F). */
  path: string;
  query: Record<string, string | undefined>;
  body?: string;
}

export interface ApiResponse {
  status: number;
  body?: unknown;
}

/** What one deployment of the API may do. `read` answers GET routes only, so a dashboard or a support tool can look
 * without being able to mute the fleet (its function's role cannot write either); `admin` answers every route. */
export type ApiAccess = 'read' | 'admin';

export interface ApiConfig {
  tableName: string;
  deviceTypes: AdminDeps['deviceTypes'];
  housekeepingTtlMs: number;
  /** Shards of the deadline index, all of which GET /stats reads. */
  shardCount: number;
  access: ApiAccess;
  /** How long GET /stats answers from the counts a container read last (0: read them on every call). */
  statsMaxAgeMs: number;
}

export const DEFAULT_STATS_CACHE_SECONDS = 60;

export function loadApiConfig(env: Env): ApiConfig {
  const access = env[ENV.apiAccess] || 'admin';
  if (access !== 'read' && access !== 'admin')
    throw new ConfigError(ENV.apiAccess, `must be read or admin, got "${access}"`);
  return {
    tableName: requireString(env, 'TABLE_NAME'),
    deviceTypes: loadDeviceTypes(env),
    housekeepingTtlMs: intSetting(env, 'HOUSEKEEPING_TTL_DAYS', 30, 1, 3650) * 24 * 3600_000,
    shardCount: intSetting(env, ENV.shardCount, DEFAULT_SHARD_COUNT, 1, 10_000),
    access,
    statsMaxAgeMs: intSetting(env, ENV.statsCacheSeconds, DEFAULT_STATS_CACHE_SECONDS, 0, 3600) * 1000,
  };
}

/** What the API needs beyond the operator use cases. */
export interface ApiDeps extends AdminDeps {
  /** @default 'admin' */
  access?: ApiAccess;
  /** GET /stats answers from it while its counts are fresh. @default none: every call reads the indexes */
  statsCache?: StatsCache;
  /** The maintenance windows; the read deployment has no schedules (it changes nothing). @default none: 404 */
  maintenance?: Pick<MaintenanceDeps, 'maintenance'> & Partial<Pick<MaintenanceDeps, 'schedules' | 'newId'>>;
}

/** GET /stats reads the index keys of the whole fleet (≈ 12k read units per million devices). Kept for `maxAgeMs`
 * per container, so a loop of calls costs the indexes the sweep depends on one read per container per period, not
 * one per call. A failed read is not kept. */
export class StatsCache {
  private last?: Stats;
  private reading?: Promise<Stats>;

  constructor(readonly maxAgeMs: number) {}

  async get(deps: AdminDeps): Promise<Stats> {
    if (this.last && deps.now() - this.last.asOf < this.maxAgeMs) return this.last;
    // Calls that arrive while the counts are being read share that read.
    this.reading ??= stats(deps).finally(() => {
      this.reading = undefined;
    });
    this.last = await this.reading;
    return this.last;
  }
}

/** Operator requests are a few fields; anything larger is refused unread. A maintenance window may list devices. */
export const MAX_BODY_BYTES = 1024;
export const MAX_WINDOW_BODY_BYTES = 16 * 1024;
const MAX_DURATION_MS = 30 * 24 * 3600_000;
const MAX_MUTE_MS = 366 * 24 * 3600_000;
const DEFAULT_PAGE = 50;
const MAX_PAGE = 100;

export async function handleApi(request: ApiRequest, deps: ApiDeps): Promise<ApiResponse> {
  try {
    return await route(request, deps);
  } catch (error) {
    if (error instanceof ApiError) return { status: error.status, body: { error: error.code, message: error.message } };
    throw error;
  }
}

async function route(request: ApiRequest, deps: ApiDeps): Promise<ApiResponse> {
  const method = request.method.toUpperCase();
  // Before anything else: a read deployment refuses every change, whatever the route.
  if (deps.access === 'read' && method !== 'GET') {
    throw new ApiError('read-only', 'this is the read-only operator API: changes go to the admin URL');
  }
  const segments = request.path.split('/').filter((s) => s !== '');
  const [root, rawId, sub, ...rest] = segments;
  const maxBody = root === 'maintenance' ? MAX_WINDOW_BODY_BYTES : MAX_BODY_BYTES;
  if (request.body !== undefined && Buffer.byteLength(request.body) > maxBody) {
    throw new ApiError('body-too-large', `request body over ${maxBody} bytes`);
  }
  if (rest.length > 0) throw new ApiError('no-route', `no route ${request.path}`);
  if (root === 'maintenance' && sub === undefined) return maintenanceRoute(request, method, rawId, deps);

  if (root === 'stats' && rawId === undefined) {
    allow(method, ['GET']);
    noQuery(request, []);
    const counts = deps.statsCache ? await deps.statsCache.get(deps) : await stats(deps);
    return ok({ ...counts, maxAgeMs: deps.statsCache?.maxAgeMs ?? 0 });
  }
  if (root !== 'devices') throw new ApiError('no-route', `no route ${request.path}`);

  if (rawId === undefined) {
    allow(method, ['GET']);
    const tags = tagFilter(request.query);
    noQuery(request, ['status', 'deviceType', 'limit', 'cursor', ...Object.keys(tags).map((name) => `tag.${name}`)]);
    const { status, deviceType, limit, cursor } = request.query;
    if (status !== 'offline')
      throw new ApiError('bad-query', 'status=offline is required (only offline devices are indexed)');
    if (deviceType !== undefined && !deps.deviceTypes.types[deviceType]) {
      throw new ApiError('unknown-device-type', `unknown device type "${deviceType}"`);
    }
    return ok(
      await listOffline(deps, {
        limit: pageLimit(limit),
        ...(deviceType !== undefined ? { deviceType } : {}),
        ...(Object.keys(tags).length > 0 ? { tags } : {}),
        ...(cursor !== undefined ? { cursor } : {}),
      }),
    );
  }

  const deviceId = parseDeviceId(rawId);
  if (sub === undefined) {
    allow(method, ['GET', 'PUT', 'DELETE']);
    noQuery(request, []);
    if (method === 'GET') return ok(await getDevice(deps, deviceId));
    if (method === 'PUT') {
      const out = await register(deps, deviceId, parseRegistration(request.body, deps));
      // 201 when this call registered it; 200 when it was registered or tracked already (nothing changed).
      return { status: out.registered ? 201 : 200, body: out.device };
    }
    await forget(deps, deviceId);
    return { status: 204 };
  }
  if (sub === 'policy') {
    allow(method, ['PUT', 'DELETE']);
    noQuery(request, []);
    if (method === 'DELETE') return ok(await setPolicy(deps, deviceId, undefined));
    return ok(await setPolicy(deps, deviceId, parsePolicy(request.body, deps.housekeepingTtlMs)));
  }
  if (sub === 'mute') {
    allow(method, ['POST', 'DELETE']);
    noQuery(request, []);
    if (method === 'DELETE') return ok(await unmute(deps, deviceId));
    const body = jsonBody(request.body, ['until'], ['until']);
    return ok(await mute(deps, deviceId, parseUntil(body.until, deps.now())));
  }
  throw new ApiError('no-route', `no route ${request.path}`);
}

/** POST /maintenance, GET /maintenance, DELETE /maintenance/{id} (maintenance.ts). */
async function maintenanceRoute(
  request: ApiRequest,
  method: string,
  rawId: string | undefined,
  deps: ApiDeps,
): Promise<ApiResponse> {
  const { maintenance } = deps;
  if (!maintenance) throw new ApiError('no-route', 'maintenance windows are not configured here');
  noQuery(request, []);
  if (rawId === undefined) {
    allow(method, ['GET', 'POST']);
    if (method === 'GET') return ok({ windows: await listWindows(maintenance) });
    const body = jsonBody(request.body, ['selector', 'from', 'until', 'reason'], ['selector']);
    const window = parseWindowRequest(body, deps.now(), new Set(Object.keys(deps.deviceTypes.types)));
    return { status: 201, body: await addWindow(withSchedules(maintenance, deps), window) };
  }
  allow(method, ['DELETE']);
  if (!/^[A-Za-z0-9-]{1,64}$/.test(rawId)) throw new ApiError('not-found', 'no such maintenance window');
  return ok(await endWindow(withSchedules(maintenance, deps), rawId));
}

function withSchedules(maintenance: NonNullable<ApiDeps['maintenance']>, deps: ApiDeps): MaintenanceDeps {
  const { schedules } = maintenance;
  if (!schedules) throw new ApiError('no-route', 'no schedule group is configured for maintenance windows here');
  return { ...maintenance, schedules, now: deps.now };
}

const ok = (body: unknown): ApiResponse => ({ status: 200, body });

function allow(method: string, methods: string[]): void {
  if (!methods.includes(method)) throw new ApiError('method-not-allowed', `use ${methods.join(' or ')}`);
}

function noQuery(request: ApiRequest, allowed: string[]): void {
  for (const [name, value] of Object.entries(request.query)) {
    if (value !== undefined && !allowed.includes(name)) throw new ApiError('bad-query', `unknown parameter "${name}"`);
  }
}

function parseDeviceId(raw: string): string {
  let id: string;
  try {
    id = decodeURIComponent(raw);
  } catch {
    throw new ApiError('bad-device-id', 'device id is not valid percent-encoding');
  }
  if (!DEVICE_ID_PATTERN.test(id)) {
    throw new ApiError('bad-device-id', 'device id must be 1..128 characters of A-Z a-z 0-9 . _ : @ / -');
  }
  return id;
}

/** `tag.<name>=<value>` query parameters: the listing keeps devices carrying every one of them. */
function tagFilter(query: ApiRequest['query']): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const [key, value] of Object.entries(query)) {
    if (!key.startsWith('tag.') || value === undefined) continue;
    const name = key.slice(4);
    if (!TAG_NAME_PATTERN.test(name) || !TAG_VALUE_PATTERN.test(value)) {
      throw new ApiError('bad-query', `${key}: tag names are identifiers, values 1..64 chars of [A-Za-z0-9._:@/-]`);
    }
    tags[name] = value;
  }
  if (Object.keys(tags).length > MAX_TAGS) throw new ApiError('bad-query', `at most ${MAX_TAGS} tag filters`);
  return tags;
}

function pageLimit(raw: string | undefined): number {
  if (raw === undefined) return DEFAULT_PAGE;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > MAX_PAGE) throw new ApiError('bad-query', `limit must be 1..${MAX_PAGE}`);
  return n;
}

function jsonBody(raw: string | undefined, fields: string[], required: string[]): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(raw ?? '');
  } catch {
    throw new ApiError('bad-json', 'body must be a JSON object');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ApiError('bad-json', 'body must be a JSON object');
  }
  const record = body as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!fields.includes(key)) throw new ApiError('unknown-field', `unknown field "${key}" (${fields.join(', ')})`);
  }
  for (const key of required) {
    if (record[key] === undefined) throw new ApiError('missing-field', `"${key}" is required`);
  }
  return record;
}

/** A registration's body: none, or `{"deviceType": T}` with T a configured type (else the default type). */
function parseRegistration(raw: string | undefined, deps: AdminDeps): string | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  const { deviceType } = jsonBody(raw, ['deviceType'], []);
  if (deviceType === undefined) return undefined;
  if (typeof deviceType !== 'string' || !Object.hasOwn(deps.deviceTypes.types, deviceType)) {
    throw new ApiError('unknown-device-type', `unknown device type ${JSON.stringify(deviceType).slice(0, 80)}`);
  }
  return deviceType;
}

/** A policy the housekeeping TTL could not keep a silent device for (it would be forgotten before it is reported) is
 * refused, as the same rule refuses a device type at deploy (config.ts `checkInvariants`, `silentWaitMs`). Here
 * `timeout + precision`, before anything is read; the flap window of the device's type is added by `setPolicy` once
 * the device is read (admin.ts). */
function parsePolicy(raw: string | undefined, housekeepingTtlMs: number): Policy {
  const body = jsonBody(raw, ['timeout', 'precision'], ['timeout']);
  const timeoutMs = parseDuration(body.timeout, 'timeout');
  const precisionMs = body.precision === undefined ? 0 : parseDuration(body.precision, 'precision');
  if (timeoutMs < 1000) throw new ApiError('bad-duration', 'timeout must be at least 1s');
  if (silentWaitMs({ timeoutMs, precisionMs }) >= housekeepingTtlMs) {
    throw new ApiError(
      'bad-duration',
      `timeout + precision must be below the housekeeping TTL (${housekeepingTtlMs} ms): a silent device would be ` +
        'forgotten before it is reported',
    );
  }
  return { timeoutMs, precisionMs };
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 };

/** A duration: whole milliseconds, or a string like "90s", "15m", "25h", "2d". */
export function parseDuration(value: unknown, field: string): number {
  let ms: number | undefined;
  if (typeof value === 'number' && Number.isSafeInteger(value)) ms = value;
  else if (typeof value === 'string') {
    const match = /^(\d{1,12})(ms|s|m|h|d)$/.exec(value);
    if (match) ms = Number(match[1]) * UNIT_MS[match[2]!]!;
  }
  if (ms === undefined || ms < 0 || ms > MAX_DURATION_MS) {
    throw new ApiError(
      'bad-duration',
      `${field} must be a duration like "90s", "15m", "25h" (at most 30d) or whole ms`,
    );
  }
  return ms;
}

/** A mute end: epoch ms or an ISO-8601 time, in the future and within a year. */
function parseUntil(value: unknown, now: number): number {
  const t = instantOf(value);
  if (!Number.isFinite(t) || t <= now || t > now + MAX_MUTE_MS) {
    throw new ApiError('bad-time', 'until must be a future ISO-8601 time or epoch ms, within a year');
  }
  return t;
}
