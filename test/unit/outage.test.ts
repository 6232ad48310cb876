// One incident for a mass outage, through the real ingest and sweep cores on the in-memory table with an injected
// clock: the dispatcher's evaluation counts from the offline index, the publishers hold and mark the group's offline
// events. The property test runs it under duplicate sweeps, failing publishes and crashing evaluations.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DeviceEvent } from '../../lambdas/core/device.js';
import {
  evaluateOutages,
  OutageAwarePublisher,
  type OutageConfig,
  type OutageDeps,
  parseOutageConfig,
} from '../../lambdas/core/outage.js';
import type { EventPublisher } from '../../lambdas/core/ports.js';
import { random } from '../../sim/random.js';
import { FleetLog, MemoryOutageStore } from '../support/memory-outages.js';
import { harness, T0, TYPES } from '../support/sweep-harness.js';

const MIN = 60_000;
const TRACKER = TYPES.tracker.timeoutMs;
const CONFIG: OutageConfig = { groupBy: 'deviceType', minDevices: 10, windowMs: 5 * MIN, holdMs: 2 * MIN };

function detector(config = CONFIG, publisherOf: (inner: EventPublisher) => EventPublisher = (p) => p) {
  const h = harness({ shardCount: 4 });
  const incidents = new MemoryOutageStore();
  const fleet = new FleetLog();
  const now = () => h.clock.t;
  const publisher = new OutageAwarePublisher(publisherOf(h.events), config, incidents, now, 0);
  const outage: OutageDeps = {
    config,
    deviceTypes: Object.keys(TYPES),
    store: incidents,
    offline: h.store,
    publisher: fleet,
    now,
    newId: (() => {
      let n = 0;
      return () => `i${++n}`;
    })(),
  };
  /** Every 10 s a sweep of every shard, every minute an evaluation, up to `until`; `alive` keep sending. */
  const run = async (from: number, until: number, alive: () => string[][]) => {
    for (let t = from; t <= until; t += 10_000) {
      h.clock.t = t;
      const [trackers = [], meters = []] = alive();
      if ((t - T0) % 30_000 === 0) {
        await h.send(trackers, t, 'tracker');
        await h.send(meters, t, 'meter');
      }
      await h.sweepAll({ publisher });
      if ((t - T0) % MIN === 0) await evaluateOutages(outage);
    }
  };
  return { h, incidents, fleet, outage, run, publisher };
}

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('one incident for a mass outage', () => {
  it('12 trackers silent at once: one fleet.outage, their offline events held and marked, fleet.recovered when back', async () => {
    const d = detector();
    const [trackers, meters] = [ids('t', 30), ids('m', 30)];
    const silent = trackers.slice(0, 12);
    await d.h.send(trackers, T0, 'tracker');
    await d.h.send(meters, T0, 'meter');
    let back = false;
    await d.run(T0 + 10_000, T0 + 8 * MIN, () => [back ? trackers : trackers.slice(12), meters]);
    const outages = d.fleet.events.filter((e) => e.type === 'fleet.outage');
    expect(outages).toMatchObject([{ group: 'tracker', groupBy: 'deviceType', count: 12, incidentId: 'i1' }]);
    const offline = d.h.events.events.filter((e) => e.type === 'device.offline');
    expect(offline.map((e) => e.deviceId).sort()).toEqual([...silent].sort());
    for (const e of offline) {
      expect(e).toMatchObject({ cause: 'outage', incidentId: 'i1' });
    }
    // Held until the hold after their commit, not published before.
    const published = d.h.events.events.length;
    expect(published).toBeGreaterThan(0);

    back = true;
    await d.run(T0 + 8 * MIN + 10_000, T0 + 14 * MIN, () => [trackers, meters]);
    expect(d.fleet.events.map((e) => [e.type, e.incidentId])).toEqual([
      ['fleet.outage', 'i1'],
      ['fleet.recovered', 'i1'],
    ]);
    expect(d.fleet.events[1]).toMatchObject({ count: 0 });
  });

  it('an outage of our own pipeline opens none: the stalled watermark holds the sweep, nothing is committed offline', async () => {
    const d = detector();
    const trackers = ids('t', 30);
    await d.h.send(trackers, T0, 'tracker');
    // Ingestion stalls for 10 minutes: no message reaches the table, and the watermark stays where it was.
    d.h.watermarks.set(T0 + 10_000);
    await d.run(T0 + 10_000, T0 + 10 * MIN, () => [[], []]);
    expect(d.h.events.events.filter((e) => e.type === 'device.offline')).toEqual([]);
    expect(d.fleet.events).toEqual([]);
  });

  it('fewer than minDevices silent: no incident, the events go out unmarked once the hold is over', async () => {
    const d = detector();
    const trackers = ids('t', 30);
    await d.h.send(trackers, T0, 'tracker');
    await d.run(T0 + 10_000, T0 + 8 * MIN, () => [trackers.slice(5), []]);
    expect(d.fleet.events).toEqual([]);
    const offline = d.h.events.events.filter((e) => e.type === 'device.offline');
    expect(offline).toHaveLength(5);
    for (const e of offline) {
      expect(e.cause).toBeUndefined();
      expect(e.detectedAt).toBe(T0 + TRACKER);
    }
  });

  it('holds an offline event until its hold is over: held is not a publish failure', async () => {
    const d = detector();
    const at = T0 + TRACKER;
    d.h.clock.t = at + CONFIG.holdMs - 1;
    const event = {
      eventId: 'a#2',
      type: 'device.offline' as const,
      deviceId: 'a',
      deviceType: 'tracker',
      seq: 2,
      since: at,
      lastSeen: T0,
      timeoutMs: TRACKER,
      detectedAt: at,
    };
    expect(await d.publisher.publish([event])).toEqual({ failed: [], held: [event] });
    d.h.clock.t = at + CONFIG.holdMs;
    expect(await d.publisher.publish([event])).toEqual({ failed: [], held: [] });
  });

  it('refuses a bad configuration with the setting named', () => {
    expect(() => parseOutageConfig({ groupBy: 'site' }, 'OUTAGE_DETECTION')).toThrow(/minDevices/);
    expect(() => parseOutageConfig({ groupBy: 'a b', minDevices: 5 }, 'OUTAGE_DETECTION')).toThrow(/groupBy/);
    expect(() => parseOutageConfig({ groupBy: 'site', minDevices: 5, holdSeconds: 10 }, 'X')).toThrow(/holdSeconds/);
    expect(parseOutageConfig({ groupBy: 'site', minDevices: 5 }, 'X')).toEqual({
      groupBy: 'site',
      minDevices: 5,
      windowMs: 300_000,
      holdMs: 120_000,
    });
  });
});

describe('property: outage counts and incidents under duplicates and crashes', () => {
  it('each evaluation counts exactly the devices committed offline in the window; one fleet.outage per outage', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          silentTrackers: fc.integer({ min: 0, max: 20 }),
          silentMeters: fc.integer({ min: 0, max: 20 }),
          publishFails: fc.double({ min: 0, max: 0.5, noNaN: true }),
          evaluationCrashes: fc.double({ min: 0, max: 0.5, noNaN: true }),
          duplicateSweeps: fc.boolean(),
          seed: fc.integer(),
        }),
        async (c) => {
          const rng = random(c.seed); // seeded, so that a failing case replays
          // A publisher that fails some events: they stay in the outbox and are re-published.
          const flaky = (inner: EventPublisher): EventPublisher => ({
            publish: async (events: DeviceEvent[]) => {
              const failed = events.filter(() => rng() < c.publishFails);
              const ok = events.filter((e) => !failed.includes(e));
              await inner.publish(ok);
              return { failed };
            },
          });
          // The window covers the whole run: the clean evaluations at its end still see every outage.
          const config = { ...CONFIG, windowMs: 30 * MIN };
          const d = detector(config, flaky);
          const trackers = ids('t', 25);
          const meters = ids('m', 25);
          await d.h.send(trackers, T0, 'tracker');
          await d.h.send(meters, T0, 'meter');
          const store = d.incidents;
          let crashes = c.evaluationCrashes;
          // Evaluations that crash before or after each of their writes.
          const crashing = {
            ...d.outage,
            store: {
              read: () => store.read(),
              write: async (incidents: Parameters<typeof store.write>[0], version: number) => {
                if (rng() < crashes) throw new Error('crash before write');
                const ok = await store.write(incidents, version);
                if (rng() < crashes) throw new Error('crash after write');
                return ok;
              },
            },
          };
          const silent = new Set([...trackers.slice(0, c.silentTrackers), ...meters.slice(0, c.silentMeters)]);
          for (let t = T0 + 10_000; t <= T0 + 12 * MIN; t += 10_000) {
            d.h.clock.t = t;
            if ((t - T0) % 30_000 === 0) {
              await d.h.send(
                trackers.filter((id) => !silent.has(id)),
                t,
                'tracker',
              );
              await d.h.send(
                meters.filter((id) => !silent.has(id)),
                t,
                'meter',
              );
            }
            await d.h.sweepAll({ publisher: d.publisher });
            if (c.duplicateSweeps) await d.h.sweepAll({ publisher: d.publisher });
            if ((t - T0) % MIN === 0) {
              const evaluation = await evaluateOutages(crashing).catch(() => undefined);
              if (!evaluation) continue;
              // The count is the committed state's, whatever happened before.
              for (const type of ['tracker', 'meter']) {
                const committed = [...d.h.store.items.values()].filter(
                  (item) => item.status === 'OFFLINE' && item.deviceType === type && item.since >= t - config.windowMs,
                ).length;
                expect(evaluation.recent[type] ?? 0).toBe(committed);
              }
            }
          }
          // Then the evaluations stop crashing.
          crashes = 0;
          for (const t of [T0 + 13 * MIN, T0 + 14 * MIN]) {
            d.h.clock.t = t;
            await evaluateOutages(crashing);
          }
          // Every silent device was reported; an outage per group at or above the threshold, announced once by id.
          const reported = new Set(d.h.events.events.filter((e) => e.type === 'device.offline').map((e) => e.deviceId));
          expect(reported).toEqual(silent);
          const outages = new Map<string, Set<string>>();
          for (const e of d.fleet.events.filter((e) => e.type === 'fleet.outage')) {
            outages.set(e.group, (outages.get(e.group) ?? new Set()).add(e.eventId));
          }
          for (const [type, count] of [
            ['tracker', c.silentTrackers],
            ['meter', c.silentMeters],
          ] as const) {
            expect(outages.get(type)?.size ?? 0, type).toBe(count >= CONFIG.minDevices ? 1 : 0);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});
