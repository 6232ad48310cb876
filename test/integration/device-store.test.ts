// The DynamoDB adapter against a real engine: every condition the protocol relies on, both ways.
import { DynamoDBClient, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDeviceStore } from '../../lambdas/adapters/device-store.js';
import { transitionEvent } from '../../lambdas/core/device.js';
import { DeviceCache } from '../../lambdas/core/device-cache.js';
import { ingestBatch } from '../../lambdas/core/ingest.js';
import { OUTBOX_ITEM_MAX, relayOutboxes } from '../../lambdas/core/outbox.js';
import { MAX_DEVICE_TYPES, parseDeviceTypes, typePolicies } from '../../lambdas/core/policy.js';
import type { CommitRequest } from '../../lambdas/core/ports.js';
import { A, KEY, SPILL, type Status, spillKey } from '../../lambdas/core/table-schema.js';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../sim/engines/engines.js';
import { createDeviceTable } from '../../sim/engines/resources.js';
import { testClients, uniqueName } from '../support/aws.js';
import { dynamoOutboxSetup } from '../support/dynamo-outbox.js';
import { memoryDeps, record } from '../support/ingest-fixtures.js';
import { commitMany, Log, outboxContract } from '../support/outbox-contract.js';

const clients = testClients();
const tableName = uniqueName('store');
let drop: () => Promise<void>;
const store = new DynamoDeviceStore(clients.dynamodb, { tableName });
const policy = { timeoutMs: 300_000, precisionMs: 0 };

beforeAll(async () => {
  drop = await createDeviceTable(clients.dynamodb, tableName);
});
afterAll(() => drop());

/** A commit of `state` that appends nothing (a transition flap damping holds). */
function heldCommit(state: CommitRequest['state']): Omit<CommitRequest, 'expect'> {
  return { deviceId: 'held', state, append: [], outboxShard: '3', outboxAt: 0 };
}

function register(deviceId: string, t: number): CommitRequest {
  const state = {
    deviceType: 'meter',
    ...policy,
    lastSeen: t,
    status: 'ONLINE' as const,
    since: t,
    seq: 1,
    shard: '3',
    deadline: t + policy.timeoutMs,
  };
  return {
    deviceId,
    expect: { absent: true },
    state,
    expiresAt: t + 1000,
    append: [transitionEvent('device.online', { deviceId, ...state }, t + 5)],
    outboxShard: '3',
    outboxAt: t + 5,
  };
}

describe('DynamoDeviceStore', () => {
  it('writes the housekeeping expiry in epoch seconds, which is what DynamoDB TTL reads', async () => {
    const at = 1_800_000_000_123;
    await store.commit({ ...register('ttl-1', at - 1_000), expiresAt: at });
    await store.touch({ deviceId: 'ttl-1', lastSeen: at, expiresAt: at + 60_000, typePolicy: policy });
    const doc = DynamoDBDocumentClient.from(clients.dynamodb);
    const { Item } = await doc.send(new GetCommand({ TableName: tableName, Key: { [KEY]: 'ttl-1' } }));
    expect(Item?.[A.expiresAt]).toBe(1_800_000_061);
  });

  it('touch on an unknown device fails its condition and reports no item', async () => {
    const out = await store.touch({ deviceId: 'nobody', lastSeen: 1, expiresAt: 2, typePolicy: policy });
    expect(out).toMatchObject({ applied: false, current: undefined });
  });

  it('registers a device once, with its event in the outbox, and refuses a second registration', async () => {
    const first = await store.commit(register('dev-1', 1_000));
    expect(first.applied).toBe(true);
    if (!first.applied) return;
    expect(first.after).toMatchObject({ deviceId: 'dev-1', status: 'ONLINE', seq: 1, shard: '3', deadline: 301_000 });
    expect(first.after.outbox.map((e) => e.eventId)).toEqual(['dev-1#1']);
    const second = await store.commit(register('dev-1', 2_000));
    expect(second).toMatchObject({ applied: false, current: { lastSeen: 1_000, seq: 1 } });
  });

  it('touch records a newer lastSeen without a read and returns the old item', async () => {
    const out = await store.touch({ deviceId: 'dev-1', lastSeen: 61_000, expiresAt: 9, typePolicy: policy });
    expect(out).toMatchObject({ applied: true, before: { lastSeen: 1_000, deadline: 301_000 } });
    const stale = await store.touch({ deviceId: 'dev-1', lastSeen: 61_000, expiresAt: 9, typePolicy: policy });
    expect(stale).toMatchObject({ applied: false, current: { lastSeen: 61_000 } });
  });

  it('touch fails when the stored policy or type is not the one assumed', async () => {
    const other = { timeoutMs: 90_000, precisionMs: 0 };
    expect((await store.touch({ deviceId: 'dev-1', lastSeen: 62_000, expiresAt: 9, typePolicy: other })).applied).toBe(
      false,
    );
    const typed = await store.touch({
      deviceId: 'dev-1',
      lastSeen: 62_000,
      expiresAt: 9,
      typePolicy: policy,
      deviceType: 'tracker',
    });
    expect(typed.applied).toBe(false);
  });

  it('touch can move the deadline in the same write', async () => {
    const out = await store.touch({
      deviceId: 'dev-1',
      lastSeen: 120_000,
      expiresAt: 9,
      typePolicy: policy,
      moveDeadline: { deadline: 420_000, policy, flapping: false },
    });
    expect(out.applied).toBe(true);
    expect((await store.get('dev-1'))?.deadline).toBe(420_000);
  });

  it('a flapping device: the touch moves its deadline only when the caller bounded it by when it settles', async () => {
    const flapping = { since: 100_000, windowMs: 600_000 };
    await store.commit({
      deviceId: 'flappy',
      expect: { absent: true },
      state: {
        deviceType: 'meter',
        ...policy,
        lastSeen: 100_000,
        status: 'ONLINE',
        since: 100_000,
        seq: 3,
        shard: '0',
        deadline: 400_000,
        transitions: [0, 50_000, 100_000],
        flapping,
      },
      append: [],
      outboxShard: '0',
      outboxAt: 100_000,
    });
    expect(await store.get('flappy')).toMatchObject({ transitions: [0, 50_000, 100_000], flapping });
    const move = (flap: boolean) =>
      store.touch({
        deviceId: 'flappy',
        lastSeen: flap ? 200_000 : 150_000,
        expiresAt: 9,
        typePolicy: policy,
        moveDeadline: { deadline: 450_000, policy, flapping: flap },
      });
    expect((await move(false)).applied).toBe(false);
    expect((await move(true)).applied).toBe(true);
    const [entry] = (await store.queryExpired('0', 450_000, 10)).items;
    expect(entry).toMatchObject({ deviceId: 'flappy', deadline: 450_000, flapping: true });
    expect((await store.rearm('flappy', policy, 450_000)).applied).toBe(false); // the sweep parks it instead
    const parked = await store.park({
      deviceId: 'flappy',
      deadline: 500_000,
      expect: { seq: 3, status: 'ONLINE', policy },
    });
    expect(parked.applied).toBe(true);
    expect(await store.get('flappy')).toMatchObject({ deadline: 500_000 });
  });

  it('rearm moves the deadline to lastSeen + timeout only while the device is alive at the cutoff', async () => {
    expect((await store.rearm('dev-1', policy, 400_000)).applied).toBe(true);
    expect((await store.get('dev-1'))?.deadline).toBe(420_000);
    const dead = await store.rearm('dev-1', policy, 420_000);
    expect(dead).toMatchObject({ applied: false, current: { lastSeen: 120_000, status: 'ONLINE' } });
  });

  it('finds expired deadlines per shard, page by page', async () => {
    for (let i = 0; i < 5; i++) await store.commit({ ...register(`q-${i}`, 10_000 + i), outboxShard: '3' });
    const first = await store.queryExpired('3', 310_002, 2);
    expect(first.items.map((e) => e.deviceId)).toEqual(['q-0', 'q-1']);
    expect(first.items[0]).toMatchObject({ deadline: 310_000, ...policy });
    const second = await store.queryExpired('3', 310_002, 10, first.next);
    expect(second.items.map((e) => e.deviceId)).toEqual(['q-2']);
    expect((await store.queryExpired('4', 999_999_999, 10)).items).toEqual([]);
  });

  it('commits an offline transition conditionally, leaving the deadline index', async () => {
    const current = (await store.get('q-0'))!;
    const state = {
      ...current,
      status: 'OFFLINE' as const,
      since: 310_000,
      seq: 2,
      shard: undefined,
      deadline: undefined,
    };
    const request: CommitRequest = {
      deviceId: 'q-0',
      expect: { seq: 1, status: 'ONLINE', lastSeenAtMost: current.lastSeen },
      state,
      append: [transitionEvent('device.offline', { ...state }, 320_000)],
      outboxShard: '3',
      outboxAt: 320_000,
    };
    const out = await store.commit(request);
    expect(out.applied).toBe(true);
    if (!out.applied) return;
    expect(out.after.shard).toBeUndefined();
    expect(out.after.deadline).toBeUndefined();
    expect(out.after.outbox.map((e) => e.type)).toEqual(['device.online', 'device.offline']);
    expect((await store.commit(request)).applied).toBe(false);
    expect((await store.queryExpired('3', 999_999_999, 10)).items.map((e) => e.deviceId)).not.toContain('q-0');
  });

  it('lists outboxes committed before a time and clears them only at the current seq', async () => {
    const pending = await store.queryOutbox('3', 10_000_000, 100);
    expect(pending.items).toContain('q-0');
    await store.clearOutbox('q-0', 1);
    expect((await store.get('q-0'))?.outbox).toHaveLength(2);
    await store.clearOutbox('q-0', 2);
    expect((await store.get('q-0'))?.outbox).toEqual([]);
    expect((await store.queryOutbox('3', 10_000_000, 100)).items).not.toContain('q-0');
  });

  it('clears the outbox by the seq of its newest event, also after a transition that appended none', async () => {
    await store.commit(register('held', 1_000));
    const base = { deviceType: 'meter', ...policy, lastSeen: 1_000 };
    const at = (seq: number, status: Status) => ({ seq, status, lastSeenAtMost: 1_000 });
    // A held transition (flap damping): seq 2, nothing appended.
    const offline = { ...base, status: 'OFFLINE' as const, since: 301_000, seq: 2 };
    expect((await store.commit({ ...heldCommit(offline), expect: at(1, 'ONLINE') })).applied).toBe(true);
    await store.clearOutbox('held', 1); // the events published: up to seq 1
    expect((await store.get('held'))?.outbox).toEqual([]);
    expect((await store.queryOutbox('3', 10_000_000, 100)).items).not.toContain('held');

    // An event appended after the ones published stays: the clear names the newest event it published.
    const online = { ...base, lastSeen: 400_000, status: 'ONLINE' as const, since: 400_000, seq: 3 };
    const event = transitionEvent('device.online', { deviceId: 'held', ...online }, 400_000);
    await store.commit({ ...heldCommit(online), expect: at(2, 'OFFLINE'), append: [event] });
    await store.clearOutbox('held', 2);
    expect((await store.get('held'))?.outbox.map((e) => e.eventId)).toEqual(['held#3']);
    await store.clearOutbox('held', 3);
    expect((await store.get('held'))?.outbox).toEqual([]);
  });

  it('clears an outbox written before the newest event seq was kept by the item seq', async () => {
    await store.commit(register('legacy', 1_000));
    await clients.dynamodb.send(
      new UpdateItemCommand({
        TableName: tableName,
        Key: { pk: { S: 'legacy' } },
        UpdateExpression: 'REMOVE #s',
        ExpressionAttributeNames: { '#s': A.outboxSeq },
      }),
    );
    await store.clearOutbox('legacy', 0);
    expect((await store.get('legacy'))?.outbox).toHaveLength(1);
    await store.clearOutbox('legacy', 1);
    expect((await store.get('legacy'))?.outbox).toEqual([]);
  });

  it('a message without deviceType costs one write unit on a cold cache, whatever type the device is stored under', async () => {
    const deps = (cache = new DeviceCache(100)) => ({ ...memoryDeps().deps, store, cache });
    const send = (deviceType: string | undefined, t: number) =>
      ingestBatch([record({ deviceId: 'typed', ...(deviceType ? { deviceType } : {}) }, t)], deps(), {
        ordered: false,
      });
    await send('meter', 0);
    for (const t of [60_000, 120_000]) {
      const { stats } = await send(undefined, t);
      expect(stats).toMatchObject({ written: 1, deadlineMoves: 0, writeUnits: 1 });
    }
    expect(await store.get('typed')).toMatchObject({ deviceType: 'meter', lastSeen: 120_000 });
  });

  it('the touch that names no type stays within the expression limits with the most device types allowed', async () => {
    const types = Object.fromEntries(
      Array.from({ length: MAX_DEVICE_TYPES }, (_, i) => [`type-${i}`.padEnd(64, 'x'), { timeoutMs: 1_000 + i }]),
    );
    const deviceTypes = parseDeviceTypes(types, 'type-0'.padEnd(64, 'x'));
    const request = {
      deviceId: 'dev-1',
      lastSeen: 10_000_000,
      expiresAt: 9,
      typePolicy: policy,
      typePolicies: typePolicies(deviceTypes),
    };
    // dev-1 is a meter with the meter policy, which none of these types has: the condition is evaluated and fails.
    expect(await store.touch(request)).toMatchObject({ applied: false, current: { deviceType: 'meter' } });
    const meter = { ...deviceTypes, types: { ...deviceTypes.types, meter: policy } };
    const all = { ...request, typePolicies: typePolicies(meter) };
    expect(await store.touch(all)).toMatchObject({ applied: true });
  });
});

describe('DynamoDeviceStore: the bounded outbox', () => {
  const doc = DynamoDBDocumentClient.from(clients.dynamodb);
  const raw = async (key: string) =>
    (await doc.send(new GetCommand({ TableName: tableName, Key: { [KEY]: key }, ConsistentRead: true }))).Item;
  outboxContract(
    dynamoOutboxSetup(
      () => clients.dynamodb,
      tableName,
      () => store,
    ),
  );

  it('spills, reads and clears with GetItem and UpdateItem only (all the functions may do); cleared spills go to TTL', async () => {
    const client = new DynamoDBClient({
      region: process.env.AWS_REGION ?? LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
      endpoint: clients.endpoints.dynamodb,
      maxAttempts: 3,
    });
    const used = new Set<string>();
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const input = args.input as { TransactItems?: Record<string, unknown>[] };
        if (context.commandName === 'TransactWriteItemsCommand') {
          for (const item of input.TransactItems ?? []) used.add(`TransactWriteItems.${Object.keys(item)[0]}`);
        } else used.add(context.commandName!.replace(/Command$/, ''));
        return next(args);
      },
      { step: 'initialize' },
    );
    const granted = new DynamoDeviceStore(client, { tableName });
    const id = 'granted-1';
    const { events } = await commitMany(granted, id, 2 * OUTBOX_ITEM_MAX + 1, { read: false });
    const log = new Log();
    await relayOutboxes([(await granted.get(id))!], granted, log);
    expect(log.events).toEqual(events);
    expect([...used].sort()).toEqual(['GetItem', 'TransactWriteItems.Update', 'UpdateItem']);
    const cleared = await raw(spillKey(id, 0));
    expect(cleared).toBeDefined();
    expect(cleared?.[SPILL.events]).toBeUndefined();
    // Epoch seconds, due: DynamoDB's TTL deletes it.
    expect(cleared?.[A.expiresAt]).toBeLessThanOrEqual(Date.now() / 1000);
    expect(cleared?.[A.expiresAt]).toBeGreaterThan(Date.now() / 1000 - 600);
    client.destroy();
  });
});
