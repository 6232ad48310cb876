// The outbox contract's setup for the DynamoDB adapter on any engine (DynamoDB Local, dynalite, an AWS endpoint):
// what the contract reads and removes behind the store's back, straight on the table.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { type DynamoDeviceStore, toState } from '../../lambdas/adapters/device-store.js';
import type { DeviceEvent } from '../../lambdas/core/device.js';
import { KEY, SPILL, spillKey } from '../../lambdas/core/table-schema.js';
import { itemSize } from '../../sim/memory/item-size.js';
import type { OutboxContractSetup } from './outbox-contract.js';

export function dynamoOutboxSetup(
  client: () => DynamoDBClient,
  tableName: string,
  store: () => DynamoDeviceStore,
): OutboxContractSetup {
  const doc = () => DynamoDBDocumentClient.from(client());
  const raw = async (key: string) =>
    (await doc().send(new GetCommand({ TableName: tableName, Key: { [KEY]: key }, ConsistentRead: true }))).Item;
  let n = 0;
  return {
    store,
    id: (name) => `${name}-${++n}`,
    spillExists: async (deviceId, k) => (await raw(spillKey(deviceId, k)))?.[SPILL.events] !== undefined,
    deleteSpill: async (deviceId, k) => {
      await doc().send(new DeleteCommand({ TableName: tableName, Key: { [KEY]: spillKey(deviceId, k) } }));
    },
    itemBytes: async (deviceId) => itemSize((await raw(deviceId)) ?? {}),
    pending: async (deviceId) => {
      const item = await raw(deviceId);
      if (!item) return [];
      const state = toState(item);
      const { from, to } = state.outboxSpills ?? { from: 0, to: 0 };
      const spilled: DeviceEvent[] = [];
      for (let k = from; k < to; k++) {
        const spill = await raw(spillKey(deviceId, k));
        spilled.push(
          ...((spill?.[SPILL.events] as string[] | undefined) ?? []).map((e) => JSON.parse(e) as DeviceEvent),
        );
      }
      return [...spilled, ...state.outbox];
    },
  };
}
