// Judges the detector's events against what the simulated fleet really did. Time basis: a message's *entry time*
// (when it entered the ingest queue, SQS SentTimestamp), the same basis the detector uses (docs/design.md §4.1).
//
// - false offline: an offline event claims the device was silent from its `lastSeen` until `since` (= lastSeen +
//   timeout + precision). It is false when, by the truth's entry times, the device was never silent for `timeout`
//   anywhere in [lastSeen, since] (I1: it kept sending, or a message it sent was lost). This is stricter than
//   "the last message before `since` entered less than `timeout` before it", which would also flag correct
//   detections: with precision > 0, `since` is up to `precision` late, and a device that was silent past its
//   timeout may have come back just before `since` (counted as `returnedBeforeSince`).
// - missed offline: judged only against what the detector could have known. The device was silent from entry `e`
//   to its next entry `n` (or the end); its deadline is at the latest `e + timeout + precision` (`e` taken as late
//   as the send call allows). A sweep of the device's shard whose cutoff passed that deadline completed before `n`
//   entered (so the device's return cannot have been ingested yet), and no offline event has `since` in that
//   silence (I2). A stall of our own ingest holds the cutoff back, so it needs no rule of its own; how slow the
//   machine is, is no miss either: a detection no completed sweep was due to make yet is not judged, and slowness
//   shows as lateness, including the silences still undetected at the end past the design's bound (`overdue`:
//   `timeout + precision + tick + tolerance + slack`, deferred past a stall until ingestion caught up).
// - duplicates: events seen again with an eventId already seen (I3 allows them; consumers drop them by eventId).
// - lateness: `detectedAt − (last entry + timeout)` of each correct offline event, so it includes the type's
//   precision; events whose detection a stall deferred are counted apart (`stallDeferred`).
// - maintenance windows (docs/design.md §8.9): a device of a window's group whose offline `since` lies in
//   [from, until) is reported once, at the window's end: an offline event for it detected before `until` is a false
//   offline; its silence is due only by a sweep whose cutoff passed max(deadline, until); counted apart
//   (`heldByMaintenance`, with how long after max(end, deadline) they came).
// - gateways (§8.10): a device behind a gateway may wait up to the parent grace before it is judged, so its silence
//   is due by deadline + grace. An event with `cause: parent-offline` is right only when its `parentId` is the
//   device's gateway and that gateway really was offline then (silent for its timeout, gone silent within the grace
//   of the device's `since`, not yet back when the device was judged); an event without the cause is wrong when the
//   gateway's offline transition had been committed before the device was judged (a completed sweep of the
//   gateway's shard was due to report it) and the grace rule names it the cause (`wrongCause`). A device reported
//   behind its gateway and still silent a timeout after the gateway is back must be reported again, without the
//   cause, at the latest by the next recheck (`reportedAgain`; a miss otherwise).
// - mass outages (§8.11), with outage detection on: the offline events of a watched group (a device of it, without a
//   gateway's cause) are published the hold after their commit (their `detectedAt` stays the commit time, so lateness
//   is unaffected), so such a silence is due by deadline + hold + one tick. An event with `cause: outage` must carry
//   the id of a `fleet.outage` the run received for the device's group (a wrong cause otherwise); a `fleet.outage`
//   must come for a group where at least `minDevices` devices of the truth went silent, their offline `since` within
//   the window before it (a false incident otherwise, failing the run). Fleet events are judged at the end, since
//   they and the device events may arrive in any order; duplicates (by eventId) are counted, as for device events.
import type { DeviceEvent } from '../lambdas/core/device.js';
import type { FleetEvent, OutageConfig } from '../lambdas/core/outage.js';
import { shardOf } from '../lambdas/core/shard.js';
import type { CompletedSweep } from './observe.js';

export interface TruthSettings {
  policies: Record<string, { timeoutMs: number; precisionMs: number }>;
  /** Device id → the gateway it is behind (PARENT_TAG). @default none */
  parents?: ReadonlyMap<string, string>;
  /** PARENT_GRACE_SECONDS and MAINTENANCE_RECHECK_SECONDS of the run, in ms (scenario.ts `groupTimings`). */
  parentGraceMs?: number;
  recheckMs?: number;
  tickMs: number;
  toleranceMs: number;
  /** Allowance for delivery and polling delays on top of the design's bound. */
  slackMs: number;
  /** Absolute epoch ms of the run's start (entry times are absolute). */
  startedAt: number;
  /** Shards of the deadline index (SHARD_COUNT): which sweeps judge which device. */
  shardCount: number;
  /** OUTAGE_DETECTION of the run, and the group of every device that has one. @default off */
  outage?: { config: OutageConfig; groups: ReadonlyMap<string, string> };
}

/** A `fleet.outage` the run received, and what the judge made of it. */
export interface JudgedIncident {
  incidentId: string;
  group: string;
  /** The devices the detector counted, and how many of the truth's went silent within the window before it. */
  count: number;
  silent: number;
  /** When announced and, once received, when it recovered (epoch ms). */
  detectedAt: number;
  recoveredAt?: number;
  /** Offline events received with `cause: outage` and this incident's id. */
  marked: number;
}

export interface Stall {
  from: number;
  to: number;
  /** When ingestion had caught up again: the slowest watermark reached `to`. */
  caughtUpAt?: number;
}

/** A maintenance window the run opened: from, until (epoch ms) and the ids of the devices it covers. */
export interface JudgedWindow {
  from: number;
  until: number;
  devices: ReadonlySet<string>;
}

export interface Finding {
  kind: 'falseOffline' | 'missedOffline' | 'wrongCause' | 'falseIncident';
  deviceId: string;
  detail: string;
}

export interface Summary {
  devices: number;
  messages: number;
  offlineEvents: number;
  onlineEvents: number;
  falseOffline: number;
  missedOffline: number;
  /** Offline events whose `cause` (parent-offline) is wrong: present while the gateway was not offline, or absent
   * while the detector knew it was. */
  wrongCause: number;
  duplicateEvents: number;
  /** Offline events a maintenance window held, reported at its end; `heldLatenessMaxMs`: the latest of them after
   * max(window end, the device's last entry + timeout). */
  heldByMaintenance: number;
  heldLatenessMaxMs: number;
  /** Offline events with `cause: parent-offline` (behind an offline gateway), and the reports again without the
   * cause of devices still silent a timeout after their gateway was back. */
  behindGateway: number;
  reportedAgain: number;
  /** With outage detection: the `fleet.outage` events received (once each), the `fleet.recovered` ones, the offline
   * events marked `cause: outage`, and the incidents announced for a group without the silences to make one. */
  fleetOutages: number;
  fleetRecovered: number;
  markedOutage: number;
  falseIncidents: number;
  incidents: JudgedIncident[];
  /** Silences a completed sweep had to report (its cutoff passed the device's deadline before it came back). */
  requiredDetections: number;
  /** Silences past the design's bound at the end with no offline event and no completed sweep due to report them
   * yet: slow, not missed; `overdueMaxMs` is how far past the bound the longest waited. */
  overdueDetections: number;
  overdueMaxMs: number;
  stallDeferred: number;
  returnedBeforeSince: number;
  latenessMs: { p50: number; p99: number; max: number };
  /** Online events: from the message that brought the device online to the event. */
  onlineLatenessMs: { p50: number; p99: number; max: number };
  /** Per device type, with its precision: lateness p99 should stay within precision + tick + a few seconds. */
  latenessByType: Record<string, { p50: number; p99: number; max: number; precisionMs: number; events: number }>;
  findings: Finding[];
}

interface DeviceTruth {
  type: string;
  /** Entry times (epoch ms), ascending; old ones are pruned. An entry is known to lie in [entry, entry + spread]:
   * the sender knows when it called the queue and when the call returned, not the queue's own timestamp. */
  entries: number[];
  spreads: number[];
  last: number;
  lastSpread: number;
  /** Silences long enough to need an offline event: [from, to), and the spreads of the entries at `from` and `to`. */
  gaps: Silence[];
  offlineSince: number[];
  /** The `since` of its offline events with `cause: parent-offline`, and of its reports again without it. */
  causeSince: number[];
  againSince: number[];
  /** The detector's view from the events received (online after online, offline after offline events). */
  status?: 'online' | 'offline';
  statusSeq: number;
}

/** [from, to) with the spreads of the entries at `from` and `to` (`to` is Infinity while the device is silent). */
type Silence = readonly [from: number, to: number, fromSpread: number, toSpread: number];

/** What the judge found notable about an offline event it accepted, for the run's console. */
export type EventNote =
  | { kind: 'held'; until: number }
  | { kind: 'behind-gateway'; parentId: string }
  | { kind: 'reported-again' }
  | { kind: 'outage'; incidentId: string };

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export class Truth {
  private readonly devices = new Map<string, DeviceTruth>();
  private readonly eventIds = new Set<string>();
  readonly stalls: Stall[] = [];
  readonly lateness: number[] = [];
  readonly latenessByType = new Map<string, number[]>();
  /** Offline and online events by detection minute (for the report). */
  readonly transitions = new Map<number, { offline: number; online: number }>();
  readonly findings: Finding[] = [];
  messages = 0;
  offlineEvents = 0;
  onlineEvents = 0;
  private readonly onlineLateness: number[] = [];
  duplicates = 0;
  stallDeferred = 0;
  /** Offline events whose `since` came after the device's return (within the type's precision): correct, late. */
  returnedBeforeSince = 0;
  readonly duplicateSamples: Array<{ eventId: string; type: string }> = [];
  readonly windows: JudgedWindow[] = [];
  heldByMaintenance = 0;
  heldLatenessMaxMs = 0;
  behindGateway = 0;
  reportedAgain = 0;
  /** Fleet events by eventId (first receipt), and the offline events with `cause: outage`: judged at the end. */
  private readonly fleetEvents = new Map<string, FleetEvent>();
  private readonly marked: DeviceEvent[] = [];
  /** Offline events without a cause of devices behind a gateway: judged at the end, against the completed sweeps. */
  private readonly uncaused: DeviceEvent[] = [];
  online = 0;
  offline = 0;
  private readonly keepMs: number;
  private readonly minGapMs: number;

  constructor(readonly settings: TruthSettings) {
    const policies = Object.values(settings.policies);
    this.keepMs = Math.max(...policies.map((p) => p.timeoutMs + p.precisionMs)) * 4 + 3_600_000;
    this.minGapMs = Math.min(...policies.map((p) => p.timeoutMs));
  }

  /** The run's clock starts (after a warm-up): events are bucketed by minute from here. */
  startClock(at: number): void {
    this.settings.startedAt = at;
  }

  /** When the design's bound says a silence from `from`, due by `deadline`, should have been reported: the deadline,
   * one tick, the watermark tolerance and the slack; past a stall of our own ingest that overlaps it, once ingestion
   * caught up plus one tick and the slack. Only for reporting lateness: a miss is judged by the sweeps. */
  private designDue(from: number, deadline: number): number {
    const { tickMs, toleranceMs, slackMs } = this.settings;
    let due = deadline + tickMs + toleranceMs + slackMs;
    for (const stall of this.stalls) {
      if (due >= stall.from && from < stall.to) {
        due = Math.max(due, (stall.caughtUpAt ?? Number.POSITIVE_INFINITY) + tickMs + slackMs);
      }
    }
    return due;
  }

  /** The latest a sweep's cutoff must have passed for a silence of `deviceId` from `from` to be reported: its
   * deadline (the entry as late as its spread allows, + timeout + precision), + the parent grace behind a gateway,
   * and at least the end of a maintenance window that may hold it. */
  private dueBy(deviceId: string, type: string, from: number, spread: number): number {
    const policy = this.settings.policies[type]!;
    let deadline = from + spread + policy.timeoutMs + policy.precisionMs;
    const held = this.holding(deviceId, from + policy.timeoutMs, deadline);
    if (this.settings.parents?.has(deviceId)) deadline += this.settings.parentGraceMs ?? 0;
    const committed = held ? Math.max(deadline, held.until) : deadline;
    // A watched group's offline event waits the hold after its commit, then goes out with the next sweep's re-publish.
    const outage = this.settings.outage;
    return outage?.groups.has(deviceId) ? committed + outage.config.holdMs + this.settings.tickMs : committed;
  }

  /** The window of its group that holds an offline `since` of `deviceId` in [earliest, latest], if any. */
  private holding(deviceId: string, earliest: number, latest = earliest): JudgedWindow | undefined {
    return this.windows.find((w) => w.devices.has(deviceId) && earliest < w.until && latest >= w.from);
  }

  /** A silence of gateway `parentId` that can make it the cause of a device's offline `since` (the device last seen
   * at `lastSeen`): silent for its timeout, gone offline within the grace after `since` and not before `lastSeen`
   * − grace (at the earliest and latest its entries allow), and not back before the ingest had taken in what entered
   * up to `since` − tolerance (the device was judged by a cutoff at or past `since`). */
  private parentSilence(parentId: string, since: number, lastSeen: number): Silence | undefined {
    const parent = this.devices.get(parentId);
    if (!parent) return undefined;
    const { timeoutMs, precisionMs } = this.settings.policies[parent.type]!;
    const grace = this.settings.parentGraceMs ?? 0;
    return silencesOf(parent).find(
      ([from, to, fromSpread, toSpread]) =>
        to + toSpread - from >= timeoutMs &&
        from + timeoutMs <= since + grace &&
        lastSeen <= from + fromSpread + timeoutMs + precisionMs + grace &&
        to + toSpread > since - this.settings.toleranceMs,
    );
  }

  /** A maintenance window the run opened. */
  maintenance(window: JudgedWindow): void {
    this.windows.push(window);
  }

  /** A message of the fleet entered the ingest source at `enteredAt` (epoch ms). */
  sent(deviceId: string, type: string, enteredAt: number, spreadMs = 0): void {
    this.messages++;
    let device = this.devices.get(deviceId);
    if (!device) {
      device = {
        type,
        entries: [],
        spreads: [],
        last: enteredAt,
        lastSpread: spreadMs,
        gaps: [],
        offlineSince: [],
        causeSince: [],
        againSince: [],
        statusSeq: -1,
      };
      this.devices.set(deviceId, device);
    } else if (enteredAt - device.last >= this.minGapMs) {
      device.gaps.push([device.last, enteredAt, device.lastSpread, spreadMs]);
    }
    // Sends run concurrently, so an entry can come in slightly out of order: keep the list sorted.
    let at = device.entries.length;
    while (at > 0 && device.entries[at - 1]! > enteredAt) at--;
    device.entries.splice(at, 0, enteredAt);
    device.spreads.splice(at, 0, spreadMs);
    if (enteredAt > device.last) {
      device.last = enteredAt;
      device.lastSpread = spreadMs;
    }
    if (device.entries.length > 256 && device.entries[0]! < enteredAt - this.keepMs) {
      const keepFrom = device.entries.findIndex((t) => t >= enteredAt - this.keepMs);
      device.entries.splice(0, Math.max(0, keepFrom - 1));
      device.spreads.splice(0, Math.max(0, keepFrom - 1));
    }
  }

  stallStarted(at: number): void {
    this.stalls.push({ from: at, to: Number.POSITIVE_INFINITY });
  }

  stallEnded(at: number): void {
    const stall = this.stalls.at(-1);
    if (stall) stall.to = at;
  }

  /** The slowest ingest watermark, as observed: marks stalls as caught up once it passes their end. */
  watermark(mark: number, observedAt: number): void {
    for (const stall of this.stalls) {
      if (stall.caughtUpAt === undefined && Number.isFinite(stall.to) && mark >= stall.to) {
        stall.caughtUpAt = observedAt;
      }
    }
  }

  /** A fleet event received (`fleet.outage`, `fleet.recovered`): kept, judged at the end; false when a duplicate. */
  fleet(event: FleetEvent): boolean {
    if (this.eventIds.has(event.eventId)) {
      this.duplicates++;
      if (this.duplicateSamples.length < 10) this.duplicateSamples.push({ eventId: event.eventId, type: event.type });
      return false;
    }
    this.eventIds.add(event.eventId);
    this.fleetEvents.set(event.eventId, event);
    return true;
  }

  /** Judges an event received; what was notable about an accepted offline event, for the console. */
  event(event: DeviceEvent): EventNote | undefined {
    if (this.eventIds.has(event.eventId)) {
      this.duplicates++;
      if (this.duplicateSamples.length < 10) this.duplicateSamples.push({ eventId: event.eventId, type: event.type });
      return undefined;
    }
    this.eventIds.add(event.eventId);
    const minute = Math.max(0, Math.floor((event.detectedAt - this.settings.startedAt) / 60_000));
    const bucket = this.transitions.get(minute) ?? { offline: 0, online: 0 };
    this.transitions.set(minute, bucket);
    const device = this.devices.get(event.deviceId);
    if (event.type === 'device.online') {
      this.onlineEvents++;
      bucket.online++;
      // From the message that brought it online (its entry) to the event.
      this.onlineLateness.push(event.detectedAt - event.since);
    } else if (event.type === 'device.offline') {
      this.offlineEvents++;
      bucket.offline++;
    }
    if (!device) {
      this.findings.push({ kind: 'falseOffline', deviceId: event.deviceId, detail: 'event for an unknown device' });
      return undefined;
    }
    // Per-device order by seq: an older event arriving late does not change the detector's view.
    if (event.seq > device.statusSeq) {
      if (device.status === 'online') this.online--;
      if (device.status === 'offline') this.offline--;
      // device.flapping (flap damping) carries the state its transition led to.
      const online = event.type === 'device.online' || event.status === 'ONLINE';
      device.status = online ? 'online' : 'offline';
      device.statusSeq = event.seq;
      if (device.status === 'online') this.online++;
      else this.offline++;
    }
    if (event.type !== 'device.offline') return undefined;
    device.offlineSince.push(event.since);
    const policy = this.settings.policies[device.type]!;
    const silence = longestSilence(device.entries, device.spreads, event.lastSeen, event.since);
    if (silence < policy.timeoutMs) {
      this.findings.push({
        kind: 'falseOffline',
        deviceId: event.deviceId,
        detail: `offline since ${iso(event.since)} (last seen ${iso(event.lastSeen)}), but the device was never silent for ${policy.timeoutMs} ms in between (longest silence ${silence} ms)`,
      });
      return undefined;
    }
    const held = this.holding(event.deviceId, event.since);
    if (held && event.detectedAt < held.until) {
      this.findings.push({
        kind: 'falseOffline',
        deviceId: event.deviceId,
        detail: `offline since ${iso(event.since)}, within the maintenance window of its group until ${iso(held.until)}, but reported at ${iso(event.detectedAt)}, before the window's end`,
      });
      return undefined;
    }
    // Only the gateway's cause is judged here (an outage's, `cause: outage`, marks events that have no other).
    const behind = event.cause === 'parent-offline';
    const again = !behind && device.causeSince.includes(event.since);
    this.judgeCause(event, behind, again);
    if (event.cause === 'outage') this.marked.push(event);
    if (behind) {
      device.causeSince.push(event.since);
      this.behindGateway++;
    }
    if (again) {
      device.againSince.push(event.since);
      this.reportedAgain++;
    }
    const lastEntry = latestAtOrBefore(device.entries, event.since) ?? event.lastSeen;
    const dueAt = lastEntry + policy.timeoutMs;
    if (held) {
      this.heldByMaintenance++;
      this.heldLatenessMaxMs = Math.max(this.heldLatenessMaxMs, event.detectedAt - Math.max(held.until, dueAt));
      return { kind: 'held', until: held.until };
    }
    if (again) return { kind: 'reported-again' };
    // With precision, `since` may fall after the device's return: it came back within the accepted lateness.
    if (lastEntry > event.lastSeen + policy.precisionMs) this.returnedBeforeSince++;
    if (this.stalls.some((s) => s.from <= event.detectedAt && (s.caughtUpAt ?? Number.POSITIVE_INFINITY) >= dueAt)) {
      this.stallDeferred++;
    } else {
      this.lateness.push(event.detectedAt - dueAt);
      const byType = this.latenessByType.get(device.type) ?? [];
      byType.push(event.detectedAt - dueAt);
      this.latenessByType.set(device.type, byType);
    }
    if (behind) return { kind: 'behind-gateway', parentId: event.parentId ?? '' };
    return event.cause === 'outage' ? { kind: 'outage', incidentId: event.incidentId ?? '' } : undefined;
  }

  /** A cause must name the device's gateway, offline then; an event without one, of a device behind a gateway, is
   * judged at the end (`finish`), when the sweeps that committed the gateway's transition are known. */
  private judgeCause(event: DeviceEvent, behind: boolean, again: boolean): void {
    const parentId = this.settings.parents?.get(event.deviceId);
    if (!behind) {
      if (parentId !== undefined && !again) this.uncaused.push(event);
      return;
    }
    const why =
      parentId === undefined
        ? 'it is behind no gateway'
        : event.parentId !== parentId
          ? `it is behind ${parentId}`
          : !this.parentSilence(parentId, event.since, event.lastSeen)
            ? `its gateway was not offline within ${this.settings.parentGraceMs ?? 0} ms after ${iso(event.since)}`
            : undefined;
    if (why) {
      this.findings.push({
        kind: 'wrongCause',
        deviceId: event.deviceId,
        detail: `offline since ${iso(event.since)} with cause ${event.cause} (parent ${event.parentId}), but ${why}`,
      });
    }
  }

  /** Judges every silence against the sweeps that completed (see the top of the file); `horizon` (epoch ms) is
   * the end of the run, for the silences past the design's bound still undetected. The events of those sweeps must
   * all have been received by now. */
  finish(
    horizon: number,
    sweeps: readonly CompletedSweep[],
    /** When the sweep job that published an event started (observe.ts); default its `detectedAt`. */
    jobStartOf: (event: DeviceEvent) => number | undefined = () => undefined,
  ): Summary {
    const byShard = new Map<string, ShardSweeps>();
    for (const sweep of [...sweeps].sort((a, b) => a.completedAt - b.completedAt)) {
      const shard = byShard.get(sweep.shard) ?? { sweeps: [], maxCutoff: [] };
      byShard.set(sweep.shard, shard);
      shard.maxCutoff.push(Math.max(sweep.cutoff, shard.maxCutoff.at(-1) ?? Number.NEGATIVE_INFINITY));
      shard.sweeps.push(sweep);
    }
    let required = 0;
    let overdue = 0;
    let overdueMaxMs = 0;
    for (const [deviceId, device] of this.devices) {
      const shard = byShard.get(shardOf(deviceId, this.settings.shardCount));
      for (const [from, to, spread] of silencesOf(device)) {
        const reported = device.offlineSince.some((since) => since > from && since <= to);
        const deadline = this.dueBy(deviceId, device.type, from, spread);
        const judge = shard && judgedBy(shard, deadline, to);
        if (judge) {
          required++;
          if (!reported) {
            this.findings.push({
              kind: 'missedOffline',
              deviceId,
              detail: `silent from ${iso(from)} to ${Number.isFinite(to) ? iso(to) : 'the end'} (due by ${iso(deadline)} at the latest): the sweep of shard ${judge.shard} by cutoff ${iso(judge.cutoff)} completed at ${iso(judge.completedAt)} without reporting it`,
            });
          }
        } else if (!reported) {
          const due = this.designDue(from, deadline - spread);
          if (due <= horizon && to > due) {
            overdue++;
            overdueMaxMs = Math.max(overdueMaxMs, Math.min(to, horizon) - due);
          }
        }
        if (this.reportAgainDue(deviceId, device, shard, from, to)) required++;
      }
    }
    for (const event of this.uncaused) this.judgeUncaused(event, byShard, jobStartOf(event) ?? event.detectedAt);
    const incidents = this.judgeIncidents();
    const sorted = [...this.lateness].sort((a, b) => a - b);
    return {
      devices: this.devices.size,
      messages: this.messages,
      offlineEvents: this.offlineEvents,
      onlineEvents: this.onlineEvents,
      falseOffline: this.findings.filter((f) => f.kind === 'falseOffline').length,
      missedOffline: this.findings.filter((f) => f.kind === 'missedOffline').length,
      wrongCause: this.findings.filter((f) => f.kind === 'wrongCause').length,
      duplicateEvents: this.duplicates,
      heldByMaintenance: this.heldByMaintenance,
      heldLatenessMaxMs: this.heldLatenessMaxMs,
      behindGateway: this.behindGateway,
      reportedAgain: this.reportedAgain,
      fleetOutages: incidents.length,
      fleetRecovered: [...this.fleetEvents.values()].filter((e) => e.type === 'fleet.recovered').length,
      markedOutage: this.marked.length,
      falseIncidents: this.findings.filter((f) => f.kind === 'falseIncident').length,
      incidents,
      requiredDetections: required,
      overdueDetections: overdue,
      overdueMaxMs,
      stallDeferred: this.stallDeferred,
      returnedBeforeSince: this.returnedBeforeSince,
      latenessMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? 0 },
      onlineLatenessMs: (() => {
        const online = [...this.onlineLateness].sort((a, b) => a - b);
        return { p50: percentile(online, 50), p99: percentile(online, 99), max: online.at(-1) ?? 0 };
      })(),
      latenessByType: Object.fromEntries(
        [...this.latenessByType].map(([type, values]) => {
          const v = [...values].sort((a, b) => a - b);
          const precisionMs = this.settings.policies[type]?.precisionMs ?? 0;
          return [
            type,
            { p50: percentile(v, 50), p99: percentile(v, 99), max: v.at(-1) ?? 0, precisionMs, events: v.length },
          ];
        }),
      ),
      findings: this.findings.slice(0, 50),
    };
  }

  /** Every `fleet.outage` must stand for at least `minDevices` devices of its group that went silent (their offline
   * `since` at the earliest and latest their entries allow) within the window before it; every offline event with
   * `cause: outage` must carry the id of one received, of its device's group. */
  private judgeIncidents(): JudgedIncident[] {
    const incidents = new Map<string, JudgedIncident>();
    const outage = this.settings.outage;
    for (const event of this.fleetEvents.values()) {
      if (event.type !== 'fleet.outage') continue;
      const silent = outage ? this.silentWithin(event.group, event.detectedAt, outage) : 0;
      incidents.set(event.incidentId, {
        incidentId: event.incidentId,
        group: event.group,
        count: event.count,
        silent,
        detectedAt: event.detectedAt,
        marked: 0,
      });
      const min = outage?.config.minDevices;
      if (min === undefined || silent < min) {
        this.findings.push({
          kind: 'falseIncident',
          deviceId: event.group,
          detail: `fleet.outage ${event.incidentId} at ${iso(event.detectedAt)} (count ${event.count}), but ${outage ? `only ${silent} devices of ${outage.config.groupBy} ${event.group} went silent within the ${outage.config.windowMs / 1000} s before it (minDevices ${min})` : 'outage detection is off'}`,
        });
      }
    }
    for (const event of this.fleetEvents.values()) {
      const incident = incidents.get(event.incidentId);
      if (event.type === 'fleet.recovered' && incident) incident.recoveredAt = event.detectedAt;
    }
    for (const event of this.marked) {
      const incident = incidents.get(event.incidentId ?? '');
      const group = outage?.groups.get(event.deviceId);
      if (incident && incident.group === group) {
        incident.marked++;
        continue;
      }
      this.findings.push({
        kind: 'wrongCause',
        deviceId: event.deviceId,
        detail: `offline since ${iso(event.since)} with cause outage (incident ${event.incidentId}), but ${incident ? `that incident is of ${incident.group}, the device of ${group ?? 'no group'}` : 'no fleet.outage of that id was received'}`,
      });
    }
    return [...incidents.values()].sort((a, b) => a.detectedAt - b.detectedAt);
  }

  /** Devices of `group` silent for their timeout with an offline `since` that can lie in [at − window, at]. */
  private silentWithin(group: string, at: number, outage: NonNullable<TruthSettings['outage']>): number {
    let silent = 0;
    for (const [deviceId, device] of this.devices) {
      if (outage.groups.get(deviceId) !== group) continue;
      const { timeoutMs, precisionMs } = this.settings.policies[device.type]!;
      const went = silencesOf(device).some(
        ([from, to, fromSpread, toSpread]) =>
          to + toSpread - from >= timeoutMs &&
          from + timeoutMs <= at &&
          from + fromSpread + timeoutMs + precisionMs >= at - outage.config.windowMs,
      );
      if (went) silent++;
    }
    return silent;
  }

  /** A device reported behind its gateway, still silent a timeout after the gateway was back: due to be reported
   * again once a sweep of its shard passed max(back + timeout, back + tolerance + recheck) before it came back (the
   * device is looked at every recheck, and sees the gateway back once the ingest has taken in its return). Records a
   * miss when it was not; true when the report was due. */
  private reportAgainDue(
    deviceId: string,
    device: DeviceTruth,
    shard: ShardSweeps | undefined,
    from: number,
    to: number,
  ): boolean {
    const since = device.causeSince.find((s) => s > from && s <= to);
    const parentId = this.settings.parents?.get(deviceId);
    if (since === undefined || parentId === undefined || !shard) return false;
    const gatewayDown = this.parentSilence(parentId, since, from);
    if (!gatewayDown || !Number.isFinite(gatewayDown[1])) return false;
    const back = gatewayDown[1] + gatewayDown[3];
    const { toleranceMs, recheckMs = 0 } = this.settings;
    const held = this.holding(deviceId, since);
    const dueBy = Math.max(
      back + this.settings.policies[device.type]!.timeoutMs,
      back + toleranceMs + recheckMs,
      since,
      held?.until ?? 0,
    );
    const judge = judgedBy(shard, dueBy, to);
    if (!judge) return false;
    if (!device.againSince.some((s) => s > from && s <= to)) {
      this.findings.push({
        kind: 'missedOffline',
        deviceId,
        detail: `reported behind ${parentId} (offline since ${iso(since)}), silent until ${Number.isFinite(to) ? iso(to) : 'the end'} though ${parentId} was back at ${iso(back)}: the sweep of shard ${judge.shard} by cutoff ${iso(judge.cutoff)} completed at ${iso(judge.completedAt)} without reporting it again`,
      });
    }
    return true;
  }

  /** An offline event without a cause of a device behind a gateway is wrong when the gateway's offline transition
   * had been committed before the device was judged (a sweep of the gateway's shard due to report it completed
   * before the job that reported the device started, `judgedFrom`: a job reads a gateway once), the gateway not
   * back, and the grace rule names it the cause at every time its entries allow. */
  private judgeUncaused(event: DeviceEvent, byShard: ReadonlyMap<string, ShardSweeps>, judgedFrom: number): void {
    const parentId = this.settings.parents!.get(event.deviceId)!;
    const parent = this.devices.get(parentId);
    const shard = byShard.get(shardOf(parentId, this.settings.shardCount));
    if (!parent || !shard) return;
    const { timeoutMs, precisionMs } = this.settings.policies[parent.type]!;
    const grace = this.settings.parentGraceMs ?? 0;
    for (const [from, to, spread] of silencesOf(parent)) {
      if (to <= event.detectedAt || from + spread + timeoutMs + precisionMs > event.since + grace) continue;
      if (event.lastSeen > from + timeoutMs + grace) continue;
      const judge = judgedBy(shard, this.dueBy(parentId, parent.type, from, spread), judgedFrom);
      if (!judge) continue;
      this.findings.push({
        kind: 'wrongCause',
        deviceId: event.deviceId,
        detail: `offline since ${iso(event.since)}, reported at ${iso(event.detectedAt)} without cause, while its gateway ${parentId} was offline (silent from ${iso(from)}; the sweep of shard ${judge.shard} by cutoff ${iso(judge.cutoff)} had reported it at ${iso(judge.completedAt)})`,
      });
      return;
    }
  }
}

interface ShardSweeps {
  /** Completed sweeps of one shard, by completion time. */
  sweeps: CompletedSweep[];
  /** The largest cutoff among the sweeps up to each index. */
  maxCutoff: number[];
}

/** Every silence of a device that may need an offline event, the one it is in at the end included. */
function silencesOf(device: DeviceTruth): Silence[] {
  return [...device.gaps, [device.last, Number.POSITIVE_INFINITY, device.lastSpread, 0]];
}

/** The first completed sweep whose cutoff passed `deadline`, if it completed before `before`. */
function judgedBy(shard: ShardSweeps, deadline: number, before: number): CompletedSweep | undefined {
  let lo = 0;
  let hi = shard.maxCutoff.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (shard.maxCutoff[mid]! < deadline) lo = mid + 1;
    else hi = mid;
  }
  const first = shard.sweeps.slice(lo).find((sweep) => sweep.cutoff >= deadline);
  return first && first.completedAt < before ? first : undefined;
}

/** The longest stretch without a message in [from, to] that the entry times allow (each entry taken as late as
 * its spread allows when it ends a silence, as early as possible when it starts one): a false offline is only
 * called when even that is shorter than the timeout. `from` is the detector's own `lastSeen`, an exact entry. */
function longestSilence(sorted: readonly number[], spreads: readonly number[], from: number, to: number): number {
  let longest = 0;
  let previous = from;
  for (let i = lowerBound(sorted, from + 1); i < sorted.length && sorted[i]! <= to; i++) {
    longest = Math.max(longest, sorted[i]! + spreads[i]! - previous);
    previous = Math.max(previous, sorted[i]!);
  }
  return Math.max(longest, to - previous);
}

function lowerBound(sorted: readonly number[], t: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function latestAtOrBefore(sorted: readonly number[], t: number): number | undefined {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo > 0 ? sorted[lo - 1] : undefined;
}

const iso = (t: number) => new Date(t).toISOString().slice(11, 23);
