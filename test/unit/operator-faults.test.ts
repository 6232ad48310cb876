// Faults around the operator features and the outbox, found by a hostile review (issue 10, items 2, 4, 5, 6), each
// reproduced through the real ingest and sweep cores on the in-memory table with an injected clock.
import { describe, expect, it } from 'vitest';
import { type AdminDeps, mute } from '../../lambdas/core/admin.js';
import type { DeviceEvent } from '../../lambdas/core/device.js';
import { ingestBatch } from '../../lambdas/core/ingest.js';
import { MAX_DEVICE_TYPES, parseDeviceTypes } from '../../lambdas/core/policy.js';
import { type Harness, harness, T0, TYPES } from '../support/sweep-harness.js';

const TRACKER = TYPES.tracker.timeoutMs;
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
