// The operator CLI. In AWS it calls the operator API's Function URL, SigV4-signed with the caller's credentials
// (`--url`, or OFFLINE_DETECTOR_URL); against a local stack it runs the same API core in-process straight on the
// table (`--endpoint` of the DynamoDB engine, `--table`). Either way the routes, validation and answers are the API's.
import { createHash, createHmac } from 'node:crypto';
import { parseArgs } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { DynamoDeviceStore } from '../lambdas/adapters/device-store.js';
import { DynamoMaintenanceStore } from '../lambdas/adapters/maintenance-store.js';
import { DynamoProbeKey } from '../lambdas/adapters/probe-key.js';
import { redrive } from '../lambdas/adapters/redrive.js';
import { TableWindowSchedules } from '../lambdas/adapters/table-schedules.js';
import { type ApiRequest, type ApiResponse, handleApi, loadApiConfig, parseDuration } from '../lambdas/core/api.js';
import { ApiError } from '../lambdas/core/errors.js';

const USAGE = `usage: offline-detector <command> [args] (--url <function url> | --endpoint <dynamodb url> --table <name>)
  status <deviceId>                       a device's state, policy, mute, flapping
  list [--type T] [--tag name=value[,..]] [--limit N] [--cursor C] [--all]
                                          offline devices, newest first
  stats                                   online/offline counts per device type
  mute <deviceId> (--until <ISO time|epoch ms> | --for <duration>)
  unmute <deviceId>
  policy <deviceId> --timeout <duration> [--precision <duration>]   per-device override
  policy <deviceId> --clear               back to the device type's policy
  forget <deviceId>                       decommission
  devices register <deviceId> [--type T]  register a device (tracked in allow-list mode; a no-op when it is already)
  maintenance add (--all | --type T[,T..] | --tag name=value[,..] | --devices id[,id..])
      [--from <time>] [--until <time> | --for <duration>] [--reason text]
                                          hold the group's offline events; without an end, until cancelled
  maintenance list                        the windows not yet ended
  maintenance cancel <windowId>           cancel (or end now) a window
  redrive --from <DLQ url> --to <ingest queue url> --table <name> [--max N]
                                          put dead-lettered ingest messages back, keeping when they first entered
--url: the admin URL (stack output ApiUrl) for every command, or the read URL (ApiReadUrl) for status, list, stats.
durations: 90s, 15m, 25h, 2d or whole ms. Environment: OFFLINE_DETECTOR_URL, AWS_REGION, AWS_PROFILE; with --endpoint
also DEVICE_TYPES / DEFAULT_DEVICE_TYPE as the stack's Lambdas have them.`;

const OPTIONS = {
  url: { type: 'string' },
  endpoint: { type: 'string' },
  table: { type: 'string' },
  region: { type: 'string' },
  until: { type: 'string' },
  for: { type: 'string' },
  timeout: { type: 'string' },
  precision: { type: 'string' },
  clear: { type: 'boolean' },
  type: { type: 'string' },
  limit: { type: 'string' },
  cursor: { type: 'string' },
  all: { type: 'boolean' },
  from: { type: 'string' },
  to: { type: 'string' },
  max: { type: 'string' },
  tag: { type: 'string' },
  devices: { type: 'string' },
  reason: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Flags = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];
type Send = (request: ApiRequest) => Promise<ApiResponse>;

/** The API request a command stands for. */
export function requestFor(command: string | undefined, args: string[], flags: Flags, now = Date.now()): ApiRequest {
  const id = () => {
    const deviceId = args[0];
    if (!deviceId) throw new ApiError('missing-field', `${command} needs a device id`);
    return `/devices/${encodeURIComponent(deviceId)}`;
  };
  switch (command) {
    case 'status':
      return { method: 'GET', path: id(), query: {} };
    case 'list':
      return {
        method: 'GET',
        path: '/devices',
        query: {
          status: 'offline',
          deviceType: flags.type,
          limit: flags.limit,
          cursor: flags.cursor,
          ...Object.fromEntries(Object.entries(tagPairs(flags.tag)).map(([name, value]) => [`tag.${name}`, value])),
        },
      };
    case 'maintenance':
      return maintenanceRequest(args, flags, now);
    case 'stats':
      return { method: 'GET', path: '/stats', query: {} };
    case 'mute': {
      const until = flags.for !== undefined ? now + parseDuration(flags.for, '--for') : untilValue(flags.until);
      return { method: 'POST', path: `${id()}/mute`, query: {}, body: JSON.stringify({ until }) };
    }
    case 'unmute':
      return { method: 'DELETE', path: `${id()}/mute`, query: {} };
    case 'policy':
      if (flags.clear) return { method: 'DELETE', path: `${id()}/policy`, query: {} };
      return {
        method: 'PUT',
        path: `${id()}/policy`,
        query: {},
        body: JSON.stringify({ timeout: durationValue(flags.timeout), precision: durationValue(flags.precision) }),
      };
    case 'forget':
      return { method: 'DELETE', path: id(), query: {} };
    case 'devices': {
      const [action, deviceId] = args;
      if (action !== 'register') throw new ApiError('no-route', `unknown command "devices ${action ?? ''}"\n${USAGE}`);
      if (!deviceId) throw new ApiError('missing-field', 'devices register needs a device id');
      return {
        method: 'PUT',
        path: `/devices/${encodeURIComponent(deviceId)}`,
        query: {},
        ...(flags.type !== undefined ? { body: JSON.stringify({ deviceType: flags.type }) } : {}),
      };
    }
    default:
      throw new ApiError('no-route', `unknown command "${command ?? ''}"\n${USAGE}`);
  }
}

function maintenanceRequest(args: string[], flags: Flags, now: number): ApiRequest {
  const [action, windowId] = args;
  if (action === 'list') return { method: 'GET', path: '/maintenance', query: {} };
  if (action === 'cancel') {
    if (!windowId) throw new ApiError('missing-field', 'maintenance cancel needs a window id');
    return { method: 'DELETE', path: `/maintenance/${encodeURIComponent(windowId)}`, query: {} };
  }
  if (action !== 'add') throw new ApiError('no-route', `maintenance add|list|cancel, not "${action ?? ''}"`);
  const list = (raw: string) => raw.split(',').filter((s) => s !== '');
  const selector = flags.all
    ? { all: true }
    : flags.type
      ? { deviceTypes: list(flags.type) }
      : flags.tag
        ? { tags: tagPairs(flags.tag) }
        : flags.devices
          ? { deviceIds: list(flags.devices) }
          : undefined;
  if (!selector) throw new ApiError('missing-field', 'maintenance add needs --all, --type, --tag or --devices');
  const until =
    flags.for !== undefined ? now + parseDuration(flags.for, '--for') : flags.until && timeValue(flags.until);
  const body = {
    selector,
    ...(flags.from !== undefined ? { from: timeValue(flags.from) } : {}),
    ...(until !== undefined ? { until } : {}),
    ...(flags.reason !== undefined ? { reason: flags.reason } : {}),
  };
  return { method: 'POST', path: '/maintenance', query: {}, body: JSON.stringify(body) };
}

/** `name=value,name=value`: the API validates names and values. */
function tagPairs(raw: string | undefined): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const pair of (raw ?? '').split(',').filter((s) => s !== '')) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new ApiError('bad-query', `--tag takes name=value pairs, not "${pair}"`);
    pairs[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return pairs;
}

function timeValue(raw: string): string | number {
  return /^\d+$/.test(raw) ? Number(raw) : raw;
}

/** Numbers stay numbers (ms), the rest goes to the API as written: it validates. */
function durationValue(raw: string | undefined): string | number | undefined {
  return raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : raw;
}

function untilValue(raw: string | undefined): string | number {
  if (raw === undefined) throw new ApiError('missing-field', 'mute needs --until or --for');
  return timeValue(raw);
}

/** SHA-256 (and its HMAC) for the signer, from node:crypto. */
class Sha256 {
  private hash;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

function bytes(data: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/** Calls the Function URL with a SigV4 signature (service `lambda`), as awscurl would. */
export function urlTransport(url: string, region?: string): Send {
  const base = new URL(url);
  const signer = new SignatureV4({
    service: 'lambda',
    region:
      region ??
      process.env.AWS_REGION ??
      /\.lambda-url\.([a-z0-9-]+)\.on\.aws$/.exec(base.hostname)?.[1] ??
      'us-east-1',
    credentials: defaultProvider(),
    sha256: Sha256,
  });
  return async (request) => {
    const query = Object.fromEntries(
      Object.entries(request.query).filter((entry): entry is [string, string] => entry[1] !== undefined),
    );
    const signed = await signer.sign({
      method: request.method,
      protocol: base.protocol,
      hostname: base.hostname,
      ...(base.port ? { port: Number(base.port) } : {}),
      path: request.path,
      query,
      headers: { host: base.host, ...(request.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(request.body !== undefined ? { body: request.body } : {}),
    });
    const target = new URL(request.path, base);
    for (const [name, value] of Object.entries(query)) target.searchParams.set(name, value);
    const response = await fetch(target, {
      method: request.method,
      headers: signed.headers,
      ...(request.body !== undefined ? { body: request.body } : {}),
    });
    const text = await response.text();
    return { status: response.status, ...(text ? { body: JSON.parse(text) } : {}) };
  };
}

/** Runs the API core in-process on a table (the local stack of `npm start`, DynamoDB Local, LocalStack). */
export function tableTransport(endpoint: string, table: string, region?: string): Send {
  const config = loadApiConfig({ ...process.env, TABLE_NAME: table });
  const dynamodb = new DynamoDBClient({
    endpoint,
    region: region ?? process.env.AWS_REGION ?? 'us-east-1',
    // Local engines accept any key; real credentials from the environment win when present.
    ...(process.env.AWS_ACCESS_KEY_ID ? {} : { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }),
  });
  const deps = {
    store: new DynamoDeviceStore(dynamodb, { tableName: config.tableName, shardCount: config.shardCount }),
    deviceTypes: config.deviceTypes,
    housekeepingTtlMs: config.housekeepingTtlMs,
    now: Date.now,
    // No EventBridge Scheduler here: the local runtime fires the schedules it keeps in the table.
    maintenance: {
      maintenance: new DynamoMaintenanceStore(dynamodb, config.tableName),
      schedules: new TableWindowSchedules(dynamodb, config.tableName),
    },
  };
  return (request) => handleApi(request, deps);
}

export async function main(argv: string[], print: (line: string) => void = console.log): Promise<number> {
  const { values: flags, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  const [command, ...args] = positionals;
  if (flags.help || !command) {
    print(USAGE);
    return command || flags.help ? 0 : 2;
  }
  if (command === 'redrive') return redriveCommand(flags, print);
  let request: ApiRequest;
  try {
    request = requestFor(command, args, flags);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    print(error.message);
    return 2;
  }
  const url = flags.url ?? process.env.OFFLINE_DETECTOR_URL;
  let send: Send;
  if (flags.endpoint) {
    if (!flags.table) {
      print('--endpoint needs --table');
      return 2;
    }
    send = tableTransport(flags.endpoint, flags.table, flags.region);
  } else if (url) send = urlTransport(url, flags.region);
  else {
    print(`no API: pass --url (or OFFLINE_DETECTOR_URL) or --endpoint and --table\n${USAGE}`);
    return 2;
  }

  let response = await send(request);
  if (command === 'list' && flags.all) {
    // Follows the cursor to the end and prints one merged list.
    const devices = [...((response.body as { devices?: unknown[] } | undefined)?.devices ?? [])];
    let cursor = (response.body as { cursor?: string } | undefined)?.cursor;
    while (response.status === 200 && cursor) {
      response = await send({ ...request, query: { ...request.query, cursor } });
      devices.push(...((response.body as { devices?: unknown[] }).devices ?? []));
      cursor = (response.body as { cursor?: string }).cursor;
    }
    if (response.status === 200) response = { status: 200, body: { devices } };
  }
  if (response.body !== undefined) print(JSON.stringify(response.body, null, 2));
  else if (response.status < 400) print(`${response.status} done`);
  return response.status < 400 ? 0 : 1;
}

/** Straight on SQS and the table with the caller's credentials (AWS_ENDPOINT_URL and friends for other endpoints): the
 * signing key is in the table, so only an operator who may read it can vouch for entry times. */
async function redriveCommand(flags: Flags, print: (line: string) => void): Promise<number> {
  if (!flags.from || !flags.to || !flags.table) {
    print(`redrive needs --from, --to and --table\n${USAGE}`);
    return 2;
  }
  const region = flags.region ?? process.env.AWS_REGION ?? 'us-east-1';
  const key = await new DynamoProbeKey(new DynamoDBClient({ region }), flags.table).get();
  if (!key) {
    print(`no signing key in ${flags.table}: has the dispatcher run there yet?`);
    return 1;
  }
  const max = flags.max === undefined ? undefined : Number(flags.max);
  // The endpoint from the region or AWS_ENDPOINT_URL*, not the queue URL's host (emulators' hosts do not resolve).
  const sqs = new SQSClient({ region, useQueueUrlAsEndpoint: false });
  const result = await redrive(sqs, { from: flags.from, to: flags.to, key, max });
  print(JSON.stringify(result));
  return result.failed === 0 ? 0 : 1;
}

if (process.argv[1] && /offline-detector(\.js)?$|cli\.ts$/.test(process.argv[1])) {
  process.exitCode = await main(process.argv.slice(2));
}
