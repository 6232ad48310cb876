// Property tests of the ingest protocol on the in-memory model: any order of delivery, any duplicates, several
// Lambda containers with their own caches, and devices going offline in between (committed the way the sweep
// commits them, at a cutoff no later than the watermark).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type DeviceEvent, transitionEvent } from '../../lambdas/core/device.js';
import { DeviceCache } from '../../lambdas/core/device-cache.js';
import { ingestBatch } from '../../lambdas/core/ingest.js';
import { relayOutboxes } from '../../lambdas/core/outbox.js';
import { offlineAt } from '../../lambdas/core/policy.js';
import type { MemoryDeviceStore } from '../../sim/memory/device-store.js';
import { memoryDeps, type RecordingPublisher, record, TYPES } from '../support/ingest-fixtures.js';

const DEVICES = ['a', 'b', 'c'] as const;
const typeOf = (device: string) => (device === 'a' ? 'tracker' : 'meter') as keyof typeof TYPES;

async function flipExpired(store: MemoryDeviceStore, publisher: RecordingPublisher, cutoff: number) {
  const committed = [];
  for (const item of store.items.values()) {
    if (item.status !== 'ONLINE' || offlineAt(item.lastSeen, item) > cutoff) continue;
    const state = { ...item, status: 'OFFLINE' as const, since: offlineAt(item.lastSeen, item), seq: item.seq + 1 };
    const out = await store.commit({
      deviceId: item.deviceId,
      expect: { seq: item.seq, status: 'ONLINE', lastSeenAtMost: item.lastSeen },
      state: { ...state, shard: undefined, deadline: undefined },
      append: [transitionEvent('device.offline', state, cutoff)],
      outboxShard: '0',
      outboxAt: cutoff,
    });
    if (out.applied) committed.push(out.after);
  }
  await relayOutboxes(committed, store, publisher);
  return committed.map((c) => c.deviceId);
}

const scenario = fc.record({
  messages: fc.array(fc.record({ device: fc.constantFrom(...DEVICES), gap: fc.integer({ min: 0, max: 200_000 }) }), {
    minLength: 1,
    maxLength: 40,
  }),
  chunkSizes: fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 40, maxLength: 40 }),
  shuffleSeeds: fc.array(fc.integer(), { minLength: 40, maxLength: 40 }),
  duplicateEvery: fc.integer({ min: 2, max: 10 }),
  containers: fc.integer({ min: 1, max: 3 }),
  withTypes: fc.boolean(),
});

describe('ingest protocol (property)', () => {
  it('keeps lastSeen at the newest accepted time, never implies offline early, and alternates events', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const { deps, store, publisher } = memoryDeps();
        const caches = Array.from({ length: s.containers }, () => new DeviceCache(100));
        let t = 1_000_000;
        const timeline = s.messages.map((m) => {
          t += m.gap;
          return { device: m.device, enteredAt: t };
        });
        const newest = new Map<string, number>();
        let next = 0;
        for (let step = 0; next < timeline.length; step++) {
          const size = s.chunkSizes[step % s.chunkSizes.length]!;
          const chunk = timeline.slice(next, next + size);
          next += chunk.length;
          // Redeliver an earlier message now and then (SQS at-least-once), and shuffle the chunk (no order).
          if (step % s.duplicateEvery === 1 && next > size) chunk.push(timeline[(next * 7) % (next - size)]!);
          const seed = s.shuffleSeeds[step % s.shuffleSeeds.length]!;
          chunk.sort((x, y) => ((x.enteredAt * 31 + seed) % 97) - ((y.enteredAt * 31 + seed) % 97));
          const records = chunk.map((m) =>
            record({ deviceId: m.device, ...(s.withTypes ? { deviceType: typeOf(m.device) } : {}) }, m.enteredAt),
          );
          const cache = caches[step % caches.length]!;
          const result = await ingestBatch(records, { ...deps, cache }, { ordered: false });
          expect(result.failedRecordIds.size).toBe(0);
          for (const m of chunk) newest.set(m.device, Math.max(newest.get(m.device) ?? 0, m.enteredAt));

          // Everything that entered before the next unprocessed message has been written: the watermark.
          const watermark = next < timeline.length ? timeline[next]!.enteredAt : t + 10 * 3600_000;
          const flipped = await flipExpired(store, publisher, watermark);
          for (const device of flipped) {
            const item = store.items.get(device)!;
            // I1: offline only once the newest real message is a full timeout old at the cutoff.
            expect(newest.get(device)! + item.timeoutMs).toBeLessThanOrEqual(watermark);
          }
          for (const item of store.items.values()) {
            const policy = s.withTypes ? TYPES[typeOf(item.deviceId)] : TYPES.tracker;
            expect(item.lastSeen).toBeLessThanOrEqual(newest.get(item.deviceId)!);
            if (item.status === 'ONLINE') {
              // Coalescing keeps the stored time within the precision of the newest message...
              expect(item.lastSeen).toBeGreaterThanOrEqual(newest.get(item.deviceId)! - policy.precisionMs);
              // ...and the index deadline is never later than the stored state allows (no missed offline).
              expect(item.deadline).toBeLessThanOrEqual(offlineAt(item.lastSeen, item));
            }
          }
        }
        // I3: per device, events alternate online/offline from first sight, with consecutive seqs.
        const byDevice = new Map<string, DeviceEvent[]>();
        for (const e of publisher.events) byDevice.set(e.deviceId, [...(byDevice.get(e.deviceId) ?? []), e]);
        for (const events of byDevice.values()) {
          events.forEach((e, i) => {
            expect(e.seq).toBe(i + 1);
            expect(e.type).toBe(i % 2 === 0 ? 'device.online' : 'device.offline');
          });
        }
        for (const item of store.items.values()) expect(item.outbox).toEqual([]);
      }),
      { numRuns: 2000 },
    );
  });
});
