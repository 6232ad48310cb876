// The CLI: straight on a DynamoDB Local table (--endpoint), and SigV4-signed to a Function URL (--url, here a local
// HTTP server that checks the signature's shape and answers with the API core).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../bin/cli.js';
import { DynamoDeviceStore } from '../../lambdas/adapters/device-store.js';
import { TableWindowSchedules } from '../../lambdas/adapters/table-schedules.js';
import { handleApi } from '../../lambdas/core/api.js';
import { loadIngestConfig } from '../../lambdas/core/config.js';
import { DeviceCache } from '../../lambdas/core/device-cache.js';
import { ingestBatch } from '../../lambdas/core/ingest.js';
import { createDeviceTable } from '../../sim/engines/resources.js';
import { MemoryDeviceStore } from '../../sim/memory/device-store.js';
import { testClients, uniqueName } from '../support/aws.js';
import { EventLog, TYPES } from '../support/sweep-harness.js';

const clients = testClients();
const drops: Array<() => Promise<void>> = [];
afterAll(async () => {
  await Promise.allSettled(drops.map((drop) => drop()));
});

async function run(argv: string[]) {
  const lines: string[] = [];
  const code = await main(argv, (line) => lines.push(line));
  const out = lines.join('\n');
  return { code, out, json: () => JSON.parse(out) };
}

describe('offline-detector CLI', () => {
  it('drives a local table with --endpoint: status, policy, mute, list, stats, forget', async () => {
    const table = uniqueName('cli-devices');
    drops.push(await createDeviceTable(clients.dynamodb, table));
    const store = new DynamoDeviceStore(clients.dynamodb, { tableName: table });
    const config = loadIngestConfig({ TABLE_NAME: table, DEVICE_TYPES: JSON.stringify(TYPES) });
    const now = Date.now();
    await ingestBatch(
      [{ id: '1', body: JSON.stringify({ deviceId: 'pump/7' }), enteredAt: now, partition: 'p' }],
      {
        config,
        store,
        publisher: new EventLog(),
        rejects: { send: async () => ({ failed: [] }) },
        cache: new DeviceCache(0),
        now: () => now,
      },
      { ordered: false },
    );
    process.env.DEVICE_TYPES = JSON.stringify(TYPES);
    const local = ['--endpoint', clients.endpoints.dynamodb, '--table', table];
    expect((await run(['status', 'pump/7', ...local])).json()).toMatchObject({ deviceId: 'pump/7', status: 'ONLINE' });
    expect((await run(['policy', 'pump/7', '--timeout', '15m', '--precision', '1m', ...local])).json()).toMatchObject({
      timeoutMs: 900_000,
      precisionMs: 60_000,
    });
    expect((await run(['mute', 'pump/7', '--for', '2h', ...local])).json().mutedUntil).toBeGreaterThan(now);
    expect((await run(['unmute', 'pump/7', ...local])).json().mutedUntil).toBeUndefined();
    expect((await run(['policy', 'pump/7', '--clear', ...local])).json().timeoutMs).toBe(TYPES.tracker.timeoutMs);
    expect((await run(['list', '--all', ...local])).json()).toEqual({ devices: [] });
    expect((await run(['stats', ...local])).json().total).toEqual({ online: 1, offline: 0 });
    expect(await run(['forget', 'pump/7', ...local])).toMatchObject({ code: 0, out: '204 done' });
    expect(await run(['status', 'pump/7', ...local])).toMatchObject({ code: 1 });
    expect(await run(['policy', 'pump/7', '--timeout', 'soon', ...local])).toMatchObject({ code: 1 });
    expect((await run(['frobnicate', ...local])).code).toBe(2);
  });

  it('maintenance add, list and cancel on a local table; the schedules wait in the table for the runtime', async () => {
    const table = uniqueName('cli-maintenance');
    drops.push(await createDeviceTable(clients.dynamodb, table));
    process.env.DEVICE_TYPES = JSON.stringify(TYPES);
    const local = ['--endpoint', clients.endpoints.dynamodb, '--table', table];
    const from = new Date(Date.now() + 3_600_000).toISOString();
    const added = await run(['maintenance', 'add', '--tag', 'site=berlin', '--from', from, '--for', '3h', ...local]);
    expect(added.code).toBe(0);
    const window = added.json();
    expect(window).toMatchObject({
      selector: { tags: { site: 'berlin' } },
      from: Date.parse(from),
      state: 'scheduled',
    });
    expect((await run(['maintenance', 'list', ...local])).json().windows).toEqual([window]);
    const schedules = new TableWindowSchedules(clients.dynamodb, table);
    expect(await schedules.takeDue(Date.parse(from))).toEqual([{ windowId: window.id, edge: 'start' }]);
    expect(await run(['maintenance', 'cancel', window.id, ...local])).toMatchObject({ code: 0 });
    expect((await run(['maintenance', 'list', ...local])).json().windows).toEqual([]);
    expect(await schedules.takeDue(Date.parse(from) + 1_000 * 86_400_000)).toEqual([]); // its end went with it
    expect((await run(['maintenance', 'add', '--tag', 'site', ...local])).code).toBe(2);
    expect((await run(['maintenance', 'add', '--tag', 'site=a b', ...local])).json()).toMatchObject({
      error: 'bad-selector',
    });
    expect((await run(['list', '--tag', 'site=berlin', ...local])).json()).toEqual({ devices: [] });
  });

  it('signs its calls to the Function URL with SigV4 for the lambda service', async () => {
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret' });
    const deps = {
      store: new MemoryDeviceStore(),
      deviceTypes: loadIngestConfig({ TABLE_NAME: 't', DEVICE_TYPES: JSON.stringify(TYPES) }).deviceTypes,
      housekeepingTtlMs: 86_400_000,
      now: Date.now,
    };
    const seen: Array<Record<string, unknown>> = [];
    const server = createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      seen.push({ method: req.method, path: url.pathname, authorization: req.headers.authorization });
      void handleApi(
        { method: req.method!, path: url.pathname, query: Object.fromEntries(url.searchParams) },
        deps,
      ).then((out) => {
        res.writeHead(out.status, { 'content-type': 'application/json' });
        res.end(out.body === undefined ? '' : JSON.stringify(out.body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      expect((await run(['stats', '--url', url, '--region', 'eu-west-1'])).json()).toMatchObject({
        total: { online: 0 },
      });
      expect(await run(['status', 'a/b', '--url', url, '--region', 'eu-west-1'])).toMatchObject({ code: 1 });
    } finally {
      server.close();
    }
    expect(seen[1]).toMatchObject({ method: 'GET', path: '/devices/a%2Fb' });
    expect(seen.map((call) => call.method)).toEqual(['GET', 'GET']);
    for (const call of seen) {
      expect(call.authorization).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/lambda\/aws4_request, SignedHeaders=\S*host\S*, Signature=[0-9a-f]{64}$/,
      );
    }
  });

  it('reads through the read-only URL, and a change sent there fails with its 403 answer', async () => {
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'secret' });
    const deps = {
      store: new MemoryDeviceStore(),
      deviceTypes: loadIngestConfig({ TABLE_NAME: 't', DEVICE_TYPES: JSON.stringify(TYPES) }).deviceTypes,
      housekeepingTtlMs: 86_400_000,
      now: Date.now,
      access: 'read' as const,
    };
    const server = createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      void handleApi({ method: req.method!, path: url.pathname, query: {} }, deps).then((out) => {
        res.writeHead(out.status, { 'content-type': 'application/json' });
        res.end(out.body === undefined ? '' : JSON.stringify(out.body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      expect(await run(['stats', '--url', url, '--region', 'eu-west-1'])).toMatchObject({ code: 0 });
      const refused = await run(['forget', 'pump/7', '--url', url, '--region', 'eu-west-1']);
      expect(refused.code).toBe(1);
      expect(refused.json()).toMatchObject({ error: 'read-only' });
    } finally {
      server.close();
    }
  });
});
