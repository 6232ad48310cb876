// A model of the whole detection protocol for property tests: devices send messages into an ingest queue that
// delivers them late, out of order and more than once; the real ingest and sweep cores run over a DeviceStore (the
// in-memory model or DynamoDB Local), interleaved, with crashes injected between commit, publish and clear, and with
// the watermark held back. Every run ends by draining the queue and sweeping past every timeout, then checks
// I1 (no offline before lastSeen + timeout by the cutoff), I2 (every silent device reported) and I3 (per device,
// online/offline alternate; duplicates identical). With flap damping on (trackers), I3 becomes: the reported state
// alternates, a device.flapping is followed by nothing but its settled state, and every device ends settled.
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { type IngestConfig, loadIngestConfig } from '../../lambdas/core/config.js';
import type { DeviceEvent } from '../../lambdas/core/device.js';
import { DeviceCache } from '../../lambdas/core/device-cache.js';
import { flapDampingByType } from '../../lambdas/core/flap.js';
import { type IngestDeps, ingestBatch } from '../../lambdas/core/ingest.js';
import type { CommitRequest, DeviceStore, EventPublisher } from '../../lambdas/core/ports.js';
import { type SweepDeps, type SweepJob, sweepShard } from '../../lambdas/core/sweep.js';
import { sweepCutoff } from '../../lambdas/core/watermark.js';
import { random as seededRandom } from '../../local/random.js';
import { MemoryWatermarks } from './memory-watermarks.js';
import { MemoryJobQueue } from './sweep-harness.js';

export const MODEL_TYPES = {
  tracker: { timeoutMs: 1_000, precisionMs: 0 },
  meter: { timeoutMs: 3_000, precisionMs: 1_000 },
};
type TypeName = keyof typeof MODEL_TYPES;
const SHARDS = 2;
const REPUBLISH_AFTER_MS = 2_000;
const MAX_WINDOW = Math.max(...Object.values(MODEL_TYPES).map((p) => p.timeoutMs + p.precisionMs));
/** Flap damping of trackers when a scenario runs with `flap`: short enough that busy devices flap often. */
const FLAP = { transitions: 3, windowMs: 8_000 };
const T0 = 1_700_000_000_000;

type Crash = 'none' | 'publish-before' | 'publish-after' | 'publish-partial' | 'commit-after' | 'clear';
interface Faults {
  crash: Crash;
  /** Which call of the faulty kind crashes (1 = the first). */
  crashAt: number;
}
interface IngestAction extends Faults {
  kind: 'ingest';
  /** Pending messages delivered (indices into the queue) and already delivered ones delivered again. */
  picks: number[];
  redeliver: number[];
  /** Which ingest container (coalescing cache) takes the batch. */
  container: number;
}
interface SweepAction extends Faults {
  kind: 'sweep';
  shard: number;
  /** How far the watermark is held back behind what the ingest has really caught up to. */
  lagMs: number;
  budgetMs: number;
  /** Clock advance per clock read during the job, so that budgets run out. */
  stepMs: number;
  pageSize: number;
}
type Action =
  | { kind: 'send'; device: number; gapMs: number; typed: boolean }
  | IngestAction
  | SweepAction
  | ({ kind: 'continue'; index: number; keep: boolean } & Faults)
  | { kind: 'together'; ingest: IngestAction; sweeps: SweepAction[]; seed: number }
  | { kind: 'advance'; ms: number };

export interface Scenario {
  devices: TypeName[];
  actions: Action[];
}

const crashArb = fc.constantFrom<Crash>(
  'none',
  'none',
  'publish-before',
  'publish-after',
  'publish-partial',
  'commit-after',
  'clear',
);
const faultsArb = { crash: crashArb, crashAt: fc.integer({ min: 1, max: 2 }) };
const ingestArb: fc.Arbitrary<IngestAction> = fc.record({
  kind: fc.constant('ingest' as const),
  picks: fc.array(fc.nat(), { maxLength: 8 }),
  redeliver: fc.array(fc.nat(), { maxLength: 2 }),
  container: fc.nat(1),
  ...faultsArb,
});
const sweepArb: fc.Arbitrary<SweepAction> = fc.record({
  kind: fc.constant('sweep' as const),
  shard: fc.nat(SHARDS - 1),
  lagMs: fc.oneof(fc.constant(0), fc.nat(3_000)),
  budgetMs: fc.nat(40),
  stepMs: fc.constantFrom(0, 20, 50),
  pageSize: fc.constantFrom(1, 1, 2, 3, 50),
  ...faultsArb,
});

export function scenarioArb(options: { maxDevices: number; maxActions: number }): fc.Arbitrary<Scenario> {
  const action: fc.Arbitrary<Action> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant('send' as const),
        device: fc.nat(options.maxDevices - 1),
        gapMs: fc.nat(2_500),
        typed: fc.boolean(),
      }),
    },
    { weight: 3, arbitrary: ingestArb },
    { weight: 4, arbitrary: sweepArb },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('continue' as const),
        index: fc.nat(),
        keep: fc.boolean(),
        ...faultsArb,
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('together' as const),
        ingest: ingestArb,
        sweeps: fc.array(sweepArb, { minLength: 1, maxLength: 2 }),
        seed: fc.integer(),
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.nat(8_000) }) },
  );
  return fc.record({
    devices: fc.array(fc.constantFrom<TypeName>('tracker', 'meter'), { minLength: 1, maxLength: options.maxDevices }),
    actions: fc.array(action, { minLength: 5, maxLength: options.maxActions, size: 'max' }),
  });
}

/** An injected crash: the process died at this point. */
class Crashed extends Error {
  constructor(where: string) {
    super(`injected crash: ${where}`);
    this.name = 'Crashed';
  }
}

interface Message {
  id: string;
  deviceId: string;
  t: number;
  deviceType?: string;
}

/** Deliberate protocol faults, to show the property notices them. */
export type Mutant = 'wall-clock-cutoff' | 'no-republish';

export interface ScenarioStats {
  /** Offline events published before the final catch-up phase. */
  earlyOffline: number;
  offlineEvents: number;
  onlineEvents: number;
  crashes: number;
  continuations: number;
}

/** Runs one scenario; throws with every invariant violation it found. `prefix` keeps runs that share a table apart. */
export async function runScenario(
  scenario: Scenario,
  base: DeviceStore,
  options: { prefix?: string; mutant?: Mutant; stats?: ScenarioStats; flap?: boolean } = {},
): Promise<void> {
  const prefix = options.prefix ?? '';
  const stats = options.stats;
  const clock = { t: T0, step: 0 };
  const now = () => {
    const t = clock.t;
    clock.t += clock.step;
    return t;
  };
  const config: IngestConfig = {
    ...loadIngestConfig({
      TABLE_NAME: 'model',
      DEVICE_TYPES: JSON.stringify(
        options.flap ? { ...MODEL_TYPES, tracker: { ...MODEL_TYPES.tracker, flap: FLAP } } : MODEL_TYPES,
      ),
    }),
    shardCount: SHARDS,
    writeConcurrency: 4,
  };
  const deviceIds = scenario.devices.map((_, i) => `${prefix}d${i}`);
  const typeOf = new Map(deviceIds.map((id, i) => [id, scenario.devices[i]!]));
  const caches = [new DeviceCache(100), new DeviceCache(100)];
  const log: DeviceEvent[] = [];
  const sent = new Map<string, number[]>(deviceIds.map((id) => [id, []]));
  let pending: Message[] = [];
  const delivered: Message[] = [];
  const queue = new MemoryJobQueue();
  const watermarks = new MemoryWatermarks(T0);
  // The mutant judges by the wall clock: what the seed implementation did.
  const cutoffSource = options.mutant === 'wall-clock-cutoff' ? new MemoryWatermarks() : watermarks;
  const violations: string[] = [];
  let messages = 0;

  const publisher = (faults: Faults): EventPublisher => {
    let calls = 0;
    return {
      async publish(events) {
        calls++;
        if (calls === faults.crashAt) {
          if (faults.crash === 'publish-before') throw new Crashed('before publish');
          if (faults.crash === 'publish-after') {
            log.push(...structuredClone(events));
            throw new Crashed('after publish, before clear');
          }
          if (faults.crash === 'publish-partial') {
            log.push(...structuredClone(events.filter((_, i) => i % 2 === 1)));
            return { failed: events.filter((_, i) => i % 2 === 0) };
          }
        }
        log.push(...structuredClone(events));
        return { failed: [] };
      },
    };
  };

  /** The store as one process sees it: crashes where the faults say, and (when concurrent) random interleaving. */
  const storeFor = (faults: Faults, random?: () => number, onOffline?: (request: CommitRequest) => void) => {
    let commits = 0;
    let clears = 0;
    const interleave = async () => {
      for (let n = random ? Math.floor(random() * 4) : 0; n > 0; n--) await Promise.resolve();
    };
    const store: DeviceStore = {
      touch: async (request) => {
        await interleave();
        return base.touch(request);
      },
      commit: async (request) => {
        await interleave();
        const out = await base.commit(request);
        if (out.applied) {
          if (request.state.status === 'OFFLINE') onOffline?.(request);
          if (faults.crash === 'commit-after' && ++commits === faults.crashAt) throw new Crashed('after commit');
        }
        return out;
      },
      rearm: async (deviceId, policy, cutoff) => {
        await interleave();
        return base.rearm(deviceId, policy, cutoff);
      },
      park: async (request) => {
        await interleave();
        return base.park(request);
      },
      clearOutbox: async (deviceId, seq) => {
        await interleave();
        if (faults.crash === 'clear' && ++clears === faults.crashAt) throw new Crashed('before clear');
        return base.clearOutbox(deviceId, seq);
      },
      get: async (deviceId) => {
        await interleave();
        return base.get(deviceId);
      },
      queryExpired: async (shard, cutoff, limit, cursor) => {
        await interleave();
        return base.queryExpired(shard, cutoff, limit, cursor);
      },
      queryOutbox: async (shard, before, limit, cursor) => {
        await interleave();
        return base.queryOutbox(shard, before, limit, cursor);
      },
    };
    return store;
  };

  /** Everything that entered before it has been ingested: the watermark a perfect probe would give. */
  const caughtUpTo = () => Math.min(clock.t, ...pending.map((m) => m.t - 1));

  const ingest = async (action: IngestAction, random?: () => number) => {
    const batch: Message[] = [];
    for (const pick of action.picks) {
      const message = pending[pick % Math.max(1, pending.length)];
      if (message && !batch.includes(message)) batch.push(message);
    }
    const again = action.redeliver.map((i) => delivered[i % Math.max(1, delivered.length)]);
    const records = [...batch, ...again.filter((m): m is Message => m !== undefined && !batch.includes(m))].map(
      (m) => ({
        id: m.id,
        body: JSON.stringify({ deviceId: m.deviceId, ...(m.deviceType ? { deviceType: m.deviceType } : {}) }),
        enteredAt: m.t,
        partition: 'p',
      }),
    );
    if (records.length === 0) return;
    const deps: IngestDeps = {
      config,
      store: storeFor(action, random),
      publisher: publisher(action),
      rejects: { send: async () => ({ failed: [] }) },
      cache: caches[action.container % caches.length]!,
      now,
    };
    try {
      const result = await ingestBatch(records, deps, { ordered: false });
      const done = batch.filter((m) => !result.failedRecordIds.has(m.id));
      pending = pending.filter((m) => !done.includes(m));
      delivered.push(...done);
    } catch (error) {
      // The Lambda died: the whole batch stays in the queue and is delivered again.
      if (!(error instanceof Crashed)) throw error;
      if (stats) stats.crashes++;
    }
  };

  const checkOffline = (request: CommitRequest, cutoff: number) => {
    const deviceId = request.deviceId;
    const type = typeOf.get(deviceId);
    if (!type) return; // another run's leftover device in a shared table
    const { timeoutMs, precisionMs } = MODEL_TYPES[type];
    const times = sent.get(deviceId)!;
    const latest = Math.max(...times.filter((t) => t <= cutoff));
    if (latest + timeoutMs > cutoff) {
      violations.push(`I1: ${deviceId} offline at cutoff ${cutoff - T0} but a message entered at ${latest - T0}`);
    }
    const { lastSeen, since } = request.state;
    if (!times.includes(lastSeen)) violations.push(`${deviceId}: offline lastSeen ${lastSeen - T0} was never sent`);
    if (since !== lastSeen + timeoutMs + precisionMs || since > cutoff) {
      violations.push(`${deviceId}: offline since ${since - T0} is not the deadline that expired by ${cutoff - T0}`);
    }
  };

  const sweep = async (
    job: SweepJob,
    action: Faults & { budgetMs?: number; pageSize?: number; stepMs?: number },
    random?: () => number,
  ) => {
    let startedAt: number | undefined;
    const offline: CommitRequest[] = [];
    const deps: SweepDeps = {
      settings: {
        toleranceMs: 0,
        budgetMs: action.budgetMs ?? 60_000,
        pageSize: action.pageSize ?? 50,
        concurrency: 3,
        republishAfterMs: options.mutant === 'no-republish' ? 1e12 : REPUBLISH_AFTER_MS,
        flapDamping: flapDampingByType(config.deviceTypes),
      },
      store: storeFor(action, random, (request) => offline.push(request)),
      publisher: publisher(action),
      watermarks: cutoffSource,
      queue,
      now: () => {
        const t = now();
        startedAt ??= t;
        return t;
      },
    };
    clock.step = action.stepMs ?? 0;
    try {
      const result = await sweepShard(job, deps);
      for (const error of result.errors) if (!(error instanceof Crashed)) throw error;
      if (stats && result.continued) stats.continuations++;
      if (stats) stats.crashes += result.errors.length;
    } catch (error) {
      if (!(error instanceof Crashed)) throw error;
      if (stats) stats.crashes++;
    } finally {
      clock.step = 0;
    }
    const cutoff = job.cutoff ?? sweepCutoff(startedAt!, await cutoffSource.read(), 0)!;
    for (const request of offline) checkOffline(request, cutoff);
  };

  const tick = (action: SweepAction) => {
    watermarks.set(caughtUpTo() - action.lagMs);
    return { shard: String(action.shard % SHARDS) };
  };

  for (const action of scenario.actions) {
    switch (action.kind) {
      case 'send': {
        clock.t += action.gapMs;
        const deviceId = deviceIds[action.device % deviceIds.length]!;
        const type = typeOf.get(deviceId)!;
        // The default type (tracker) may go unnamed; a meter always names its type.
        const deviceType = type === 'meter' || action.typed ? type : undefined;
        pending.push({ id: `${prefix}m${++messages}`, deviceId, t: clock.t, ...(deviceType ? { deviceType } : {}) });
        sent.get(deviceId)!.push(clock.t);
        break;
      }
      case 'advance':
        clock.t += action.ms;
        break;
      case 'ingest':
        await ingest(action);
        break;
      case 'sweep':
        await sweep(tick(action), action);
        break;
      case 'continue': {
        const index = action.index % Math.max(1, queue.jobs.length);
        const next = queue.jobs[index];
        if (!next) break;
        if (!action.keep) queue.jobs.splice(index, 1);
        await sweep(next.job, action);
        break;
      }
      case 'together': {
        const random = seededRandom(action.seed);
        // One watermark for the group: the ingest batch running alongside is still pending, hence not credited.
        watermarks.set(caughtUpTo() - Math.max(...action.sweeps.map((s) => s.lagMs)));
        const jobs = action.sweeps.map((s) => ({ shard: String(s.shard % SHARDS) }));
        await Promise.all([ingest(action.ingest, random), ...action.sweeps.map((s, i) => sweep(jobs[i]!, s, random))]);
        break;
      }
    }
  }

  if (stats) stats.earlyOffline += log.filter((e) => e.type === 'device.offline').length;
  // Ingestion catches up, then time passes every timeout and the sweeps run without faults.
  const calm: Faults = { crash: 'none', crashAt: 0 };
  for (let round = 0; pending.length > 0 && round < 10; round++) {
    await ingest({ kind: 'ingest', picks: pending.map((_, i) => i), redeliver: [], container: 0, ...calm });
  }
  if (pending.length > 0) violations.push(`ingest never caught up: ${pending.length} messages pending`);
  for (let next = queue.jobs.shift(); next; next = queue.jobs.shift()) await sweep(next.job, calm);
  // With damping, a device that flapped until the end goes offline (held) and settles a window later.
  clock.t += MAX_WINDOW + (options.flap ? FLAP.windowMs : 0);
  const finalCutoff = clock.t;
  const passes = options.flap ? [0, 1, 2] : [0, 1];
  for (const pass of passes) {
    watermarks.set(caughtUpTo());
    for (let shard = 0; shard < SHARDS; shard++) await sweep({ shard: String(shard) }, calm);
    for (let next = queue.jobs.shift(); next; next = queue.jobs.shift()) await sweep(next.job, calm);
    if (pass === passes.length - 2) clock.t += REPUBLISH_AFTER_MS; // then every outbox left behind is re-published
  }

  for (const deviceId of deviceIds) {
    const times = sent.get(deviceId)!;
    const state = await base.get(deviceId);
    if (times.length === 0) {
      if (state) violations.push(`${deviceId} exists without a message`);
      continue;
    }
    const { timeoutMs, precisionMs } = MODEL_TYPES[typeOf.get(deviceId)!];
    // I2: silent past timeout + precision by the final cutoff, so reported offline, and nothing left unpublished.
    if (state?.status !== 'OFFLINE') violations.push(`I2: ${deviceId} is ${state?.status} at ${finalCutoff - T0}`);
    if (state && state.outbox.length > 0) violations.push(`I4: ${deviceId} has unpublished events`);
    const events = log.filter((e) => e.deviceId === deviceId);
    const first = new Map<string, DeviceEvent>();
    for (const event of events) {
      const seen = first.get(event.eventId);
      if (!seen) first.set(event.eventId, event);
      else if (!isDeepStrictEqual(seen, event)) violations.push(`I3: ${event.eventId} published with two contents`);
    }
    const distinct = [...first.values()].sort((a, b) => a.seq - b.seq);
    if (stats) {
      stats.offlineEvents += distinct.filter((e) => e.type === 'device.offline').length;
      stats.onlineEvents += distinct.filter((e) => e.type === 'device.online').length;
    }
    for (const event of distinct) {
      if (!times.includes(event.lastSeen)) violations.push(`${event.eventId}: lastSeen was never sent`);
    }
    if (options.flap) {
      violations.push(...dampedOrder(deviceId, distinct));
      if (state?.flapping) violations.push(`I3: ${deviceId} never settled`);
    } else {
      // I3: first publications in seq order, one per transition, alternating online (odd) / offline (even).
      distinct.forEach((event, i) => {
        const expected = i % 2 === 0 ? 'device.online' : 'device.offline';
        if (event.seq !== i + 1 || event.type !== expected) {
          violations.push(`I3: ${deviceId} event #${i + 1} is ${event.type} seq ${event.seq}`);
        }
      });
      if (state && distinct.length !== state.seq) {
        violations.push(`I4: ${deviceId} committed ${state.seq} transitions, published ${distinct.length}`);
      }
    }
    const last = distinct[distinct.length - 1];
    if (last && last.lastSeen < Math.max(...times) - precisionMs) {
      violations.push(
        `I2: ${deviceId} reported from lastSeen ${last.lastSeen - T0}, last message ${Math.max(...times) - T0}`,
      );
    }
    if (last && last.type === 'device.offline' && last.since !== last.lastSeen + timeoutMs + precisionMs) {
      violations.push(`${last.eventId}: since is not lastSeen + timeout + precision`);
    }
  }
  if (violations.length > 0) throw new Error(violations.join('\n'));
}

/** I3 with flap damping, over a device's distinct events in seq order: the reported state alternates, and once
 * device.flapping is out, the next event is the settled state (which may repeat the state reported before), not
 * before the device was stable for the window. That it settles on time is shown by the operator and flap tests. */
function dampedOrder(deviceId: string, events: DeviceEvent[]): string[] {
  const violations: string[] = [];
  let reported: 'ONLINE' | 'OFFLINE' | 'FLAPPING' | undefined;
  for (const event of events) {
    const state = event.type === 'device.online' ? 'ONLINE' : event.type === 'device.offline' ? 'OFFLINE' : 'FLAPPING';
    const ok = reported === 'FLAPPING' ? event.settled === true : !event.settled && state !== reported;
    if (!ok) violations.push(`I3: ${deviceId} ${event.eventId} ${event.type} after ${reported ?? 'nothing'}`);
    if (event.settled && event.detectedAt < event.since + FLAP.windowMs) {
      violations.push(`I3: ${event.eventId} settled before the device was stable for the window`);
    }
    reported = state;
  }
  return violations;
}
