// Faults around the operator features and the outbox, found by a hostile review (issue 10, items 2, 4, 5, 6), each
// reproduced through the real ingest and sweep cores on the in-memory table with an injected clock.
import { describe, expect, it } from 'vitest';
import { type AdminDeps, forget, mute, setPolicy } from '../../lambdas/core/admin.js';
import type { DeviceEvent } from '../../lambdas/core/device.js';
import { ingestBatch } from '../../lambdas/core/ingest.js';
import { MAX_DEVICE_TYPES, parseDeviceTypes } from '../../lambdas/core/policy.js';
import { type Harness, harness, T0, TYPES } from '../support/sweep-harness.js';

const TRACKER = TYPES.tracker.timeoutMs;
const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function admin(h: Harness): AdminDeps {
  return { store: h.store, deviceTypes: h.config.deviceTypes, housekeepingTtlMs: 30 * DAY, now: () => h.clock.t };
}

/** Sweeps every shard at `t` (the cutoff is the clock: no watermark partitions). */
async function sweepAt(h: Harness, t: number) {
  h.clock.t = t;
  await h.sweepAll();
}

const summary = (h: Harness, deviceId: string) =>
  h.events.of(deviceId).map((e) => [e.type, e.seq, e.since - T0, e.detectedAt - T0] as const);

describe('operator actions racing a warm coalescing cache (issue 10 #2)', () => {
  /** A type with a precision longer than the override's whole window below. */
  const SENSOR = { timeoutMs: 300_000, precisionMs: 600_000 };
  const sensors = () => harness({ types: { sensor: SENSOR, tracker: TYPES.tracker } });
  const OVERRIDE = { timeoutMs: 90_000, precisionMs: 0 };

  it('a shorter policy: a device that keeps sending through a container with the old policy cached is never offline', async () => {
    const h = sensors();
    await h.send(['d'], T0, 'sensor'); // this container caches the sensor policy
    h.clock.t = T0 + 30_000;
    await setPolicy(admin(h), 'd', OVERRIDE);
    for (let t = T0 + MIN; t <= T0 + 20 * MIN; t += MIN) {
      h.clock.t = t;
      await h.send(['d'], t, 'sensor');
      await sweepAt(h, t + 30_000);
    }
    expect(summary(h, 'd')).toEqual([['device.online', 1, 0, 0]]);
    expect(h.store.items.get('d')).toMatchObject({ status: 'ONLINE', lastSeen: T0 + 20 * MIN });
    // Silent from then on: reported by the override, with the real lastSeen.
    await sweepAt(h, T0 + 20 * MIN + OVERRIDE.timeoutMs);
    expect(h.events.of('d', 'device.offline')).toEqual([
      expect.objectContaining({ seq: 2, since: T0 + 20 * MIN + OVERRIDE.timeoutMs, lastSeen: T0 + 20 * MIN }),
    ]);
  });

  it('a silent device is reported by the new policy from the horizon on, with its real lastSeen', async () => {
    const h = sensors();
    await h.send(['d'], T0, 'sensor');
    h.clock.t = T0 + 30_000;
    await setPolicy(admin(h), 'd', OVERRIDE);
    await sweepAt(h, T0 + OVERRIDE.timeoutMs);
    // Every message the stale cache may still skip entered by lastSeen + the old precision (the skip horizon), so
    // the device is judged as if last seen then.
    expect(h.store.items.get('d')!.skipHorizon).toBe(T0 + SENSOR.precisionMs);
    expect(h.store.items.get('d')).toMatchObject({ status: 'ONLINE', deadline: T0 + 690_000 });
    await sweepAt(h, T0 + 690_000 - 1);
    expect(h.events.of('d', 'device.offline')).toEqual([]);
    await sweepAt(h, T0 + 690_000);
    expect(h.events.of('d', 'device.offline')).toEqual([
      expect.objectContaining({ seq: 2, since: T0 + 690_000, lastSeen: T0, timeoutMs: OVERRIDE.timeoutMs }),
    ]);
  });

  it('decommission: messages a stale cache may skip count as entered before it, on every container alike', async () => {
    for (const container of ['warm', 'cold'] as const) {
      const h = sensors();
      await h.send(['d'], T0, 'sensor');
      h.clock.t = T0 + 30_000;
      await forget(admin(h), 'd');
      for (let t = T0 + MIN; t <= T0 + 10 * MIN; t += MIN) {
        if (container === 'cold') h.freshCache();
        await h.send(['d'], t, 'sensor');
      }
      // Every accepted message is reflected in the stored lastSeen (I4), skipped or not.
      expect(h.store.items.get('d'), container).toMatchObject({ status: 'RETIRED', lastSeen: T0 + 10 * MIN });
      await h.send(['d'], T0 + 11 * MIN, 'sensor');
      expect(
        h.events.of('d').map((e) => [e.eventId, e.since - T0]),
        container,
      ).toEqual([
        ['d#1', 0],
        ['d#2', 11 * MIN], // registered anew with its first message after lastSeen + precision
      ]);
    }
  });

  it('a mute keeps the device item at least until the mute ends plus the time a silent device waits', async () => {
    const h = harness();
    await h.send(['d'], T0, 'tracker');
    expect(h.store.items.get('d')!.expiresAt).toBe(T0 + h.config.housekeepingTtlMs);
    const until = T0 + h.config.housekeepingTtlMs + 7 * DAY;
    await mute(admin(h), 'd', until);
    expect(h.store.items.get('d')!.expiresAt).toBe(until + TRACKER);
    // A message's write sets the expiry from its own time, never short of the mute's need: through a container that
    // did not know of the mute (one more write), then through one that does (none).
    h.freshCache();
    await h.send(['d'], T0 + DAY, 'tracker');
    expect(h.store.items.get('d')).toMatchObject({ lastSeen: T0 + DAY, expiresAt: until + TRACKER });
    const commits = h.store.calls.commit;
    await h.send(['d'], T0 + DAY + MIN, 'tracker');
    expect(h.store.calls.commit).toBe(commits);
    expect(h.store.items.get('d')).toMatchObject({ lastSeen: T0 + DAY + MIN, expiresAt: until + TRACKER });
    await mute(admin(h), 'd', T0 + 2 * DAY); // a mute within the usual life leaves the expiry as it is
    expect(h.store.items.get('d')!.expiresAt).toBe(until + TRACKER);
  });

  it('a muted offline device that comes back keeps its item until the mute has ended and been reported', async () => {
    const h = harness();
    await h.send(['d'], T0, 'tracker');
    await sweepAt(h, T0 + TRACKER);
    const until = T0 + h.config.housekeepingTtlMs + 7 * DAY;
    await mute(admin(h), 'd', until);
    await h.send(['d'], T0 + DAY, 'tracker'); // back online: the transition's write keeps the item too
    expect(h.store.items.get('d')).toMatchObject({ status: 'ONLINE', expiresAt: until + TRACKER });
  });
});

describe('shortening a mute (issue 10 #4)', () => {
  it('moves the deadline of a device parked at the old mute end back, so it is reported when the new one ends', async () => {
    const h = harness();
    await h.send(['d'], T0, 'tracker');
    await mute(admin(h), 'd', T0 + 7 * DAY);
    await sweepAt(h, T0 + TRACKER); // silent, muted: parked at the mute's end
    expect(h.store.items.get('d')!.deadline).toBe(T0 + 7 * DAY);
    h.clock.t = T0 + 100_000;
    await mute(admin(h), 'd', T0 + HOUR);
    await sweepAt(h, T0 + 110_000); // found again: parked at the new mute's end
    await sweepAt(h, T0 + HOUR - 1);
    expect(h.events.of('d', 'device.offline')).toEqual([]);
    await sweepAt(h, T0 + HOUR);
    expect(summary(h, 'd')).toEqual([
      ['device.online', 1, 0, 0],
      ['device.offline', 2, TRACKER, HOUR],
    ]);
  });
});

describe('flap damping with a failed publish (issue 10 #5)', () => {
  const WINDOW = 300_000;
  const flappy = () =>
    harness({
      types: { tracker: { ...TYPES.tracker, flap: { transitions: 3, windowMs: WINDOW } }, meter: TYPES.meter },
    });
  const failing = { publish: async (events: DeviceEvent[]) => ({ failed: events }) };

  it('re-publishes device.flapping until it is out, then clears it, although a held transition raised seq since', async () => {
    const h = flappy();
    await h.send(['d'], T0, 'tracker');
    h.clock.t = T0 + TRACKER;
    await h.sweepAll(); // offline#2
    // Back at 100 s: the third transition within W, device.flapping (d#3) committed, its publish fails.
    h.clock.t = T0 + 100_000;
    await ingestBatch([h.record('d', T0 + 100_000, 'tracker')], h.ingestDeps({ publisher: failing }), {
      ordered: false,
    });
    expect(h.store.items.get('d')!.outbox.map((e) => e.eventId)).toEqual(['d#3']);
    // Silent: offline at 190 s, held by the damping (seq 4, no event); then a sweep every 10 s until it settles.
    for (let t = T0 + 190_000; t < T0 + 190_000 + WINDOW; t += 10_000) {
      h.clock.t = t;
      await h.sweepAll();
    }
    expect(h.events.of('d', 'device.flapping').map((e) => e.eventId)).toEqual(['d#3']);
    expect(h.store.items.get('d')).toMatchObject({ status: 'OFFLINE', seq: 4, outbox: [] });
  });
});

describe('device types (issue 10 #6)', () => {
  it('refuses more device types than the condition of an untyped message can name', () => {
    const types = (n: number) =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`t${i}`, { timeoutMs: 1_000 }]));
    expect(Object.keys(parseDeviceTypes(types(MAX_DEVICE_TYPES), 't0').types)).toHaveLength(MAX_DEVICE_TYPES);
    expect(() => parseDeviceTypes(types(MAX_DEVICE_TYPES + 1), 't0')).toThrow(
      expect.objectContaining({ name: 'ConfigError', message: expect.stringMatching(/at most 32 are supported/) }),
    );
  });
});
