// The operator API handler on DynamoDB Local: every route, pagination over more devices than a page, and bad input
// answered with a 4xx that changed nothing. Devices get their state from the real ingest and sweep cores. Also the
// counts (read from the deadline and offline indexes) against the true counts after protocol runs with duplicates
// and crashes.
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import type { LambdaFunctionURLEvent, LambdaFunctionURLResult } from 'aws-lambda';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DynamoDeviceStore } from '../../lambdas/adapters/device-store.js';
import { apiHandler } from '../../lambdas/api.js';
import { type ApiAccess, type ApiDeps, MAX_BODY_BYTES } from '../../lambdas/core/api.js';
import { loadIngestConfig } from '../../lambdas/core/config.js';
import { DeviceCache } from '../../lambdas/core/device-cache.js';
import { ingestBatch } from '../../lambdas/core/ingest.js';
import { type SweepDeps, sweepShard } from '../../lambdas/core/sweep.js';
import { A } from '../../lambdas/core/table-schema.js';
import { logger } from '../../lambdas/runtime.js';
import { createDeviceTable } from '../../sim/engines/resources.js';
import { MemoryWatermarks } from '../../sim/memory/watermark-store.js';
import { testClients, uniqueName } from '../support/aws.js';
import { lambdaContext } from '../support/lambda-events.js';
import { MODEL_TYPES, runScenario, scenarioArb } from '../support/protocol-model.js';
import { EventLog, MemoryJobQueue, T0, TYPES } from '../support/sweep-harness.js';

const clients = testClients();
const drops: Array<() => Promise<void>> = [];
const TRACKER = TYPES.tracker.timeoutMs;

afterAll(async () => {
  await Promise.allSettled(drops.map((drop) => drop()));
});

async function freshTable(): Promise<string> {
  const tableName = uniqueName('api-devices');
  drops.push(await createDeviceTable(clients.dynamodb, tableName));
  return tableName;
}

/** A table with devices driven by the real ingest and sweep cores, and the API handler over it. */
async function fleet(
  types: Record<string, { timeoutMs: number; precisionMs: number }> = TYPES,
  options: { access?: ApiAccess } = {},
) {
  const tableName = await freshTable();
  const clock = { t: T0 };
  const now = () => clock.t;
  const store = new DynamoDeviceStore(clients.dynamodb, { tableName, shardCount: 2 });
  const events = new EventLog();
  const config = {
    ...loadIngestConfig({ TABLE_NAME: tableName, DEVICE_TYPES: JSON.stringify(types) }),
    shardCount: 2,
    writeConcurrency: 32,
  };
  const sweepDeps: SweepDeps = {
    settings: { toleranceMs: 0, budgetMs: 60_000, pageSize: 100, concurrency: 16, republishAfterMs: 10_000 },
    store,
    publisher: events,
    watermarks: new MemoryWatermarks(),
    queue: new MemoryJobQueue(),
    now,
  };
  const deps: ApiDeps = {
    store,
    deviceTypes: config.deviceTypes,
    housekeepingTtlMs: 30 * 86_400_000,
    now,
    ...(options.access ? { access: options.access } : {}),
  };
  const handler = apiHandler(() => deps);
  let n = 0;
  return {
    tableName,
    clock,
    store,
    events,
    /** Ingests one message per device, entered at `at`, by a container without a cache unless one is given. */
    async send(deviceIds: string[], at: number, deviceType = 'tracker', deviceCache = new DeviceCache(0)) {
      const records = deviceIds.map((deviceId) => ({
        id: `m${++n}`,
        body: JSON.stringify({ deviceId, deviceType }),
        enteredAt: at,
        partition: 'p',
      }));
      const deps = { config, store, publisher: events, rejects: { send: async () => ({ failed: [] }) }, now };
      await ingestBatch(records, { ...deps, cache: deviceCache }, { ordered: false });
    },
    async sweepAt(t: number) {
      clock.t = t;
      for (const shard of ['0', '1']) await sweepShard({ shard }, sweepDeps);
    },
    async call(method: string, path: string, options: UrlEventOptions = {}) {
      const result = (await handler(urlEvent(method, path, options), lambdaContext())) as LambdaFunctionURLResult & {
        statusCode: number;
        body?: string;
      };
      return { status: result.statusCode, body: result.body ? JSON.parse(result.body) : undefined };
    },
  };
}

interface UrlEventOptions {
  query?: Record<string, string>;
  body?: string;
  headers?: Record<string, string>;
  /** The IAM identity Lambda verified the signature of (the Function URL's authorizer context). */
  iam?: Record<string, string>;
}

function urlEvent(method: string, path: string, options: UrlEventOptions) {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: new URLSearchParams(options.query ?? {}).toString(),
    headers: { 'content-type': 'application/json', ...options.headers },
    ...(options.query ? { queryStringParameters: options.query } : {}),
    requestContext: {
      accountId: '000000000000',
      apiId: 'url',
      domainName: 'x.lambda-url.us-east-1.on.aws',
      domainPrefix: 'x',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
      requestId: 'r',
      routeKey: '$default',
      stage: '$default',
      time: '',
      timeEpoch: 0,
      ...(options.iam ? { authorizer: { iam: options.iam } } : {}),
    },
    isBase64Encoded: false,
    ...(options.body !== undefined ? { body: options.body } : {}),
  } as LambdaFunctionURLEvent;
}

describe('operator API on DynamoDB Local', () => {
  let f: Awaited<ReturnType<typeof fleet>>;
  beforeAll(async () => {
    f = await fleet();
  });

  it('answers each route', async () => {
    await f.send(['site/a', 'b'], T0);
    await f.send(['m'], T0, 'meter');
    expect(await f.call('GET', '/devices/site%2Fa')).toEqual({
      status: 200,
      body: {
        deviceId: 'site/a',
        deviceType: 'tracker',
        status: 'ONLINE',
        since: T0,
        lastSeen: T0,
        timeoutMs: TRACKER,
        precisionMs: 0,
        seq: 1,
      },
    });
    expect(await f.call('GET', '/devices/nobody')).toMatchObject({ status: 404, body: { error: 'not-found' } });

    const policy = await f.call('PUT', '/devices/b/policy', { body: JSON.stringify({ timeout: '30s' }) });
    expect(policy).toMatchObject({ status: 200, body: { timeoutMs: 30_000, override: { timeoutMs: 30_000 } } });
    const until = T0 + 3_600_000;
    const muted = await f.call('POST', '/devices/site%2Fa/mute', { body: JSON.stringify({ until }) });
    expect(muted).toMatchObject({ status: 200, body: { mutedUntil: until } });

    await f.sweepAt(T0 + TRACKER); // b offline by its override (at 30 s); site/a held by its mute
    expect(f.events.events.filter((e) => e.type === 'device.offline').map((e) => [e.deviceId, e.since])).toEqual([
      ['b', T0 + 30_000],
    ]);
    expect(await f.call('GET', '/devices', { query: { status: 'offline' } })).toMatchObject({
      status: 200,
      body: { devices: [{ deviceId: 'b', since: T0 + 30_000, deviceType: 'tracker' }] },
    });
    expect(await f.call('GET', '/stats')).toEqual({
      status: 200,
      body: {
        deviceTypes: { tracker: { online: 1, offline: 1 }, meter: { online: 1, offline: 0 } },
        total: { online: 2, offline: 1 },
        asOf: T0 + TRACKER,
        maxAgeMs: 0, // no cache in these deps: each call reads the indexes
      },
    });

    expect(await f.call('DELETE', '/devices/site%2Fa/mute')).toMatchObject({ status: 200 });
    expect((await f.call('DELETE', '/devices/b/policy')).body).toMatchObject({ timeoutMs: TRACKER });
    await f.sweepAt(T0 + TRACKER + 1_000); // unmuted: site/a is reported now
    expect(f.events.events.filter((e) => e.type === 'device.offline').map((e) => e.deviceId)).toEqual(['b', 'site/a']);

    expect(await f.call('DELETE', '/devices/m')).toEqual({ status: 204, body: undefined });
    expect(await f.call('GET', '/devices/m')).toMatchObject({ status: 404 });
    expect(await f.call('DELETE', '/devices/m')).toMatchObject({ status: 404 });
    expect((await f.call('GET', '/stats')).body.deviceTypes).toEqual({
      tracker: { online: 0, offline: 2 },
      meter: { online: 0, offline: 0 },
    });
  });

  it('pages the offline list newest first with an opaque cursor, over more devices than a page', async () => {
    const g = await fleet();
    const ids = Array.from({ length: 120 }, (_, i) => `p${String(i).padStart(3, '0')}`);
    // Three waves, so that `since` orders them: the newest wave first in the listing.
    await g.send(ids.slice(0, 40), T0);
    await g.send(ids.slice(40, 80), T0 + 1_000);
    await g.send(ids.slice(80), T0 + 2_000, 'meter');
    await g.sweepAt(T0 + 2_000 + TYPES.meter.timeoutMs + TYPES.meter.precisionMs);
    const seen: Array<{ deviceId: string; since: number }> = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await g.call('GET', '/devices', {
        query: { status: 'offline', limit: '50', ...(cursor ? { cursor } : {}) },
      });
      expect(page.status).toBe(200);
      seen.push(...page.body.devices);
      cursor = page.body.cursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(new Set(seen.map((d) => d.deviceId)).size).toBe(120);
    const sinces = seen.map((d) => d.since);
    expect(sinces).toEqual([...sinces].sort((a, b) => b - a));
    expect(seen[0]!.since).toBe(T0 + 2_000 + TYPES.meter.timeoutMs + TYPES.meter.precisionMs);

    const meters = await g.call('GET', '/devices', { query: { status: 'offline', deviceType: 'meter', limit: '100' } });
    expect(meters.body.devices).toHaveLength(40);
    expect(meters.body.cursor).toBeUndefined();
    // A cursor belongs to its listing.
    const first = await g.call('GET', '/devices', { query: { status: 'offline', limit: '10' } });
    const wrong = { status: 'offline', deviceType: 'meter', cursor: first.body.cursor };
    expect(await g.call('GET', '/devices', { query: wrong })).toMatchObject({
      status: 400,
      body: { error: 'bad-cursor' },
    });
  });

  it('answers bad input with a 4xx and changes nothing', async () => {
    const g = await fleet();
    await g.send(['d1'], T0);
    const before = await g.store.get('d1');
    const countsBefore = await g.store.counts(['tracker', 'meter']);
    const bad: Array<[string, string, { query?: Record<string, string>; body?: string }, number, string]> = [
      ['GET', '/devices/bad%20id', {}, 400, 'bad-device-id'],
      ['GET', `/devices/${'x'.repeat(129)}`, {}, 400, 'bad-device-id'],
      ['GET', '/devices/%E0%A4%A', {}, 400, 'bad-device-id'],
      ['PUT', '/devices/d1/policy', { body: JSON.stringify({ timeout: 'soon' }) }, 400, 'bad-duration'],
      ['PUT', '/devices/d1/policy', { body: JSON.stringify({ timeout: '-5s' }) }, 400, 'bad-duration'],
      ['PUT', '/devices/d1/policy', { body: JSON.stringify({ timeout: '90d' }) }, 400, 'bad-duration'],
      // Past the housekeeping TTL (30 days): the device would be forgotten before it is reported.
      ['PUT', '/devices/d1/policy', { body: JSON.stringify({ timeout: '29d', precision: '1d' }) }, 400, 'bad-duration'],
      ['PUT', '/devices/d1/policy', { body: JSON.stringify({ timeout: '10m', precision: 1.5 }) }, 400, 'bad-duration'],
      ['PUT', '/devices/d1/policy', { body: JSON.stringify({ timeout: '10m', color: 'red' }) }, 400, 'unknown-field'],
      ['PUT', '/devices/d1/policy', { body: JSON.stringify({}) }, 400, 'missing-field'],
      ['PUT', '/devices/d1/policy', { body: '{"timeout":' }, 400, 'bad-json'],
      ['PUT', '/devices/d1/policy', { body: '[1]' }, 400, 'bad-json'],
      [
        'PUT',
        '/devices/d1/policy',
        { body: JSON.stringify({ timeout: '10m', pad: 'x'.repeat(MAX_BODY_BYTES) }) },
        413,
        'body-too-large',
      ],
      ['POST', '/devices/d1/mute', { body: JSON.stringify({ until: T0 - 1 }) }, 400, 'bad-time'],
      ['POST', '/devices/d1/mute', { body: JSON.stringify({ until: 'tomorrow' }) }, 400, 'bad-time'],
      ['POST', '/devices/d1/mute', { body: JSON.stringify({ until: T0 + 1000, why: 'x' }) }, 400, 'unknown-field'],
      ['PUT', '/devices/nobody/policy', { body: JSON.stringify({ timeout: '10m' }) }, 404, 'not-found'],
      ['POST', '/devices/nobody/mute', { body: JSON.stringify({ until: T0 + 1000 }) }, 404, 'not-found'],
      ['DELETE', '/devices/nobody', {}, 404, 'not-found'],
      ['PATCH', '/devices/d1', {}, 405, 'method-not-allowed'],
      ['GET', '/devices', {}, 400, 'bad-query'],
      ['GET', '/devices', { query: { status: 'online' } }, 400, 'bad-query'],
      ['GET', '/devices', { query: { status: 'offline', limit: '0' } }, 400, 'bad-query'],
      ['GET', '/devices', { query: { status: 'offline', deviceType: 'toaster' } }, 400, 'unknown-device-type'],
      ['GET', '/devices', { query: { status: 'offline', cursor: 'garbage' } }, 400, 'bad-cursor'],
      // Well-formed, but no key this listing returns: a 2 KB key DynamoDB would refuse (a 502 before).
      [
        'GET',
        '/devices',
        {
          query: {
            status: 'offline',
            cursor: Buffer.from(JSON.stringify({ k: 'x'.repeat(2048) })).toString('base64url'),
          },
        },
        400,
        'bad-cursor',
      ],
      ['GET', '/devices', { query: { status: 'offline', sort: 'asc' } }, 400, 'bad-query'],
      ['GET', '/devices/d1/history', {}, 404, 'no-route'],
      ['GET', '/', {}, 404, 'no-route'],
    ];
    for (const [method, path, options, status, error] of bad) {
      expect(await g.call(method, path, options), `${method} ${path} ${options.body ?? ''}`).toMatchObject({
        status,
        body: { error },
      });
    }
    expect(await g.store.get('d1')).toEqual(before);
    expect(await g.store.counts(['tracker', 'meter'])).toEqual(countsBefore);
  });
});

describe('the read-only API function (issue 14)', () => {
  it('answers the GET routes and refuses every change with 403, changing nothing', async () => {
    const r = await fleet(TYPES, { access: 'read' });
    await r.send(['d1', 'site/a'], T0);
    await r.sweepAt(T0 + TRACKER);
    const before = await r.store.get('d1');
    expect(await r.call('GET', '/devices/d1')).toMatchObject({ status: 200, body: { deviceId: 'd1' } });
    expect(await r.call('GET', '/devices', { query: { status: 'offline' } })).toMatchObject({ status: 200 });
    expect(await r.call('GET', '/stats')).toMatchObject({ status: 200, body: { total: { offline: 2 } } });
    for (const [method, path, body] of [
      ['POST', '/devices/d1/mute', JSON.stringify({ until: T0 + TRACKER + 3_600_000 })],
      ['DELETE', '/devices/d1/mute', undefined],
      ['PUT', '/devices/d1/policy', JSON.stringify({ timeout: '30s' })],
      ['DELETE', '/devices/d1/policy', undefined],
      ['DELETE', '/devices/d1', undefined],
      ['DELETE', '/devices/site%2Fa', undefined],
    ] as const) {
      expect(await r.call(method, path, body ? { body } : {}), `${method} ${path}`).toMatchObject({
        status: 403,
        body: { error: 'read-only' },
      });
    }
    expect(await r.store.get('d1')).toEqual(before);
    expect(await r.call('GET', '/devices/site%2Fa')).toMatchObject({ status: 200, body: { status: 'OFFLINE' } });
  });
});

describe('every API call is logged with its caller from the request context (issue 14)', () => {
  it('logs the IAM identity Lambda verified, never one a header or the body claims', async () => {
    const g = await fleet();
    await g.send(['d1'], T0);
    const info = vi.spyOn(logger, 'info');
    const warn = vi.spyOn(logger, 'warn');
    try {
      const iam = {
        userArn: 'arn:aws:sts::111111111111:assumed-role/support/alice',
        callerId: 'AROAEXAMPLE:alice',
        accountId: '111111111111',
        accessKey: 'ASIAEXAMPLE',
      };
      const claims = {
        'x-amz-user-arn': 'arn:aws:iam::111111111111:role/admin',
        'x-caller': 'arn:aws:iam::111111111111:role/admin',
        'x-forwarded-for': 'admin',
      };
      await g.call('GET', '/devices/d1', { iam, headers: claims });
      await g.call('POST', '/devices/d1/mute', {
        iam,
        headers: claims,
        body: JSON.stringify({ until: T0 + 3_600_000, caller: 'arn:aws:iam::111111111111:role/admin' }),
      });
      await g.call('POST', '/devices/d1/mute', { iam, body: JSON.stringify({ until: T0 + 3_600_000 }) });
      const alice = { userArn: iam.userArn, callerId: iam.callerId, accountId: iam.accountId };
      expect(info.mock.calls).toEqual([
        ['api call', { method: 'GET', path: '/devices/d1', status: 200, caller: alice }],
        ['api call', { method: 'POST', path: '/devices/d1/mute', status: 200, caller: alice }],
      ]);
      expect(warn.mock.calls).toEqual([
        [
          'api call refused',
          expect.objectContaining({ method: 'POST', status: 400, caller: alice, body: expect.anything() }),
        ],
      ]);
      expect(JSON.stringify([...info.mock.calls, ...warn.mock.calls])).not.toContain('role/admin');
      // A request without an authorizer context (never through the Function URL) logs no caller, not a claimed one.
      info.mockClear();
      await g.call('GET', '/devices/d1', { headers: claims });
      expect(info.mock.calls).toEqual([['api call', { method: 'GET', path: '/devices/d1', status: 200, caller: {} }]]);
    } finally {
      info.mockRestore();
      warn.mockRestore();
    }
  });
});

describe('counts from the indexes on DynamoDB Local', () => {
  it('equal the true counts after protocol runs with duplicates, reordering and crashes', async () => {
    const tableName = await freshTable();
    // Pages of 2 entries, so every partition with more than two devices is counted over several pages.
    const store = new DynamoDeviceStore(clients.dynamodb, { tableName, countPageLimit: 2 });
    const ids: string[] = [];
    let run = 0;
    await fc.assert(
      fc.asyncProperty(scenarioArb({ maxDevices: 5, maxActions: 30 }), async (scenario) => {
        const prefix = `r${run++}-`;
        scenario.devices.forEach((_, i) => {
          ids.push(`${prefix}d${i}`);
        });
        await runScenario(scenario, store, { prefix });
      }),
      { numRuns: 6 },
    );
    const truth: Record<string, { online: number; offline: number }> = {};
    for (const type of Object.keys(MODEL_TYPES)) truth[type] = { online: 0, offline: 0 };
    for (const id of ids) {
      const state = await store.get(id);
      if (!state) continue;
      const counts = truth[state.deviceType]!;
      if (state.status === 'ONLINE') counts.online++;
      else if (state.status === 'OFFLINE') counts.offline++;
    }
    expect(Object.values(truth).reduce((n, c) => n + c.online + c.offline, 0)).toBeGreaterThan(0);
    expect(await store.counts(Object.keys(MODEL_TYPES))).toEqual(truth);
  });
});

describe('operator actions racing a warm coalescing cache, on DynamoDB Local (issue 10 #2)', () => {
  /** Writes coalesced within 10 min; the override below detects within 90 s. */
  const SENSOR = { timeoutMs: 300_000, precisionMs: 600_000 };
  const MIN = 60_000;

  it('a lowered precision: a device that keeps sending through a container with the old policy is never offline', async () => {
    const f = await fleet({ sensor: SENSOR });
    const warm = new DeviceCache(100);
    await f.send(['p'], T0, 'sensor', warm);
    f.clock.t = T0 + 30_000;
    const body = JSON.stringify({ timeout: '90s', precision: 0 });
    expect(await f.call('PUT', '/devices/p/policy', { body })).toMatchObject({ status: 200 });
    expect(await f.store.get('p')).toMatchObject({ skipHorizon: T0 + SENSOR.precisionMs, deadline: T0 + 690_000 });
    for (let t = T0 + MIN; t <= T0 + 15 * MIN; t += MIN) {
      await f.send(['p'], t, 'sensor', warm);
      await f.sweepAt(t + 30_000);
    }
    expect(f.events.events.map((e) => e.type)).toEqual(['device.online']);
    await f.sweepAt(T0 + 15 * MIN + 90_000); // silent: reported by the override
    expect(f.events.events.map((e) => [e.type, e.since, e.lastSeen])).toEqual([
      ['device.online', T0, T0],
      ['device.offline', T0 + 15 * MIN + 90_000, T0 + 15 * MIN],
    ]);
  });

  it('a decommission takes every message a stale cache may skip as entered before it; a mute keeps the item', async () => {
    const f = await fleet({ sensor: SENSOR });
    const warm = new DeviceCache(100);
    await f.send(['gone', 'muted'], T0, 'sensor', warm);
    f.clock.t = T0 + 30_000;
    expect(await f.call('DELETE', '/devices/gone')).toMatchObject({ status: 204 });
    expect(await f.store.get('gone')).toMatchObject({ status: 'RETIRED', lastSeen: T0 + SENSOR.precisionMs });
    await f.send(['gone'], T0 + 5 * MIN, 'sensor'); // another container: stale, as the warm one skips it
    await f.send(['gone'], T0 + 5 * MIN, 'sensor', warm);
    await f.send(['gone'], T0 + 11 * MIN, 'sensor', warm);
    expect(f.events.events.filter((e) => e.deviceId === 'gone').map((e) => [e.eventId, e.since])).toEqual([
      ['gone#1', T0],
      ['gone#2', T0 + 11 * MIN],
    ]);

    const until = T0 + 40 * 86_400_000; // past the 30-day housekeeping TTL
    expect(await f.call('POST', '/devices/muted/mute', { body: JSON.stringify({ until }) })).toMatchObject({
      status: 200,
    });
    const expiresAt = async () => {
      const out = await clients.dynamodb.send(
        new GetItemCommand({ TableName: f.tableName, Key: { pk: { S: 'muted' } }, ConsistentRead: true }),
      );
      return Number(out.Item?.[A.expiresAt]?.N);
    };
    // DynamoDB TTL reads epoch seconds.
    const keep = Math.ceil((until + SENSOR.timeoutMs + SENSOR.precisionMs) / 1000);
    expect(await expiresAt()).toBe(keep);
    await f.send(['muted'], T0 + 20 * MIN, 'sensor'); // a container that does not know of the mute
    expect(await expiresAt()).toBe(keep);
  });
});
