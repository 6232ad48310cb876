// Operator actions mixed into random traffic on the in-memory table: messages (duplicated, late), sweeps, crashes
// between commit and publish, policy overrides, mutes and decommissions, with flap damping on. After each run the
// counts (from the indexes) equal the true counts, the indexes hold exactly the devices they should, no offline
// event was detected during a mute, every offline event is at or after its own `lastSeen + timeout + precision`,
// nothing is published between a device.flapping event and the settled state, and the last event of every device
// is its final state.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type AdminDeps, forget, mute, setPolicy, unmute } from '../../lambdas/core/admin.js';
import type { DeviceEvent } from '../../lambdas/core/device.js';
import { ApiError } from '../../lambdas/core/errors.js';
import { MemoryDeviceStore } from '../../sim/memory/device-store.js';
import { runScenario, scenarioArb } from '../support/protocol-model.js';
import { harness, TYPES } from '../support/sweep-harness.js';

type Op =
  | { kind: 'send'; device: number; gapMs: number; twice: boolean }
  | { kind: 'sweep'; gapMs: number; crash: boolean }
  | { kind: 'mute'; device: number; forMs: number }
  | { kind: 'unmute'; device: number }
  | { kind: 'policy'; device: number; timeoutMs: number | undefined }
  | { kind: 'forget'; device: number };

const DEVICES = 4;
const device = fc.nat(DEVICES - 1);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('send' as const), device, gapMs: fc.nat(60_000), twice: fc.boolean() }),
  },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('sweep' as const), gapMs: fc.nat(120_000), crash: fc.boolean() }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('mute' as const), device, forMs: fc.integer({ min: 1, max: 400_000 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unmute' as const), device }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('policy' as const),
      device,
      timeoutMs: fc.option(fc.integer({ min: 1_000, max: 200_000 }), { nil: undefined }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('forget' as const), device }) },
);

describe('operator actions in random traffic (in-memory model)', () => {
  it('keeps counts, indexes, mutes and deadlines right', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 5, maxLength: 50 }), async (ops) => {
        // Flap damping on trackers, with a window short enough that busy devices flap often.
        const h = harness({
          types: { tracker: { ...TYPES.tracker, flap: { transitions: 3, windowMs: 200_000 } }, meter: TYPES.meter },
        });
        const deps: AdminDeps = {
          store: h.store,
          deviceTypes: h.config.deviceTypes,
          housekeepingTtlMs: 86_400_000,
          now: () => h.clock.t,
        };
        /** Per device, the times during which a mute was in force. */
        const muted = new Map<string, Array<[number, number]>>();
        /** Per device, the seq its tombstone kept at each decommission. */
        const retired = new Map<string, number[]>();
        const tolerate = async (action: Promise<unknown>) => {
          try {
            await action;
          } catch (error) {
            if (!(error instanceof ApiError && error.code === 'not-found')) throw error;
          }
        };
        for (const op of ops) {
          const id = `d${'device' in op ? op.device : 0}`;
          switch (op.kind) {
            case 'send':
              h.clock.t += op.gapMs;
              await h.send([id], h.clock.t, 'tracker');
              if (op.twice) await h.send([id], h.clock.t, 'tracker');
              break;
            case 'sweep': {
              h.clock.t += op.gapMs;
              let calls = 0;
              const crashing = {
                publish: async (events: Parameters<typeof h.events.publish>[0]) => {
                  if (op.crash && ++calls === 1) throw new Error('crash before publish');
                  return h.events.publish(events);
                },
              };
              for (const shard of h.shards) {
                await h.sweep(shard, op.crash ? { publisher: crashing } : {}).catch(() => undefined);
              }
              break;
            }
            case 'mute': {
              const until = h.clock.t + op.forMs;
              const before = h.store.items.get(id);
              await tolerate(mute(deps, id, until));
              if (before && before.status !== 'RETIRED') {
                muted.set(id, [...(muted.get(id) ?? []).map(endAt(h.clock.t)), [h.clock.t, until]]);
              }
              break;
            }
            case 'unmute':
              await tolerate(unmute(deps, id));
              muted.set(id, (muted.get(id) ?? []).map(endAt(h.clock.t)));
              break;
            case 'policy':
              await tolerate(
                setPolicy(deps, id, op.timeoutMs ? { timeoutMs: op.timeoutMs, precisionMs: 0 } : undefined),
              );
              break;
            case 'forget':
              await tolerate(forget(deps, id));
              if (h.store.items.get(id)?.status === 'RETIRED') {
                retired.set(id, [...(retired.get(id) ?? []), h.store.items.get(id)!.seq]);
              }
              muted.set(id, (muted.get(id) ?? []).map(endAt(h.clock.t)));
              break;
          }
        }
        // Everything left settles: past every timeout and mute, with the outbox re-published.
        for (const step of [500_000, 500_000, 20_000]) {
          h.clock.t += step;
          await h.sweepAll();
        }

        const truth = { tracker: { online: 0, offline: 0 }, meter: { online: 0, offline: 0 } };
        for (const item of h.store.items.values()) {
          if (item.status === 'ONLINE') truth[item.deviceType as keyof typeof truth].online++;
          if (item.status === 'OFFLINE') truth[item.deviceType as keyof typeof truth].offline++;
          expect(item.deadline !== undefined, `${item.deviceId} in the deadline index`).toBe(item.status === 'ONLINE');
          expect(item.offlineKey !== undefined, `${item.deviceId} in the offline index`).toBe(
            item.status === 'OFFLINE',
          );
          expect(item.outbox).toEqual([]);
          expect(item.flapping, `${item.deviceId} settled`).toBeUndefined();
        }
        expect(await h.store.counts(['tracker', 'meter'])).toEqual(truth);

        const first = new Map<string, unknown>();
        for (const event of h.events.events) {
          const seen = first.get(event.eventId);
          if (seen) expect(event).toEqual(seen);
          else first.set(event.eventId, event);
          if (event.type !== 'device.offline') continue;
          for (const [from, to] of muted.get(event.deviceId) ?? []) {
            expect(event.detectedAt > from && event.detectedAt < to, `${event.eventId} detected while muted`).toBe(
              false,
            );
          }
          expect(event.detectedAt).toBeGreaterThanOrEqual(event.lastSeen + event.timeoutMs);
        }
        // Event ids never repeat across a decommission: per device, seqs of distinct events strictly increase.
        const distinct = [...first.values()] as DeviceEvent[];
        for (const id of Array.from({ length: DEVICES }, (_, i) => `d${i}`)) {
          const events = distinct.filter((e) => e.deviceId === id);
          const seqs = events.map((e) => e.seq);
          expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
          // In seq order: after device.flapping, the next event is the settled state (or a new life's first event).
          const bySeq = [...events].sort((a, b) => a.seq - b.seq);
          bySeq.forEach((event, i) => {
            const next = bySeq[i + 1];
            if (event.type === 'device.flapping' && next) {
              const decommissioned = (retired.get(id) ?? []).some((seq) => seq >= event.seq && seq < next.seq);
              expect(next.settled || decommissioned, `${next.eventId} held`).toBeTruthy();
            }
          });
          const item = h.store.items.get(id);
          if (item?.status === 'OFFLINE') expect(bySeq.at(-1)?.type, `${id} last event`).toBe('device.offline');
        }
      }),
      { numRuns: 300 },
    );
  });

  it('counts equal the true counts after protocol runs with duplicates, reordering and crashes', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb({ maxDevices: 6, maxActions: 60 }), async (scenario) => {
        const store = new MemoryDeviceStore();
        await runScenario(scenario, store);
        const truth = new Map<string, { online: number; offline: number }>();
        for (const item of store.items.values()) {
          const counts = truth.get(item.deviceType) ?? { online: 0, offline: 0 };
          if (item.status === 'ONLINE') counts.online++;
          else counts.offline++;
          truth.set(item.deviceType, counts);
        }
        const counted = await store.counts([...truth.keys()]);
        expect(counted).toEqual(Object.fromEntries(truth));
      }),
      { numRuns: 200 },
    );
  });
});

/** A mute interval cut short at `t` (unmute, a new mute, a decommission). */
function endAt(t: number) {
  return ([from, to]: [number, number]): [number, number] => [from, Math.min(to, t)];
}
