// The outbox stays bounded while publishing fails (issue 10 #8): the contract on the memory model, and a 24 h SNS
// outage with flapping devices in virtual time, through the real ingest and sweep cores.
import { describe, expect, it } from 'vitest';
import { spillKey } from '../../lambdas/core/table-schema.js';
import { MemoryDeviceStore } from '../../sim/memory/device-store.js';
import { deviceItemBytes } from '../../sim/memory/item-size.js';
import { deliveryViolations, runOutage } from '../support/outage.js';
import { outboxContract } from '../support/outbox-contract.js';

describe('bounded outbox (memory store)', () => {
  const store = new MemoryDeviceStore();
  let n = 0;
  outboxContract({
    store: () => store,
    id: (name) => `${name}-${++n}`,
    spillExists: async (deviceId, k) => store.spills.has(spillKey(deviceId, k)),
    deleteSpill: async (deviceId, k) => {
      store.spills.delete(spillKey(deviceId, k));
    },
    itemBytes: async (deviceId) => store.itemBytes(deviceId),
    pending: async (deviceId) => store.pendingEvents(deviceId),
  });
});

describe('a 24 h SNS outage with flapping devices (memory store, virtual time)', () => {
  it.each([
    ['without flap damping', false],
    ['with flap damping', true],
  ])(
    '%s: every committed event is published in seq order once SNS is back; the item and heartbeats stay bounded',
    async (_, damping) => {
      const store = new MemoryDeviceStore({ reportUnits: true });
      let spillUnits = 0;
      let spills = 0;
      store.meter = (write) => {
        if (write.kind === 'spill' && write.applied) {
          spills++;
          spillUnits += write.units;
        }
      };
      // Sizes straight from the model's items (not the store's own metering), so that this test measures any store.
      const sizeOf = (id: string) => {
        const item = store.items.get(id);
        return item ? deviceItemBytes(item) : 0;
      };
      const report = await runOutage({ store, devices: 12, hours: 24, damping, sizeOf });
      const violations = await deliveryViolations(report, store);
      expect(violations).toEqual([]);
      expect(report.errors).toEqual([]);
      const committed = [...report.committed.values()].reduce((n, events) => n + events.length, 0);
      console.info(
        `${damping ? 'damped' : 'undamped'} 24 h outage, ${report.devices.length} devices: ${report.transitions} ` +
          `transitions (${committed} events) committed, ${spills} spills; write units per transition ` +
          `${(report.transitionUnits / report.transitions).toFixed(2)} (spill transactions ${spillUnits}, ` +
          `${(spillUnits / Math.max(1, spills)).toFixed(1)} each); heartbeats ${report.heartbeats}, ` +
          `${(report.heartbeatUnits / report.heartbeats).toFixed(2)} units each, at most ${report.maxHeartbeatUnits}; ` +
          `largest device item ${report.maxItemBytes} B; recovered in ${report.recoveryTicks} sweep ticks`,
      );
      expect(report.maxItemBytes).toBeLessThan(2_048);
      expect(report.maxHeartbeatUnits).toBeLessThanOrEqual(2);
      // Enough happened to need spills: far more events than the item holds.
      expect(committed).toBeGreaterThan(report.devices.length * 4 * (damping ? 2 : 20));
      // Every event was published; the first publication of each is in seq order (checked above); duplicates only
      // where a relay was cut short, none in this run.
      expect(report.publisher.log).toHaveLength(committed);
    },
    120_000,
  );
});
