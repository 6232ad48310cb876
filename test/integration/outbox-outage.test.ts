// An SNS outage with flapping devices on DynamoDB Local (issue 10 #8), smaller than the unit test's: the real ingest
// and sweep cores through the adapter, in virtual time. Write units are the engine's (ReturnConsumedCapacity), item
// sizes are measured on the stored items.
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDeviceStore } from '../../lambdas/adapters/device-store.js';
import { KEY } from '../../lambdas/core/table-schema.js';
import { createDeviceTable } from '../../sim/engines/resources.js';
import { itemSize } from '../../sim/memory/item-size.js';
import { testClients, uniqueName } from '../support/aws.js';
import { deliveryViolations, HOUR, MIN, runOutage } from '../support/outage.js';

const clients = testClients();
const tableName = uniqueName('outage');
let drop: () => Promise<void>;
const doc = DynamoDBDocumentClient.from(clients.dynamodb);

beforeAll(async () => {
  drop = await createDeviceTable(clients.dynamodb, tableName);
});
afterAll(() => drop());

/** Slow endpoints (LocalStack, ~20 ms a call) get a shorter outage. */
const HOURS = process.env.AWS_ENDPOINT_URL ? 3 : 12;

describe('an SNS outage with flapping devices on DynamoDB Local', () => {
  it.each([
    ['without flap damping', false],
    ['with flap damping', true],
  ])(
    `%s (${HOURS} h): everything committed is published in seq order after; item and heartbeats stay bounded`,
    async (_, damping) => {
      const store = new DynamoDeviceStore(clients.dynamodb, { tableName });
      const report = await runOutage({
        store,
        devices: 2,
        hours: HOURS,
        damping,
        stepMs: MIN,
        shardCount: 1,
        sampleEveryMs: HOUR / 4,
        itemBytes: async (deviceId) => {
          const out = await doc.send(
            new GetCommand({ TableName: tableName, Key: { [KEY]: deviceId }, ConsistentRead: true }),
          );
          return out.Item ? itemSize(out.Item) : 0;
        },
        ids: (i) => `${damping ? 'damped' : 'undamped'}-${i}`,
      });
      expect(await deliveryViolations(report, store)).toEqual([]);
      expect(report.errors).toEqual([]);
      const committed = [...report.committed.values()].reduce((n, events) => n + events.length, 0);
      console.info(
        `DynamoDB Local, ${damping ? 'damped' : 'undamped'} ${HOURS} h outage, ${report.devices.length} devices: ` +
          `${report.transitions} transitions (${committed} events); write units per transition as reported ` +
          `${(report.transitionUnits / report.transitions).toFixed(2)}; heartbeats ${report.heartbeats}, ` +
          `${(report.heartbeatUnits / report.heartbeats).toFixed(2)} units each, at most ${report.maxHeartbeatUnits}; ` +
          `largest device item sampled ${report.maxItemBytes} B; recovered in ${report.recoveryTicks} sweep ticks`,
      );
      expect(report.maxItemBytes).toBeLessThan(2_048);
      expect(report.maxHeartbeatUnits).toBeLessThanOrEqual(2);
      expect(committed).toBeGreaterThan(report.devices.length * 4 * (damping ? 1 : 5));
    },
    600_000,
  );
});
