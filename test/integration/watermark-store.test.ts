// The watermark control item against DynamoDB Local: monotonic credits, first credit before the map exists,
// concurrent credits, the live list, and forgetting partitions that are no longer live.
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoWatermarkStore } from '../../lambdas/adapters/watermark-store.js';
import { KEY, WATERMARKS_KEY } from '../../lambdas/core/table-schema.js';
import { sweepCutoff } from '../../lambdas/core/watermark.js';
import { createDeviceTable } from '../../sim/engines/resources.js';
import { testClients, uniqueName } from '../support/aws.js';

const clients = testClients();
const tables: Array<() => Promise<void>> = [];

async function freshStore() {
  const tableName = uniqueName('wm');
  tables.push(await createDeviceTable(clients.dynamodb, tableName));
  return { store: new DynamoWatermarkStore(clients.dynamodb, tableName), tableName };
}

const queueArn = 'arn:aws:sqs:us-east-1:000000000000:ingest';
const shard0 = 'arn:aws:kinesis:us-east-1:000000000000:stream/devices/shardId-000000000000';
const shard1 = 'arn:aws:kinesis:us-east-1:000000000000:stream/devices/shardId-000000000001';

let store: DynamoWatermarkStore;
beforeAll(async () => {
  ({ store } = await freshStore());
});
afterAll(() => Promise.allSettled(tables.map((drop) => drop())));

describe('DynamoWatermarkStore', () => {
  it('reads an empty snapshot before anything was written', async () => {
    expect(await store.read()).toEqual({ live: [], marks: {} });
  });

  it('creates the map on the first credit, before the dispatcher ever ran', async () => {
    await store.credit(queueArn, 1_000);
    expect(await store.read()).toEqual({ live: [], marks: { [queueArn]: 1_000 } });
  });

  it('only ever raises a watermark', async () => {
    await store.credit(queueArn, 5_000);
    await store.credit(queueArn, 3_000);
    await store.credit(queueArn, 5_000);
    await store.credit(shard0, 4_000);
    expect((await store.read()).marks).toEqual({ [queueArn]: 5_000, [shard0]: 4_000 });
  });

  it('keeps the highest of concurrent credits, also when they race to create the map', async () => {
    const { store: fresh } = await freshStore();
    const stamps = Array.from({ length: 20 }, (_, i) => 10_000 + ((i * 7) % 20) * 100);
    await Promise.all(stamps.flatMap((t) => [fresh.credit(shard0, t), fresh.credit(shard1, t + 1)]));
    expect((await fresh.read()).marks).toEqual({ [shard0]: 11_900, [shard1]: 11_901 });
  });

  it('records the live partitions, and forgets watermarks of partitions no longer live', async () => {
    const { store: fresh, tableName } = await freshStore();
    await fresh.setLive([queueArn, shard0, shard1], 50_000);
    await Promise.all([fresh.credit(queueArn, 40_000), fresh.credit(shard0, 41_000), fresh.credit(shard1, 42_000)]);
    expect(await fresh.read()).toEqual({
      live: [queueArn, shard0, shard1],
      marks: { [queueArn]: 40_000, [shard0]: 41_000, [shard1]: 42_000 },
    });
    // shard1 closed (merged into a new shard2): it no longer counts, and its mark is dropped.
    const shard2 = shard1.replace(/1$/, '2');
    await fresh.setLive([queueArn, shard0, shard2], 110_000);
    const snapshot = await fresh.read();
    expect(snapshot).toEqual({
      live: [queueArn, shard0, shard2],
      marks: { [queueArn]: 40_000, [shard0]: 41_000 },
    });
    // The new shard has no watermark yet: nothing is judged until it is credited.
    expect(sweepCutoff(120_000, snapshot, 25_000)).toBeUndefined();
    await fresh.credit(shard2, 100_000);
    // The slowest mark (40,000) vouches for what entered before it: judged up to a millisecond before, plus 25 s.
    expect(sweepCutoff(120_000, await fresh.read(), 25_000)).toBe(64_999);
    // One item, read strongly consistently: the layout other tools can rely on.
    const raw = await clients.dynamodb.send(
      new GetItemCommand({ TableName: tableName, Key: { [KEY]: { S: WATERMARKS_KEY } }, ConsistentRead: true }),
    );
    expect(Object.keys(raw.Item ?? {}).sort()).toEqual(['live', 'marks', KEY].sort());
  });

  it('an empty live list is allowed (no partitions configured)', async () => {
    const { store: fresh } = await freshStore();
    await fresh.setLive([], 1);
    expect(await fresh.read()).toEqual({ live: [], marks: {} });
    expect(sweepCutoff(9, await fresh.read(), 5)).toBe(9);
  });

  it('holds a partition at its oldest failed record until a probe releases it, then lets it linger', async () => {
    const { store: fresh } = await freshStore();
    await fresh.setLive([queueArn], 1);
    await fresh.credit(queueArn, 10_000);
    // Records returning in one bucket share a hold: `at` only goes down, `returnsAt` only up.
    await fresh.hold(queueArn, 8_000, 11_000);
    await fresh.hold(queueArn, 7_000, 12_000);
    await fresh.hold(queueArn, 9_000, 13_000);
    // A record returning later is held in a bucket of its own.
    await fresh.hold(queueArn, 9_500, 25_000);
    expect((await fresh.read()).holds).toEqual({
      [queueArn]: [
        { at: 7_000, returnsAt: 13_000 },
        { at: 9_500, returnsAt: 25_000 },
      ],
    });
    // Credits go on, but the cutoff stays at the oldest held record.
    await fresh.credit(queueArn, 20_000, { returnedBefore: 12_999, until: 99_000 });
    expect(sweepCutoff(30_000, await fresh.read(), 1_000)).toBe(7_999);
    // A probe after the first bucket's records returned releases it (to stop counting later), not the second.
    await fresh.credit(queueArn, 21_000, { returnedBefore: 13_000, until: 40_000 });
    const released = await fresh.read();
    expect(released.holds?.[queueArn]).toEqual([
      { at: 7_000, returnsAt: 13_000, until: 40_000 },
      { at: 9_500, returnsAt: 25_000 },
    ]);
    expect(sweepCutoff(39_999, released, 1_000)).toBe(7_999);
    expect(sweepCutoff(40_000, released, 1_000)).toBe(10_499);
    // A failure in a released bucket starts a new hold there; the dispatcher forgets holds that stopped counting.
    await fresh.credit(queueArn, 60_000, { returnedBefore: 30_000, until: 50_000 });
    await fresh.setLive([queueArn], 50_000);
    expect((await fresh.read()).holds).toEqual({});
    await fresh.hold(queueArn, 18_000, 30_000);
    expect((await fresh.read()).holds).toEqual({ [queueArn]: [{ at: 18_000, returnsAt: 30_000 }] });
  });

  it('records a hold before any watermark, and keeps every concurrent failure', async () => {
    const { store: fresh } = await freshStore();
    await Promise.all(Array.from({ length: 10 }, (_, i) => fresh.hold(shard0, 5_000 + ((i * 3) % 10), 100 + i)));
    expect((await fresh.read()).holds).toEqual({ [shard0]: [{ at: 5_000, returnsAt: 109 }] });
  });
});
