// The runs' judge (sim/truth.ts): a silence is missed only when a sweep whose cutoff passed the device's
// deadline completed before the device came back and no offline event reported it. A slow machine (no sweep got
// there yet when the run ends) is lateness, never a miss.
import { describe, expect, it } from 'vitest';
import type { DeviceEvent } from '../../lambdas/core/device.js';
import type { FleetEvent } from '../../lambdas/core/outage.js';
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

describe('maintenance windows', () => {
  /** A window over the device from before it went offline until 30 s after its deadline. */
  const UNTIL = DEADLINE + 30_000;
  const held = () => {
    const t = truth();
    t.maintenance({ from: T0 + 5_000, until: UNTIL, devices: new Set([ID]) });
    return t;
  };

  it('a device that went offline within the window, reported once at its end, is right', () => {
    const t = held();
    t.event({ ...offline(UNTIL + 800), seq: 2 });
    const summary = t.finish(UNTIL + 60_000, [sweep(DEADLINE, DEADLINE + 500), sweep(UNTIL, UNTIL + 800)]);
    expect(summary).toMatchObject({ falseOffline: 0, missedOffline: 0, heldByMaintenance: 1, requiredDetections: 1 });
    expect(summary.heldLatenessMaxMs).toBe(800);
    // Held for the window, not late: not in the lateness figures.
    expect(summary.latenessMs.max).toBe(0);
  });

  it('an offline event of a held device before the window’s end is a false offline', () => {
    const t = held();
    t.event(offline(DEADLINE + 500));
    const summary = t.finish(UNTIL + 60_000, [sweep(DEADLINE, DEADLINE + 500)]);
    expect(summary).toMatchObject({ falseOffline: 1, heldByMaintenance: 0 });
    expect(summary.findings[0]!.detail).toMatch(
      /within the maintenance window of its group .* before the window's end/,
    );
  });

  it('a held silence is due only once a sweep passed the window’s end', () => {
    const early = held().finish(UNTIL + 60_000, [sweep(UNTIL - 1, UNTIL)]);
    expect(early).toMatchObject({ missedOffline: 0, requiredDetections: 0 });
    const due = held().finish(UNTIL + 60_000, [sweep(UNTIL, UNTIL + 1_000)]);
    expect(due).toMatchObject({ missedOffline: 1, requiredDetections: 1 });
  });

  it('a device of another group, or one offline before the window, is judged as usual', () => {
    const t = truth();
    t.maintenance({ from: T0 + 5_000, until: UNTIL, devices: new Set(['meter-008']) });
    t.maintenance({ from: DEADLINE + 1, until: UNTIL, devices: new Set([ID]) });
    t.event(offline(DEADLINE + 500));
    expect(t.finish(UNTIL + 60_000, [sweep(DEADLINE, DEADLINE + 500)])).toMatchObject({
      falseOffline: 0,
      missedOffline: 0,
      heldByMaintenance: 0,
    });
  });
});

describe('gateways', () => {
  const GW = 'gw-1';
  const CHILD = 'meter-042';
  const GW_TIMEOUT = 4_000;
  const GRACE = 3_000;
  const RECHECK = 10_000;
  /** The gateway and its device fall silent after T0 + 10 s; the gateway is back for good at `back` (or not), or
   * never falls silent (`online`). */
  const fleet = (back?: number | 'online') => {
    const t = new Truth({
      policies: { meter: { timeoutMs: TIMEOUT, precisionMs: 0 }, gateway: { timeoutMs: GW_TIMEOUT, precisionMs: 0 } },
      parents: new Map([[CHILD, GW]]),
      parentGraceMs: GRACE,
      recheckMs: RECHECK,
      tickMs: 1_000,
      toleranceMs: 3_000,
      slackMs: 2_000,
      startedAt: T0,
      shardCount: SHARDS,
    });
    for (let at = T0; at <= LAST; at += 1_000) {
      t.sent(GW, 'gateway', at);
      t.sent(CHILD, 'meter', at);
    }
    if (back === 'online') {
      for (let at = LAST + 1_000; at <= T0 + 60_000; at += 1_000) t.sent(GW, 'gateway', at);
      return t;
    }
    for (let at = back ?? Number.POSITIVE_INFINITY; at <= T0 + 90_000; at += 1_000) t.sent(GW, 'gateway', at);
    // The gateway's own offline event, reported by its shard's sweep.
    t.event({
      eventId: `${GW}#2`,
      type: 'device.offline',
      deviceId: GW,
      deviceType: 'gateway',
      seq: 2,
      since: GW_DEADLINE,
      lastSeen: LAST,
      timeoutMs: GW_TIMEOUT,
      detectedAt: GW_DEADLINE + 400,
    });
    return t;
  };
  const GW_SHARD = shardOf(GW, SHARDS);
  const CHILD_SHARD = shardOf(CHILD, SHARDS);
  const GW_DEADLINE = LAST + GW_TIMEOUT;
  const CHILD_DEADLINE = LAST + TIMEOUT;
  const childOffline = (detectedAt: number, extra: Partial<DeviceEvent> = {}, seq = 2): DeviceEvent => ({
    eventId: `${CHILD}#${seq}`,
    type: 'device.offline',
    deviceId: CHILD,
    deviceType: 'meter',
    seq,
    since: CHILD_DEADLINE,
    lastSeen: LAST,
    timeoutMs: TIMEOUT,
    detectedAt,
    ...extra,
  });
  const behind = { cause: 'parent-offline', parentId: GW } as const;
  /** The gateway's offline transition was committed before the device's job started. */
  const gatewaySwept = sweep(GW_DEADLINE, GW_DEADLINE + 500, GW_SHARD);

  it('a device reported with cause parent-offline while its gateway is offline is right', () => {
    const t = fleet();
    t.event(childOffline(CHILD_DEADLINE + 500, behind));
    const summary = t.finish(T0 + 60_000, [gatewaySwept, sweep(CHILD_DEADLINE, CHILD_DEADLINE + 600, CHILD_SHARD)]);
    expect(summary).toMatchObject({ wrongCause: 0, falseOffline: 0, missedOffline: 0, behindGateway: 1 });
  });

  it('a device reported without the cause while its gateway was known offline is wrong', () => {
    const t = fleet();
    t.event(childOffline(CHILD_DEADLINE + 500));
    const summary = t.finish(T0 + 60_000, [gatewaySwept, sweep(CHILD_DEADLINE, CHILD_DEADLINE + 600, CHILD_SHARD)]);
    expect(summary).toMatchObject({ wrongCause: 1, falseOffline: 0, missedOffline: 0 });
    expect(summary.findings[0]!.detail).toMatch(/without cause, while its gateway gw-1 was offline/);
  });

  it('without the cause is right when the gateway’s transition was not yet committed when the device was judged', () => {
    const t = fleet();
    t.event(childOffline(CHILD_DEADLINE + 500));
    const lateGatewaySweep = sweep(GW_DEADLINE, CHILD_DEADLINE + 700, GW_SHARD);
    expect(t.finish(T0 + 60_000, [lateGatewaySweep])).toMatchObject({ wrongCause: 0 });
  });

  it('a cause naming a gateway that was online is wrong', () => {
    const t = fleet('online');
    t.event(childOffline(CHILD_DEADLINE + 500, behind));
    expect(t.finish(T0 + 60_000, [])).toMatchObject({ wrongCause: 1, behindGateway: 1 });
  });

  it('a device still silent a timeout after its gateway came back is reported again, without the cause', () => {
    const back = LAST + 20_000;
    // Due by max(back + timeout, back + tolerance + recheck): the device is looked at every recheck.
    const againDue = back + 3_000 + RECHECK;
    const run = (again: boolean) => {
      const t = fleet(back);
      t.event(childOffline(CHILD_DEADLINE + 500, behind));
      if (again) t.event(childOffline(againDue + 100, {}, 3));
      return t.finish(T0 + 90_000, [
        gatewaySwept,
        sweep(CHILD_DEADLINE, CHILD_DEADLINE + 600, CHILD_SHARD),
        sweep(againDue, againDue + 100, CHILD_SHARD),
      ]);
    };
    expect(run(true)).toMatchObject({ missedOffline: 0, wrongCause: 0, behindGateway: 1, reportedAgain: 1 });
    const missed = run(false);
    expect(missed).toMatchObject({ missedOffline: 1, reportedAgain: 0 });
    expect(missed.findings[0]!.detail).toMatch(/reported behind gw-1 .* without reporting it again/);
  });

  it('a device behind a gateway may wait up to the grace before it is due', () => {
    const waiting = fleet('online').finish(T0 + 60_000, [sweep(CHILD_DEADLINE + GRACE - 1, T0 + 30_000, CHILD_SHARD)]);
    expect(waiting).toMatchObject({ missedOffline: 0, requiredDetections: 0 });
    const due = fleet('online').finish(T0 + 60_000, [sweep(CHILD_DEADLINE + GRACE, T0 + 30_000, CHILD_SHARD)]);
    expect(due).toMatchObject({ missedOffline: 1, requiredDetections: 1 });
  });
});

describe('mass outages', () => {
  const HOLD = 90_000;
  const FLEET = Array.from({ length: 4 }, (_, i) => `meter-10${i}`);
  const incidentOf = (group: string, detectedAt: number, id = 'inc-1'): FleetEvent => ({
    eventId: `fleet.outage#${id}`,
    type: 'fleet.outage',
    incidentId: id,
    groupBy: 'site',
    group,
    count: 3,
    firstSince: LAST + TIMEOUT,
    lastSince: LAST + TIMEOUT,
    detectedAt,
  });
  /** Four devices at site-a (the judged one among them) fall silent at T0 + 10 s; minDevices 3. */
  function outageTruth(minDevices = 3) {
    const t = new Truth({
      policies: { meter: { timeoutMs: TIMEOUT, precisionMs: PRECISION } },
      tickMs: 1_000,
      toleranceMs: 3_000,
      slackMs: 2_000,
      startedAt: T0,
      shardCount: SHARDS,
      outage: {
        config: { groupBy: 'site', minDevices, windowMs: 60_000, holdMs: HOLD },
        groups: new Map([ID, ...FLEET].map((id, i) => [id, i < 3 ? 'site-a' : 'site-b'])),
      },
    });
    for (let at = T0; at <= LAST; at += 1_000) for (const id of [ID, ...FLEET]) t.sent(id, 'meter', at, 20);
    return t;
  }
  const marked = (incidentId: string): DeviceEvent => ({
    ...offline(DEADLINE + 500),
    cause: 'outage',
    incidentId,
  });

  it('a watched device’s silence is due only a hold (and a tick) after its deadline', () => {
    const held = outageTruth().finish(T0 + 60_000, [sweep(DEADLINE + 500, DEADLINE + 600)]);
    expect(held).toMatchObject({ missedOffline: 0, requiredDetections: 0 });
    const due = DEADLINE + HOLD + 1_000;
    const missed = outageTruth().finish(T0 + 300_000, [sweep(due, due + 100)]);
    expect(missed.missedOffline).toBeGreaterThan(0);
  });

  it('an event marked cause outage with the id of a fleet.outage of its group is right', () => {
    const t = outageTruth();
    expect(t.fleet(incidentOf('site-a', LAST + 30_000))).toBe(true);
    t.event(marked('inc-1'));
    const summary = t.finish(T0 + 60_000, []);
    expect(summary).toMatchObject({ fleetOutages: 1, markedOutage: 1, wrongCause: 0, falseIncidents: 0 });
    expect(summary.incidents[0]).toMatchObject({ group: 'site-a', silent: 3, marked: 1 });
  });

  it('a marked event without a fleet.outage of that id, or of another group, is a wrong cause', () => {
    const unknown = outageTruth();
    unknown.event(marked('inc-9'));
    expect(unknown.finish(T0 + 60_000, []).wrongCause).toBe(1);
    const other = outageTruth(1);
    other.fleet(incidentOf('site-b', LAST + 30_000));
    other.event(marked('inc-1'));
    expect(other.finish(T0 + 60_000, []).wrongCause).toBe(1);
  });

  it('a fleet.outage for a group with fewer than minDevices silent within the window is a false incident', () => {
    // site-b has one device; site-a's three went silent longer ago than the window.
    const few = outageTruth();
    few.fleet(incidentOf('site-b', LAST + 30_000));
    expect(few.finish(T0 + 60_000, []).falseIncidents).toBe(1);
    const old = outageTruth();
    old.fleet(incidentOf('site-a', LAST + 200_000));
    expect(old.finish(T0 + 300_000, []).falseIncidents).toBe(1);
  });

  it('a fleet event received twice is a duplicate, judged once', () => {
    const t = outageTruth();
    expect(t.fleet(incidentOf('site-a', LAST + 30_000))).toBe(true);
    expect(t.fleet(incidentOf('site-a', LAST + 30_000))).toBe(false);
    expect(t.finish(T0 + 60_000, [])).toMatchObject({ fleetOutages: 1, duplicateEvents: 1, falseIncidents: 0 });
  });
});
