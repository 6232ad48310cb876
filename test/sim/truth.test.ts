// The runs' judge (sim/truth.ts): a silence is missed only when a sweep whose cutoff passed the device's
// deadline completed before the device came back and no offline event reported it. A slow machine (no sweep got
// there yet when the run ends) is lateness, never a miss.
import { describe, expect, it } from 'vitest';
import type { DeviceEvent } from '../../lambdas/core/device.js';
import { shardOf } from '../../lambdas/core/shard.js';
import type { CompletedSweep } from '../../sim/observe.js';
import { Truth } from '../../sim/truth.js';

const T0 = 1_800_000_000_000;
const TIMEOUT = 5_000;
const PRECISION = 2_000;
const SHARDS = 4;
const ID = 'meter-007';
const SHARD = shardOf(ID, SHARDS);
const OTHER_SHARD = String((Number(SHARD) + 1) % SHARDS);

function truth() {
  const t = new Truth({
    policies: { meter: { timeoutMs: TIMEOUT, precisionMs: PRECISION } },
    tickMs: 1_000,
    toleranceMs: 3_000,
    slackMs: 2_000,
    startedAt: T0,
    shardCount: SHARDS,
  });
  // Heartbeats every second up to T0 + 10 s (the send call took 20 ms each), then silence.
  for (let at = T0; at <= T0 + 10_000; at += 1_000) t.sent(ID, 'meter', at, 20);
  return t;
}
const LAST = T0 + 10_000;
/** The latest the detector's deadline can be: the last entry as late as its send call allows. */
const DEADLINE = LAST + 20 + TIMEOUT + PRECISION;
/** The design's bound: timeout + precision + tick + tolerance + slack. */
const DESIGN_DUE = LAST + TIMEOUT + PRECISION + 1_000 + 3_000 + 2_000;

const sweep = (cutoff: number, completedAt: number, shard = SHARD): CompletedSweep => ({ shard, cutoff, completedAt });
const offline = (detectedAt: number, seq = 2): DeviceEvent => ({
  eventId: `${ID}#${seq}`,
  type: 'device.offline',
  deviceId: ID,
  deviceType: 'meter',
  seq,
  since: LAST + TIMEOUT + PRECISION,
  lastSeen: LAST,
  timeoutMs: TIMEOUT,
  detectedAt,
});

describe('the judge of local runs', () => {
  it('a sweep whose cutoff passed the deadline completed without reporting the device: missed', () => {
    const t = truth();
    const summary = t.finish(T0 + 60_000, [sweep(DEADLINE - 1, DEADLINE + 500), sweep(DEADLINE, DEADLINE + 900)]);
    expect(summary).toMatchObject({ missedOffline: 1, requiredDetections: 1, overdueDetections: 0 });
    expect(summary.findings[0]!.detail).toMatch(
      /the sweep of shard \d+ by cutoff .* completed at .* without reporting it/,
    );
  });

  it('the run ends before any sweep reached the deadline (a busy machine): not missed, overdue', () => {
    const t = truth();
    // The design's bound passed 144 ms before the end; the sweeps are behind, their cutoffs short of the deadline.
    const end = DESIGN_DUE + 144;
    const summary = t.finish(end, [sweep(DEADLINE - 3_000, end - 1_000), sweep(DEADLINE - 1, end - 10)]);
    expect(summary).toMatchObject({
      missedOffline: 0,
      requiredDetections: 0,
      overdueDetections: 1,
      overdueMaxMs: 144,
    });
  });

  it('only a sweep of the device’s own shard judges it', () => {
    const summary = truth().finish(T0 + 60_000, [sweep(DEADLINE + 5_000, DEADLINE + 6_000, OTHER_SHARD)]);
    expect(summary).toMatchObject({ missedOffline: 0, requiredDetections: 0, overdueDetections: 1 });
  });

  it('a device that came back before the sweep completed could be re-armed: not required', () => {
    const t = truth();
    t.sent(ID, 'meter', DEADLINE + 100, 20);
    const summary = t.finish(T0 + 60_000, [sweep(DEADLINE + 200, DEADLINE + 300)]);
    expect(summary).toMatchObject({ missedOffline: 0, requiredDetections: 0 });
  });

  it('a late offline event is lateness, not a miss', () => {
    const t = truth();
    t.event({ ...offline(DESIGN_DUE + 4_000), seq: 1, eventId: `${ID}#1`, type: 'device.online', since: T0 });
    t.event(offline(DESIGN_DUE + 4_000));
    const summary = t.finish(T0 + 60_000, [sweep(DEADLINE, DESIGN_DUE + 4_000)]);
    expect(summary).toMatchObject({ missedOffline: 0, falseOffline: 0, requiredDetections: 1, overdueDetections: 0 });
    expect(summary.latenessMs.max).toBe(DESIGN_DUE + 4_000 - (LAST + TIMEOUT));
  });

  it('counts an event received twice as a duplicate', () => {
    const t = truth();
    t.event(offline(DEADLINE + 500));
    t.event(offline(DEADLINE + 500));
    expect(t.finish(T0 + 60_000, [sweep(DEADLINE, DEADLINE + 600)])).toMatchObject({
      duplicateEvents: 1,
      missedOffline: 0,
    });
    expect(t.duplicateSamples).toEqual([{ eventId: `${ID}#2`, type: 'device.offline' }]);
  });
});
