// Device tags and maintenance windows on the engines: DynamoDB Local for the table (tags on the item and in the
// offline index, the windows' control item), fauxqs for the topics, each subscribed by a queue with the filter policy
// a pager subscription would use. Time is an injected clock; nothing sleeps.
import { CreateScheduleCommand, DeleteScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { SubscribeCommand } from '@aws-sdk/client-sns';
import type { Context, LambdaFunctionURLEvent, LambdaFunctionURLResult, SQSEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDeviceStore } from '../../lambdas/adapters/device-store.js';
import { EventTopics } from '../../lambdas/adapters/event-topics.js';
import { DynamoMaintenanceStore } from '../../lambdas/adapters/maintenance-store.js';
import { DynamoOutageStore } from '../../lambdas/adapters/outage-store.js';
import { SweepQueue } from '../../lambdas/adapters/sweep-queue.js';
import { apiDepsFromEnv, apiHandler } from '../../lambdas/api.js';
import { getDevice, listOffline } from '../../lambdas/core/admin.js';
import { loadIngestConfig } from '../../lambdas/core/config.js';
import type { DeviceEvent } from '../../lambdas/core/device.js';
import { DeviceCache } from '../../lambdas/core/device-cache.js';
import { ingestBatch } from '../../lambdas/core/ingest.js';
import { addWindow, applyEdge, type MaintenanceWindow } from '../../lambdas/core/maintenance.js';
import { evaluateOutages, OutageAwarePublisher } from '../../lambdas/core/outage.js';
import type { EventPublisher } from '../../lambdas/core/ports.js';
import { sweepShard } from '../../lambdas/core/sweep.js';
import { dispatchDepsFromEnv, dispatchHandler } from '../../lambdas/dispatch.js';
import { sweepDepsFromEnv, sweepHandler } from '../../lambdas/sweep.js';
import { createDeviceTable, createQueue, type Queue } from '../../sim/engines/resources.js';
import { MemoryWatermarks } from '../../sim/memory/watermark-store.js';
import { createTestStack, drainQueue, type TestStack, testClients, uniqueName } from '../support/aws.js';
import { lambdaContext } from '../support/lambda-events.js';
import { RecordedSchedules } from '../support/memory-maintenance.js';
import { T0, TYPES } from '../support/sweep-harness.js';

const clients = testClients();
const TRACKER = TYPES.tracker.timeoutMs;
const SHARDS = 2;
let stack: TestStack;
let jobs: Queue;
/** Subscribed to the offline topic with a filter policy: only events of devices at site "berlin". */
let berlinPager: Queue;
const drops: Array<() => Promise<void>> = [];

beforeAll(async () => {
  stack = await createTestStack(clients, 'fleet');
  jobs = await createQueue(clients.sqs, uniqueName('fleet-jobs'));
  berlinPager = await createQueue(clients.sqs, uniqueName('fleet-berlin'));
  await clients.sns.send(
    new SubscribeCommand({
      TopicArn: stack.offlineTopic.arn,
      Protocol: 'sqs',
      Endpoint: berlinPager.arn,
      Attributes: { RawMessageDelivery: 'true', FilterPolicy: JSON.stringify({ 'tag.site': ['berlin'] }) },
    }),
  );
});
afterAll(async () => {
  await Promise.allSettled([stack.cleanup(), jobs.delete(), berlinPager.delete(), ...drops.map((drop) => drop())]);
});

async function detector() {
  const tableName = uniqueName('fleet-devices');
  drops.push(await createDeviceTable(clients.dynamodb, tableName));
  const clock = { t: T0 };
  const now = () => clock.t;
  const store = new DynamoDeviceStore(clients.dynamodb, { tableName });
  const publisher = new EventTopics(clients.sns, { online: stack.onlineTopic.arn, offline: stack.offlineTopic.arn });
  const maintenance = new DynamoMaintenanceStore(clients.dynamodb, tableName);
  const config = {
    ...loadIngestConfig({
      TABLE_NAME: tableName,
      DEVICE_TYPES: JSON.stringify(TYPES),
      FIELD_MAP: JSON.stringify({ tags: { site: 'site' } }),
    }),
    shardCount: SHARDS,
  };
  const cache = new DeviceCache(1000);
  let n = 0;
  return {
    tableName,
    clock,
    store,
    maintenance,
    admin: { store, deviceTypes: config.deviceTypes, housekeepingTtlMs: 30 * 86_400_000, now },
    async send(messages: Array<Record<string, unknown>>, at: number) {
      const records = messages.map((body) => ({
        id: `m${++n}`,
        body: JSON.stringify({ deviceType: 'tracker', ...body }),
        enteredAt: at,
        partition: 'p',
      }));
      const deps = { config, store, publisher, rejects: { send: async () => ({ failed: [] }) }, cache, now };
      const result = await ingestBatch(records, deps, { ordered: false });
      expect(result.failedRecordIds.size).toBe(0);
    },
    async sweepAt(t: number, eventPublisher: EventPublisher = publisher) {
      clock.t = t;
      for (let shard = 0; shard < SHARDS; shard++) {
        await sweepShard(
          { shard: String(shard) },
          {
            settings: { toleranceMs: 0, budgetMs: 60_000, pageSize: 100, concurrency: 8, republishAfterMs: 10_000 },
            store,
            publisher: eventPublisher,
            watermarks: new MemoryWatermarks(),
            queue: new SweepQueue(clients.sqs, jobs.url),
            now,
            maintenance,
          },
        );
      }
    },
  };
}

describe('device tags on DynamoDB Local and fauxqs', () => {
  it('ride on the item, the offline index and the events; a filter policy on tag.site selects a site', async () => {
    const d = await detector();
    const [a, b] = [uniqueName('tag-a'), uniqueName('tag-b')];
    await d.send(
      [
        { deviceId: a, site: 'berlin' },
        { deviceId: b, site: 'paris' },
      ],
      T0,
    );
    await d.send([{ deviceId: a }], T0 + 1_000); // a message without tags keeps them
    expect((await getDevice(d.admin, a)).tags).toEqual({ site: 'berlin' });
    await d.sweepAt(T0 + 1_000 + TRACKER);

    const listed = await listOffline(d.admin, { limit: 10, tags: { site: 'paris' } });
    expect(listed.devices.map((x) => [x.deviceId, x.tags])).toEqual([[b, { site: 'paris' }]]);

    const all = (await drainQueue(clients.sqs, stack.offlineEvents.url)).filter((m) =>
      [a, b].includes((JSON.parse(m.Body!) as DeviceEvent).deviceId),
    );
    expect(all.map((m) => m.MessageAttributes?.['tag.site']?.StringValue).sort()).toEqual(['berlin', 'paris']);
    const paged = (await drainQueue(clients.sqs, berlinPager.url)).map((m) => JSON.parse(m.Body!) as DeviceEvent);
    expect(paged.map((e) => [e.deviceId, e.type, e.tags])).toEqual([[a, 'device.offline', { site: 'berlin' }]]);
  });
});

describe('maintenance windows on DynamoDB Local', () => {
  it('the control item takes versioned writes only', async () => {
    const d = await detector();
    expect(await d.maintenance.read()).toEqual({ windows: [], version: 0 });
    const window: MaintenanceWindow = {
      id: 'w',
      selector: { all: true },
      from: T0,
      reason: '',
      createdAt: T0,
      state: 'active',
    };
    expect(await d.maintenance.write([window], 0)).toBe(true);
    expect(await d.maintenance.write([], 0)).toBe(false); // another writer got there first
    expect(await d.maintenance.read()).toEqual({ windows: [window], version: 1 });
    expect(await d.maintenance.write([], 1)).toBe(true);
    expect(await d.maintenance.read()).toEqual({ windows: [], version: 2 });
  });

  it('a window holds its site through the sweep and reports the still-silent device at its end', async () => {
    const d = await detector();
    const schedules = new RecordedSchedules();
    const [held, free] = [uniqueName('held'), uniqueName('free')];
    await addWindow(
      { maintenance: d.maintenance, schedules, now: () => d.clock.t },
      {
        selector: { tags: { site: 'berlin' } },
        from: T0,
        until: T0 + 10 * 60_000,
        reason: 'rewiring',
      },
    );
    await d.send(
      [
        { deviceId: held, site: 'berlin' },
        { deviceId: free, site: 'paris' },
      ],
      T0,
    );
    await d.sweepAt(T0 + TRACKER);
    expect(await d.store.get(held)).toMatchObject({ status: 'ONLINE', deadline: T0 + TRACKER + 300_000 });
    expect(await d.store.get(free)).toMatchObject({ status: 'OFFLINE', since: T0 + TRACKER });
    for (const edge of schedules.due(T0 + 10 * 60_000)) await applyEdge(d.maintenance, edge);
    expect((await d.maintenance.read()).windows).toEqual([]);
    for (let t = T0 + 2 * 60_000; t <= T0 + 11 * 60_000; t += 60_000) await d.sweepAt(t);
    expect(await d.store.get(held)).toMatchObject({ status: 'OFFLINE', since: T0 + TRACKER });
  });
});

describe('maintenance windows through the real handlers', () => {
  it('the admin API schedules a window, the dispatcher takes its edges, the sweep holds its group', async () => {
    const tableName = uniqueName('fleet-handlers');
    drops.push(await createDeviceTable(clients.dynamodb, tableName));
    const env = {
      TABLE_NAME: tableName,
      DEVICE_TYPES: JSON.stringify(TYPES),
      SHARD_COUNT: '2',
      FIELD_MAP: JSON.stringify({ tags: { site: 'site' } }),
      SWEEP_QUEUE_URL: jobs.url,
      ONLINE_TOPIC_ARN: stack.onlineTopic.arn,
      OFFLINE_TOPIC_ARN: stack.offlineTopic.arn,
      MAINTENANCE_SCHEDULE_GROUP: 'od-maintenance',
      MAINTENANCE_TARGET_ARN: 'arn:aws:lambda:us-east-1:000000000000:function:od-dispatch',
      MAINTENANCE_SCHEDULER_ROLE_ARN: 'arn:aws:iam::000000000000:role/od-scheduler',
    };
    const clock = { t: T0 };
    const now = () => clock.t;
    const scheduler = new SchedulerClient({});
    const schedulerMock = mockClient(scheduler);
    const api = apiHandler(() => ({ ...apiDepsFromEnv(env, { ...clients, scheduler }), now }));
    const call = async (method: string, path: string, body?: unknown) => {
      const out = (await api(
        {
          rawPath: path,
          requestContext: { http: { method } },
          ...(body !== undefined ? { body: JSON.stringify(body), isBase64Encoded: false } : {}),
        } as unknown as LambdaFunctionURLEvent,
        lambdaContext() as Context,
      )) as LambdaFunctionURLResult & { statusCode: number; body?: string };
      return { status: out.statusCode, body: out.body ? JSON.parse(out.body) : undefined };
    };
    const dispatch = dispatchHandler(() => ({ ...dispatchDepsFromEnv(env, clients), now }));
    const sweepDeps = { ...sweepDepsFromEnv(env, clients), now };
    const sweep = sweepHandler(() => sweepDeps);
    const sweepAt = async (t: number) => {
      clock.t = t;
      const Records = ['0', '1'].map((shard) => ({
        messageId: `job-${t}-${shard}`,
        receiptHandle: 'r',
        body: JSON.stringify({ shard }),
        attributes: { ApproximateReceiveCount: '1', SentTimestamp: String(t) },
        messageAttributes: {},
        eventSource: 'aws:sqs',
        eventSourceARN: jobs.arn,
      }));
      await sweep({ Records } as unknown as SQSEvent, lambdaContext() as Context);
    };

    const created = await call('POST', '/maintenance', {
      selector: { tags: { site: 'berlin' } },
      from: T0 + 60_000,
      until: T0 + 20 * 60_000,
      reason: 'rewiring',
    });
    expect(created).toMatchObject({ status: 201, body: { state: 'scheduled' } });
    const id = created.body.id as string;
    const inputs = schedulerMock.commandCalls(CreateScheduleCommand).map((c) => c.args[0].input);
    expect(inputs.map((i) => [i.GroupName, i.Target?.Arn, i.Target?.RoleArn, JSON.parse(i.Target!.Input!)])).toEqual([
      [
        'od-maintenance',
        env.MAINTENANCE_TARGET_ARN,
        env.MAINTENANCE_SCHEDULER_ROLE_ARN,
        { maintenance: { windowId: id, edge: 'start' } },
      ],
      [
        'od-maintenance',
        env.MAINTENANCE_TARGET_ARN,
        env.MAINTENANCE_SCHEDULER_ROLE_ARN,
        { maintenance: { windowId: id, edge: 'end' } },
      ],
    ]);

    const store = new DynamoDeviceStore(clients.dynamodb, { tableName });
    const held = uniqueName('held');
    await store.commit({
      deviceId: held,
      expect: { absent: true },
      state: {
        deviceType: 'tracker',
        ...TYPES.tracker,
        lastSeen: T0,
        status: 'ONLINE',
        since: T0,
        seq: 1,
        shard: '0',
        deadline: T0 + TRACKER,
        tags: { site: 'berlin' },
      },
      append: [],
      outboxShard: '0',
      outboxAt: T0,
    });
    // The start schedule fires: the dispatcher marks the window active.
    clock.t = T0 + 60_000;
    await dispatch({ maintenance: { windowId: id, edge: 'start' } }, lambdaContext() as Context);
    expect((await call('GET', '/maintenance')).body.windows).toMatchObject([{ id, state: 'active' }]);
    await sweepAt(T0 + TRACKER);
    expect(await store.get(held)).toMatchObject({ status: 'ONLINE' });
    // Cancelled early: its schedules go, and the held device is reported at the next look.
    expect((await call('DELETE', `/maintenance/${id}`)).status).toBe(200);
    expect(schedulerMock.commandCalls(DeleteScheduleCommand)).toHaveLength(2);
    await sweepAt(T0 + TRACKER + 300_000);
    expect(await store.get(held)).toMatchObject({ status: 'OFFLINE', since: T0 + TRACKER });
  });
});

describe('mass outage on DynamoDB Local and fauxqs', () => {
  it('one fleet.outage for the site, its devices marked cause=outage: a pager filtering on cause gets the incident only', async () => {
    const d = await detector();
    const pager = await createQueue(clients.sqs, uniqueName('fleet-pager'));
    drops.push(() => pager.delete());
    await clients.sns.send(
      new SubscribeCommand({
        TopicArn: stack.offlineTopic.arn,
        Protocol: 'sqs',
        Endpoint: pager.arn,
        Attributes: { RawMessageDelivery: 'true', FilterPolicy: JSON.stringify({ cause: [{ exists: false }] }) },
      }),
    );
    const config = { groupBy: 'site', minDevices: 5, windowMs: 300_000, holdMs: 120_000 };
    const topics = new EventTopics(clients.sns, { online: stack.onlineTopic.arn, offline: stack.offlineTopic.arn });
    const incidents = new DynamoOutageStore(clients.dynamodb, d.tableName);
    const publisher = new OutageAwarePublisher(topics, config, incidents, () => d.clock.t, 0);
    const site = uniqueName('site');
    const devices = Array.from({ length: 6 }, (_, i) => `${site}-d${i}`);
    await d.send(
      devices.map((deviceId) => ({ deviceId, site })),
      T0,
    );
    const evaluate = () =>
      evaluateOutages({
        config,
        deviceTypes: Object.keys(TYPES),
        store: incidents,
        offline: d.store,
        publisher: topics,
        now: () => d.clock.t,
      });
    for (let t = T0 + 30_000; t <= T0 + 6 * 60_000; t += 30_000) {
      await d.sweepAt(t, publisher);
      if (t % 60_000 === T0 % 60_000) await evaluate();
    }
    const delivered = (await drainQueue(clients.sqs, pager.url)).map((m) => ({
      body: JSON.parse(m.Body!) as { type: string; group?: string; count?: number; deviceId?: string },
      type: m.MessageAttributes?.type?.StringValue,
    }));
    const ours = delivered.filter((m) => m.body.group === site || devices.includes(m.body.deviceId ?? ''));
    expect(ours.map((m) => [m.type, m.body.group, m.body.count])).toEqual([['fleet.outage', site, 6]]);
    const all = (await drainQueue(clients.sqs, stack.offlineEvents.url))
      .map((m) => ({ body: JSON.parse(m.Body!) as DeviceEvent, cause: m.MessageAttributes?.cause?.StringValue }))
      .filter((m) => devices.includes(m.body.deviceId));
    expect(all.map((m) => m.cause)).toEqual(devices.map(() => 'outage'));
  });
});
