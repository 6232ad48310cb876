// An SNS outage in virtual time: flapping devices go on and off for hours while every publish fails, then SNS comes
// back and the pipeline catches up. The real ingest and sweep cores over any DeviceStore (the memory model or
// DynamoDB Local through the adapter); no sleeps, the clock is injected.
import { isDeepStrictEqual } from 'node:util';
import { type IngestConfig, loadIngestConfig } from '../../lambdas/core/config.js';
import type { DeviceEvent, DeviceState } from '../../lambdas/core/device.js';
import { DeviceCache } from '../../lambdas/core/device-cache.js';
import { flapDampingByType } from '../../lambdas/core/flap.js';
import { type IngestDeps, type IngestRecord, ingestBatch } from '../../lambdas/core/ingest.js';
import type { FlapDamping } from '../../lambdas/core/policy.js';
import type { CommitRequest, DeviceStore, EventPublisher, TouchRequest } from '../../lambdas/core/ports.js';
import { type SweepDeps, type SweepSettings, sweepShard } from '../../lambdas/core/sweep.js';
import { VirtualClock } from '../../sim/clock.js';
import { writeUnits } from '../../sim/memory/item-size.js';
import { MemoryWatermarks } from '../../sim/memory/watermark-store.js';
import { MemoryJobQueue, T0 } from './sweep-harness.js';

export const MIN = 60_000;
export const HOUR = 60 * MIN;
const TIMEOUT = 90_000;
/** Flap damping for the damped runs: 4 transitions within 20 min make a device flap until it has been stable 20 min. */
export const OUTAGE_FLAP: FlapDamping = { transitions: 4, windowMs: 20 * MIN };

/** An SNS that can be down: every event it accepts is logged in order. */
export class SwitchablePublisher implements EventPublisher {
  down = false;
  readonly log: DeviceEvent[] = [];
  attempts = 0;
  async publish(events: DeviceEvent[]) {
    this.attempts += events.length;
    if (this.down) return { failed: events };
    this.log.push(...structuredClone(events));
    return { failed: [] };
  }
}

export interface OutageOptions {
  store: DeviceStore;
  devices: number;
  /** Hours SNS is down. */
  hours: number;
  damping: boolean;
  /** Interval of the devices' messages while they are on, and of the driver's steps. @default 30 s */
  stepMs?: number;
  /** Interval of the sweep. @default 1 min */
  sweepEveryMs?: number;
  shardCount?: number;
  /** Size in bytes of a device item as stored, sampled every `sampleEveryMs` for every device. */
  itemBytes?: (deviceId: string) => Promise<number>;
  /** Size in bytes of a device item, read without a request (the memory model): measured around every heartbeat and
   * commit, and a heartbeat the store reports no units for is billed from it. */
  sizeOf?: (deviceId: string) => number;
  sampleEveryMs?: number;
  /** Whether any event is still pending for the device (spilled or in the outbox). @default through `store.get` */
  pending?: (deviceId: string) => Promise<boolean>;
  /** Device ids, for a table shared between runs. @default `flappy-<i>` */
  ids?: (i: number) => string;
}

export interface OutageReport {
  devices: string[];
  /** Events each device committed, in commit order. */
  committed: Map<string, DeviceEvent[]>;
  publisher: SwitchablePublisher;
  /** Transitions committed while SNS was down (commits that appended an event or were held by damping). */
  transitions: number;
  /** Write units the commits of those transitions cost (spills included), as the store reported them. */
  transitionUnits: number;
  /** Heartbeats written while SNS was down, with their write units as reported, the largest, and how many were
   * written while the device had events pending (all but the very first ones). */
  heartbeats: number;
  heartbeatUnits: number;
  maxHeartbeatUnits: number;
  /** The largest device item sampled during the outage, in bytes. */
  maxItemBytes: number;
  /** Sweep ticks after SNS came back until nothing was pending. */
  recoveryTicks: number;
  errors: unknown[];
}

/** Device i's pattern: 2 h flapping (on for 2–4 min with a message every step, off for 3 min, which is past the
 * 90 s timeout), then 1 h steadily on; phases shifted per device. */
function isOn(i: number, t: number): boolean {
  const offset = (i * 17 * MIN) % (3 * HOUR);
  const inPhase = (t - T0 + offset) % (3 * HOUR);
  if (inPhase >= 2 * HOUR) return true;
  const on = (2 + (i % 3)) * MIN;
  const cycle = on + 3 * MIN;
  return inPhase % cycle < on;
}

export async function runOutage(options: OutageOptions): Promise<OutageReport> {
  const stepMs = options.stepMs ?? 30_000;
  const sweepEveryMs = options.sweepEveryMs ?? MIN;
  const shardCount = options.shardCount ?? 2;
  const devices = Array.from({ length: options.devices }, (_, i) => options.ids?.(i) ?? `flappy-${i}`);
  const publisher = new SwitchablePublisher();
  publisher.down = true;
  const committed = new Map<string, DeviceEvent[]>(devices.map((id) => [id, []]));
  const report: OutageReport = {
    devices,
    committed,
    publisher,
    transitions: 0,
    transitionUnits: 0,
    heartbeats: 0,
    heartbeatUnits: 0,
    maxHeartbeatUnits: 0,
    maxItemBytes: 0,
    recoveryTicks: 0,
    errors: [],
  };
  const base = options.store;
  let outage = true;
  // Every commit that applied is a transition of the outage (or, with an empty append and no seq change, a rewrite).
  const measure = (deviceId: string) => {
    const bytes = options.sizeOf?.(deviceId) ?? 0;
    if (outage) report.maxItemBytes = Math.max(report.maxItemBytes, bytes);
    return bytes;
  };
  const store: DeviceStore = Object.assign(Object.create(base) as DeviceStore, {
    commit: async (request: CommitRequest) => {
      const before = measure(request.deviceId);
      const out = await base.commit(request);
      const after = measure(request.deviceId);
      const units = out.units ?? (options.sizeOf ? writeUnits(before, out.applied ? after : 0) : 0);
      if (out.applied) {
        committed.get(request.deviceId)?.push(...structuredClone(request.append));
        const transition = 'absent' in request.expect || out.after.seq !== request.expect.seq;
        if (outage && transition) {
          report.transitions++;
          report.transitionUnits += units;
        }
      } else if (outage) report.transitionUnits += units;
      return out;
    },
    touch: async (request: TouchRequest) => {
      const before = measure(request.deviceId);
      const out = await base.touch(request);
      const units = out.units ?? (options.sizeOf ? writeUnits(before, measure(request.deviceId)) : 0);
      if (outage && out.applied) {
        report.heartbeats++;
        report.heartbeatUnits += units;
        report.maxHeartbeatUnits = Math.max(report.maxHeartbeatUnits, units);
      }
      return out;
    },
  });

  const types = {
    flappy: { timeoutMs: TIMEOUT, precisionMs: 0, ...(options.damping ? { flap: OUTAGE_FLAP } : {}) },
  };
  const config: IngestConfig = {
    ...loadIngestConfig({ TABLE_NAME: 'outage', DEVICE_TYPES: JSON.stringify(types) }),
    shardCount,
  };
  const clock = new VirtualClock(T0);
  const now = clock.now;
  const cache = new DeviceCache(config.cacheSize);
  const settings: SweepSettings = {
    toleranceMs: 0,
    budgetMs: 60_000,
    pageSize: 50,
    concurrency: 8,
    republishAfterMs: 15_000,
    flapDamping: flapDampingByType(config.deviceTypes),
  };
  const queue = new MemoryJobQueue();
  const sweepDeps: SweepDeps = { settings, store, publisher, watermarks: new MemoryWatermarks(), queue, now };
  const ingestDeps: IngestDeps = {
    config,
    store,
    publisher,
    rejects: { send: async () => ({ failed: [] }) },
    cache,
    now,
  };
  let recordId = 0;
  const send = async (ids: string[]) => {
    const records: IngestRecord[] = ids.map((deviceId) => ({
      id: `r-${++recordId}`,
      body: JSON.stringify({ deviceId, deviceType: 'flappy' }),
      enteredAt: clock.t,
      partition: 'p',
    }));
    const { failedRecordIds } = await ingestBatch(records, ingestDeps, { ordered: false });
    if (failedRecordIds.size > 0) report.errors.push(new Error(`ingest failed ${[...failedRecordIds].join(', ')}`));
  };
  const sweepAll = async () => {
    for (let shard = 0; shard < shardCount; shard++) {
      const stats = await sweepShard({ shard: String(shard) }, sweepDeps);
      report.errors.push(...stats.errors);
    }
    for (let next = queue.jobs.shift(); next; next = queue.jobs.shift()) {
      report.errors.push(...(await sweepShard(next.job, sweepDeps)).errors);
    }
  };
  const sample = async () => {
    if (!options.itemBytes) return;
    for (const id of devices) report.maxItemBytes = Math.max(report.maxItemBytes, await options.itemBytes(id));
  };

  const end = T0 + options.hours * HOUR;
  const sampleEvery = options.sampleEveryMs ?? stepMs;
  for (; clock.t < end; clock.t += stepMs) {
    const on = devices.filter((_, i) => isOn(i, clock.t));
    if (on.length > 0) await send(on);
    if ((clock.t - T0) % sweepEveryMs === 0) await sweepAll();
    if ((clock.t - T0) % sampleEvery === 0) await sample();
  }
  await sample();

  // SNS is back. Devices stay on (so that damped ones settle online), the sweep re-publishes what is left.
  publisher.down = false;
  outage = false;
  const pending = options.pending ?? (async (id: string) => pendingIn(await base.get(id)));
  for (let tick = 0; tick < 120; tick++) {
    clock.t += sweepEveryMs;
    await send(devices);
    await sweepAll();
    report.recoveryTicks = tick + 1;
    const left = await Promise.all(devices.map(pending));
    if (!left.some(Boolean)) break;
  }
  return report;
}

/** What went wrong with delivery: per device, the first publication of every event, in publication order, must be
 * exactly the events committed, in commit (= seq) order; every publication of an event must have the committed
 * content; nothing may be pending. */
export async function deliveryViolations(report: OutageReport, store: DeviceStore): Promise<string[]> {
  const violations: string[] = [];
  for (const deviceId of report.devices) {
    const committed = report.committed.get(deviceId)!;
    const bySeq = new Map(committed.map((event) => [event.seq, event]));
    const published = report.publisher.log.filter((event) => event.deviceId === deviceId);
    const first: DeviceEvent[] = [];
    const seen = new Set<number>();
    for (const event of published) {
      if (!isDeepStrictEqual(event, bySeq.get(event.seq)))
        violations.push(`${event.eventId}: published as not committed`);
      if (!seen.has(event.seq)) {
        seen.add(event.seq);
        first.push(event);
      }
    }
    const got = first.map((event) => event.seq).join(',');
    const want = committed.map((event) => event.seq).join(',');
    if (got !== want) violations.push(`${deviceId}: first published seqs ${got}, committed ${want}`);
    if (pendingIn(await store.get(deviceId))) violations.push(`${deviceId}: events still pending`);
  }
  return violations;
}

/** Events pending in the item or its spills (outbox.ts `hasPendingEvents`, spelled out so that this driver also runs
 * against a store without spills). */
function pendingIn(state: DeviceState | undefined): boolean {
  const spills = state?.outboxSpills;
  return state !== undefined && (state.outbox.length > 0 || (spills !== undefined && spills.from < spills.to));
}
