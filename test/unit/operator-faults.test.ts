// Faults around the operator features and the outbox, found by a hostile review (issue 10, items 2, 4, 5, 6), each
// reproduced through the real ingest and sweep cores on the in-memory table with an injected clock.
import { describe, expect, it } from 'vitest';
import type { DeviceEvent } from '../../lambdas/core/device.js';
import { ingestBatch } from '../../lambdas/core/ingest.js';
import { harness, T0, TYPES } from '../support/sweep-harness.js';

const TRACKER = TYPES.tracker.timeoutMs;

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
