// The whole detection protocol under the faults AWS produces, for property tests. Devices send into an SQS ingest
// queue (sim/queues/sqs.ts: unordered, at-least-once, visibility timeout, dead-letter queue) or a Kinesis shard
// (sim/queues/kinesis.ts: in order, retried from the first failed record, skipped after its retries); the dispatcher
// puts signed probes into the same source; the real ingest core runs a batch at a time as the SQS handler does (a batch that
// throws or times out is answered with every record failed, and failures are held: progress.ts) over a DeviceStore
// (the in-memory model or DynamoDB Local), with single devices throttled, crashes between commit, publish and clear,
// SNS down for long stretches, forged probes and device payloads that look like probes; the real sweep core judges
// by the watermarks those probes and holds make, never by a perfect one. Operators override policies, mute and
// decommission devices while ingest containers hold warm caches. Every run ends by draining the queue and sweeping
// past every timeout, then checks
// - I1 no false offline: an offline transition claims a silence (`timeoutMs` before `since`, no message entered in
//   it) that really happened, and is committed by a cutoff at or past `since`;
// - I2 every silent device is reported, nothing left unpublished;
// - I3 per device, online/offline alternate (a decommission starts a new life), `since` never goes back, and
//   duplicates are identical; with flap damping, the damped order (device.flapping is followed only by the
//   settled state);
// - I4 every committed transition published, and the device's last message reflected.
// The weaker guarantee for data the source drops: a message moved to the dead-letter queue is as if never sent,
// until someone redrives it (README, "Guarantees under faults").
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { type AdminDeps, forget, mute, setPolicy, unmute } from '../../lambdas/core/admin.js';
import {
  type BatchedSettings,
  notingAdminStore,
  type ShardEntry,
  type StateCache,
  sweepBatchedShard,
} from '../../lambdas/core/batched.js';
import { type IngestConfig, loadIngestConfig } from '../../lambdas/core/config.js';
import type { DeviceEvent } from '../../lambdas/core/device.js';
import { DeviceCache } from '../../lambdas/core/device-cache.js';
import { flapDampingByType } from '../../lambdas/core/flap.js';
import {
  emptyStats,
  type IngestDeps,
  type IngestRecord,
  type IngestResult,
  ingestBatch,
} from '../../lambdas/core/ingest.js';
import type { Policy } from '../../lambdas/core/policy.js';
import type {
  AdminStore,
  CommitRequest,
  DeviceStore,
  EventPublisher,
  ShardStateStore,
  SightingLog,
} from '../../lambdas/core/ports.js';
import { probeBody } from '../../lambdas/core/probe.js';
import { recordProgress } from '../../lambdas/core/progress.js';
import { type SweepDeps, type SweepJob, sweepShard } from '../../lambdas/core/sweep.js';
import { sweepCutoff, type WatermarkSnapshot, type WatermarkStore } from '../../lambdas/core/watermark.js';
import { VirtualClock } from '../../sim/clock.js';
import { MemoryWatermarks } from '../../sim/memory/watermark-store.js';
import { KinesisShardModel } from '../../sim/queues/kinesis.js';
import { SqsModel } from '../../sim/queues/sqs.js';
import { random as seededRandom } from '../../sim/random.js';
import { MemoryShardStates, MemorySightingLog } from './memory-batched.js';
import { MemoryJobQueue } from './sweep-harness.js';

export const MODEL_TYPES = {
  tracker: { timeoutMs: 1_000, precisionMs: 0 },
  meter: { timeoutMs: 3_000, precisionMs: 1_000 },
};
type TypeName = keyof typeof MODEL_TYPES;
const SHARDS = 2;
const INDEX_SHARDS_BATCHED = 3;
const REPUBLISH_AFTER_MS = 2_000;
/** The queue's visibility timeout (a failed record comes back after 5 s, then 20 s: progress.ts), the ingest's batch
 * timeout, and receives before the dead-letter queue. */
const VISIBILITY_MS = 20_000;
const BATCH_TIMEOUT_MS = 500;
const MAX_RECEIVES = 3;
/** Policies an operator override may set. */
const OVERRIDES: Array<Policy | undefined> = [
  undefined,
  { timeoutMs: 500, precisionMs: 0 },
  { timeoutMs: 2_000, precisionMs: 500 },
  { timeoutMs: 1_000, precisionMs: 2_000 },
];
const POLICIES = [...Object.values(MODEL_TYPES), ...OVERRIDES].filter((p): p is Policy => p !== undefined);
/** Past any deadline: a skip horizon (an old precision) plus the longest timeout and precision. */
const MAX_WINDOW = Math.max(...POLICIES.map((p) => p.timeoutMs)) + 2 * Math.max(...POLICIES.map((p) => p.precisionMs));
/** Flap damping of trackers when a scenario runs with `flap`: short enough that busy devices flap often. */
const FLAP = { transitions: 3, windowMs: 8_000 };
const T0 = 1_700_000_000_000;
const QUEUE = 'arn:aws:sqs:us-east-1:000000000000:model-ingest';
const STREAM = 'arn:aws:kinesis:us-east-1:000000000000:stream/model-ingest';
/** Lambda's MaximumRetryAttempts on the Kinesis source in the model. */
const KINESIS_RETRIES = 2;
const KEY = new Uint8Array(32).fill(42);
const FORGER_KEY = new Uint8Array(32).fill(43);

type Crash = 'none' | 'publish-before' | 'publish-after' | 'publish-partial' | 'commit-after' | 'clear' | 'timeout';
interface Faults {
  crash: Crash;
  /** Which call of the faulty kind crashes (1 = the first). */
  crashAt: number;
}
interface IngestAction extends Faults {
  kind: 'ingest';
  /** Visible messages received (indices, any order), or every visible one (a poller keeping up), and already
   * deleted ones delivered again. */
  picks: number[] | 'all';
  redeliver: number[];
  /** Which ingest container (coalescing cache) takes the batch. */
  container: number;
  /** Devices (indices) whose writes fail in this batch: DynamoDB throttling of single keys. */
  throttled: number[];
}
interface SweepAction extends Faults {
  kind: 'sweep';
  shard: number;
  budgetMs: number;
  /** Clock advance per clock read during the job, so that budgets run out. */
  stepMs: number;
  pageSize: number;
}
type OperatorAction =
  | { kind: 'override'; device: number; policy: number }
  | { kind: 'mute'; device: number; forMs: number }
  | { kind: 'unmute'; device: number }
  | { kind: 'forget'; device: number };
type Action =
  | { kind: 'send'; device: number; gapMs: number; typed: boolean; probeField: boolean }
  | { kind: 'probe' }
  | { kind: 'forge'; aheadMs: number }
  | IngestAction
  | SweepAction
  | ({ kind: 'continue'; index: number; keep: boolean } & Faults)
  | { kind: 'together'; ingest: IngestAction; sweeps: SweepAction[]; seed: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'sns'; down: boolean }
  | OperatorAction;

export type SourceKind = 'sqs' | 'kinesis';
export type Engine = 'per-device' | 'batched';

export interface Scenario {
  /** Where devices send: an SQS queue, or one Kinesis shard. */
  source: SourceKind;
  devices: TypeName[];
  actions: Action[];
}

const crashArb = fc.constantFrom<Crash>(
  'none',
  'none',
  'none',
  'publish-before',
  'publish-after',
  'publish-partial',
  'commit-after',
  'clear',
  'timeout',
);
const faultsArb = { crash: crashArb, crashAt: fc.integer({ min: 1, max: 2 }) };
const ingestArb = (maxDevices: number): fc.Arbitrary<IngestAction> =>
  fc.record({
    kind: fc.constant('ingest' as const),
    picks: fc.oneof(fc.array(fc.nat(), { maxLength: 8 }), fc.constant('all' as const)),
    redeliver: fc.array(fc.nat(), { maxLength: 2 }),
    container: fc.nat(1),
    throttled: fc.oneof(
      { weight: 3, arbitrary: fc.constant<number[]>([]) },
      { weight: 1, arbitrary: fc.array(fc.nat(maxDevices - 1), { maxLength: 2 }) },
    ),
    ...faultsArb,
  });
const sweepArb: fc.Arbitrary<SweepAction> = fc.record({
  kind: fc.constant('sweep' as const),
  shard: fc.nat(SHARDS - 1),
  budgetMs: fc.nat(40),
  stepMs: fc.constantFrom(0, 20, 50),
  pageSize: fc.constantFrom(1, 1, 2, 3, 50),
  ...faultsArb,
});

export function scenarioArb(options: {
  maxDevices: number;
  maxActions: number;
  /** Operator actions (override, mute, unmute, decommission) racing the pipeline. @default false */
  operators?: boolean;
  /** @default both */
  sources?: SourceKind[];
  /** Longest gap before a device's message. @default 2,500 ms */
  maxGapMs?: number;
}): fc.Arbitrary<Scenario> {
  const device = fc.nat(options.maxDevices - 1);
  const actions: Array<fc.WeightedArbitrary<Action>> = [
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant('send' as const),
        device,
        gapMs: fc.nat(options.maxGapMs ?? 2_500),
        typed: fc.boolean(),
        probeField: fc.boolean(),
      }),
    },
    { weight: 5, arbitrary: fc.constant({ kind: 'probe' as const }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('forge' as const), aheadMs: fc.nat(20_000) }) },
    { weight: 3, arbitrary: ingestArb(options.maxDevices) },
    { weight: 3, arbitrary: sweepArb },
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
        ingest: ingestArb(options.maxDevices),
        sweeps: fc.array(sweepArb, { minLength: 1, maxLength: 2 }),
        seed: fc.integer(),
      }),
    },
    // The scheduler not running, or ingestion stalled, for up to a few visibility timeouts.
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.nat(8_000) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('sns' as const), down: fc.boolean() }) },
  ];
  if (options.operators) {
    actions.push(
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant('override' as const), device, policy: fc.nat(OVERRIDES.length - 1) }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('mute' as const), device, forMs: fc.nat(6_000) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('unmute' as const), device }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('forget' as const), device }) },
    );
  }
  return fc.record({
    source: fc.constantFrom<SourceKind>(...(options.sources ?? ['sqs', 'kinesis'])),
    devices: fc.array(fc.constantFrom<TypeName>('tracker', 'meter'), { minLength: 1, maxLength: options.maxDevices }),
    actions: fc.array(fc.oneof(...actions), { minLength: 5, maxLength: options.maxActions, size: 'max' }),
  });
}

/** An injected crash: the process died at this point. */
class Crashed extends Error {
  constructor(where: string) {
    super(`injected crash: ${where}`);
    this.name = 'Crashed';
  }
}

/** Deliberate protocol faults, to show the property notices them. */
export type Mutant =
  /** Judge by the wall clock: what the seed implementation did. */
  | 'wall-clock-cutoff'
  /** No outbox re-publish: a crash between commit and publish loses the event. */
  | 'no-republish'
  /** The ingest does not hold failed records. */
  | 'no-hold'
  /** A device payload with a numeric "probe" field is taken for a probe (the classifier before signatures). */
  | 'probe-field-is-probe'
  /** Probes are not secret (a producer signs with the deployment's key) and a shard credits a probe's stamp, not its
   * arrival: the first version. */
  | 'forgeable-probes'
  /** Batched engine: operators' changes leave no note in the shard's log, so the sweep trusts its state. */
  | 'batched-no-notes'
  /** Batched engine: each read of the log starts where the last one ended, with no look back. */
  | 'batched-no-lookback';

export interface ScenarioStats {
  /** Offline events published before the final catch-up phase. */
  earlyOffline: number;
  offlineEvents: number;
  onlineEvents: number;
  crashes: number;
  continuations: number;
  /** Records failed and held, probes credited, messages dead-lettered. */
  held: number;
  credited: number;
  deadLettered: number;
  /** Batched engine: sightings merged in memory, devices settled through their items, sweeps on a warm state, saves
   * that lost to a concurrent job of the shard. */
  batched?: { merged: number; slow: number; warm: number; conflicts: number; checkpoints: number };
}

interface Sent {
  id: string;
  t: number;
}

/** Runs one scenario; throws with every invariant violation it found. `prefix` keeps runs that share a table apart. */
export async function runScenario(
  scenario: Scenario,
  base: DeviceStore & AdminStore,
  options: {
    prefix?: string;
    mutant?: Mutant;
    stats?: ScenarioStats;
    flap?: boolean;
    /** The batched engine: the ingest appends sightings to shard logs, the sweep keeps each shard's state. */
    engine?: Engine;
    /** Where the batched engine keeps its logs and states (stamping by the clock given). @default in memory */
    shardStores?: (now: () => number) => { log: SightingLog; states: ShardStateStore<ShardEntry> };
  } = {},
): Promise<void> {
  const prefix = options.prefix ?? '';
  const stats = options.stats;
  const clock = new VirtualClock(T0);
  const now = clock.now;
  const config: IngestConfig = {
    ...loadIngestConfig({
      TABLE_NAME: 'model',
      DEVICE_TYPES: JSON.stringify(
        options.flap ? { ...MODEL_TYPES, tracker: { ...MODEL_TYPES.tracker, flap: FLAP } } : MODEL_TYPES,
      ),
    }),
    // The batched engine's items keep index shards of their own (3) beside its 2 shards of logs and states.
    shardCount: options.engine === 'batched' ? INDEX_SHARDS_BATCHED : SHARDS,
    writeConcurrency: 4,
  };
  const deviceIds = scenario.devices.map((_, i) => `${prefix}d${i}`);
  const typeOf = new Map(deviceIds.map((id, i) => [id, scenario.devices[i]!]));
  const caches = [new DeviceCache(100), new DeviceCache(100)];
  const log: DeviceEvent[] = [];
  const sent = new Map<string, Sent[]>(deviceIds.map((id) => [id, []]));
  const deviceOf = new Map<string, string>();
  const source = ingestSource(scenario.source);
  const sweepQueue = new MemoryJobQueue();
  const watermarks = new MemoryWatermarks();
  await watermarks.setLive([source.partition]);
  const holdsOn = options.mutant !== 'no-hold';
  const progressWatermarks: Pick<WatermarkStore, 'credit' | 'hold'> = {
    credit: (partition, at, release) => watermarks.credit(partition, at, release),
    hold: (partition, at, failedAt) => (holdsOn ? watermarks.hold(partition, at, failedAt) : Promise.resolve()),
  };
  const wallClock = new MemoryWatermarks();
  const cutoffSource = options.mutant === 'wall-clock-cutoff' ? wallClock : watermarks;
  const retiredAtSeq = new Map<string, number[]>(deviceIds.map((id) => [id, []]));
  /** The latest tombstone's `lastSeen`: messages entered up to it do not bring the device back. */
  const retiredThrough = new Map<string, number>();
  const everPrecision = new Map<string, number>(deviceIds.map((id) => [id, MODEL_TYPES[typeOf.get(id)!].precisionMs]));
  let snsDown = false;
  let muteEnd = T0;
  const violations: string[] = [];
  let messages = 0;
  const batched = options.engine === 'batched';
  const { log: sightingLog, states: shardStates } = options.shardStores?.(() => clock.t) ?? {
    log: new MemorySightingLog(() => clock.t),
    states: new MemoryShardStates(),
  };
  /** Two sweep containers, each with its warm shard states. */
  const stateCaches: StateCache[] = [new Map(), new Map()];
  const batchedSettings: BatchedSettings = {
    shardCount: SHARDS,
    lookbackMs: BATCH_TIMEOUT_MS,
    checkpointEveryMs: 30_000,
    refreshAfterMs: config.housekeepingTtlMs / 2,
  };

  const publisher = (faults: Faults): EventPublisher => {
    let calls = 0;
    return {
      async publish(events) {
        if (snsDown) return { failed: events };
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

  /** The store as one process sees it: crashes and throttled devices where the faults say, a timeout that never
   * answers (`hung` resolves when it starts), and (when concurrent) random interleaving. */
  const storeFor = (
    faults: Faults & { throttled?: readonly string[] },
    random?: () => number,
    onOffline?: (request: CommitRequest) => void,
  ) => {
    let commits = 0;
    let clears = 0;
    let calls = 0;
    let hang: (() => void) | undefined;
    const hung = new Promise<void>((resolve) => {
      hang = resolve;
    });
    const step = async (deviceId?: string) => {
      for (let n = random ? Math.floor(random() * 4) : 0; n > 0; n--) await Promise.resolve();
      if (faults.crash === 'timeout' && ++calls >= faults.crashAt) {
        hang!();
        await new Promise(() => {}); // the function ran out of time here
      }
      if (deviceId && faults.throttled?.includes(deviceId)) throw new Error(`throttled (injected): ${deviceId}`);
    };
    const store: DeviceStore = {
      touch: async (request) => {
        await step(request.deviceId);
        return base.touch(request);
      },
      commit: async (request) => {
        await step(request.deviceId);
        const out = await base.commit(request);
        if (out.applied) {
          if (request.state.status === 'OFFLINE') onOffline?.(request);
          if (faults.crash === 'commit-after' && ++commits === faults.crashAt) throw new Crashed('after commit');
        }
        return out;
      },
      rearm: async (deviceId, policy, cutoff) => {
        await step(deviceId);
        return base.rearm(deviceId, policy, cutoff);
      },
      park: async (request) => {
        await step(request.deviceId);
        return base.park(request);
      },
      clearOutbox: async (deviceId, seq) => {
        await step(deviceId);
        if (faults.crash === 'clear' && ++clears === faults.crashAt) throw new Crashed('before clear');
        return base.clearOutbox(deviceId, seq);
      },
      get: async (deviceId) => {
        await step(deviceId);
        return base.get(deviceId);
      },
      queryExpired: async (shard, cutoff, limit, cursor) => {
        await step();
        return base.queryExpired(shard, cutoff, limit, cursor);
      },
      queryOutbox: async (shard, before, limit, cursor) => {
        await step();
        return base.queryOutbox(shard, before, limit, cursor);
      },
    };
    const log: SightingLog = {
      append: async (shard, record) => {
        await step(record.sightings?.find((s) => faults.throttled?.includes(s.deviceId))?.deviceId);
        return sightingLog.append(shard, record);
      },
      read: async (shard, after) => {
        await step();
        return sightingLog.read(shard, after);
      },
    };
    return { store, log, hung };
  };

  /** One invocation of the SQS ingest handler: a receive, the batch, holds and credits, the partial response. */
  const ingest = async (action: IngestAction, random?: () => number) => {
    const batch = source.receive(clock.t, action);
    if (batch.length === 0) return;
    const records: IngestRecord[] = batch.map((m) => ({
      id: m.id,
      body: options.mutant === 'probe-field-is-probe' ? probeFieldIsProbe(m.body, source) : m.body,
      enteredAt: m.enteredAt,
      partition: source.partition,
      source: source.arn,
      ...(m.receives !== undefined ? { receiptHandle: m.id, receiveCount: m.receives } : {}),
    }));
    const throttled = action.throttled.map((i) => deviceIds[i % deviceIds.length]!);
    const { store, log: faultyLog, hung } = storeFor({ ...action, throttled }, random);
    const deps: IngestDeps = {
      config,
      store,
      ...(batched ? { sightings: { log: faultyLog, shardCount: SHARDS } } : {}),
      publisher: publisher(action),
      rejects: { send: async () => ({ failed: [] }) },
      cache: caches[action.container % caches.length]!,
      now,
      probeKey: { get: async () => KEY },
    };
    // As the handler answers: a batch that throws or runs out of time has every record failed.
    const allFailed = (): IngestResult => ({
      failedRecordIds: new Set(records.map((r) => r.id)),
      probes: [],
      stats: emptyStats(records.length),
    });
    let result: IngestResult;
    try {
      result = await Promise.race([ingestBatch(records, deps, { ordered: source.ordered }), hung.then(allFailed)]);
    } catch (error) {
      if (!(error instanceof Crashed)) throw error;
      if (stats) stats.crashes++;
      result = allFailed();
    }
    const progress = await recordProgress(
      records,
      result,
      {
        watermarks: progressWatermarks,
        queue: {
          state: async () => ({ visible: source.visible(clock.t), visibilityTimeoutMs: VISIBILITY_MS }),
          retryAfter: async (_partition, handles, delaySeconds) => source.retryAfter(clock.t, handles, delaySeconds),
        },
        // Exact in this model, where one batch runs at a time: a probe counts only when nothing older is visible.
        probeMaxBacklog: 0,
        batchTimeoutMs: BATCH_TIMEOUT_MS,
        now,
      },
      { ordered: source.ordered },
    );
    if (progress.errors.length > 0) throw progress.errors[0]!.error;
    if (stats) {
      stats.held += progress.held;
      stats.credited += progress.credited;
    }
    source.settle(batch, result.failedRecordIds);
  };

  const checkOffline = (request: CommitRequest, cutoff: number) => {
    const deviceId = request.deviceId;
    if (!typeOf.has(deviceId)) return; // another run's leftover device in a shared table
    const { since, lastSeen, timeoutMs } = request.state;
    const times = accepted(deviceId).map((m) => m.t);
    // I1: the silence it reports happened: no message entered in (since - timeout, since].
    const spoken = times.filter((t) => t > since - timeoutMs && t <= since);
    if (spoken.length > 0) {
      violations.push(
        `I1: ${deviceId} offline since ${since - T0} (timeout ${timeoutMs}) but a message entered at ${spoken[0]! - T0}`,
      );
    }
    if (since > cutoff) violations.push(`I1: ${deviceId} offline since ${since - T0} judged at cutoff ${cutoff - T0}`);
    if (!sent.get(deviceId)!.some((m) => m.t === lastSeen)) {
      violations.push(`${deviceId}: offline lastSeen ${lastSeen - T0} was never sent`);
    }
  };

  /** Messages that count: all but those dead-lettered (the weaker guarantee for data the source drops). */
  const accepted = (deviceId: string) => {
    const dlq = source.dropped();
    return sent.get(deviceId)!.filter((m) => !dlq.has(m.id));
  };

  const sweep = async (
    job: SweepJob,
    action: Faults & { budgetMs?: number; pageSize?: number; stepMs?: number },
    random?: () => number,
  ) => {
    let startedAt: number | undefined;
    let snapshot: WatermarkSnapshot | undefined;
    const offline: CommitRequest[] = [];
    // A per-device sweep that times out is a job retried later, which the crashes already cover. A batched one can
    // die between its commits and the save of its shard state, and the runtime is reset (its warm states gone).
    // It dies at its first store call (crashAt 1), or after all its commits, at the save of its state (crashAt 2).
    const dies = batched && action.crash === 'timeout';
    const diesAtSave = dies && action.crashAt === 2;
    const faulty = storeFor(dies && !diesAtSave ? action : { ...action, crash: 'none' }, random, (request) =>
      offline.push(request),
    );
    let saveHung: () => void = () => {};
    const atSave = new Promise<void>((resolve) => {
      saveHung = resolve;
    });
    const states: ShardStateStore<ShardEntry> = diesAtSave
      ? {
          version: (shard) => shardStates.version(shard),
          load: (shard) => shardStates.load(shard),
          save: async () => {
            saveHung();
            return new Promise<boolean>(() => {});
          },
        }
      : shardStates;
    const deps: SweepDeps = {
      settings: {
        toleranceMs: 0,
        budgetMs: action.budgetMs ?? 60_000,
        pageSize: action.pageSize ?? 50,
        concurrency: 3,
        republishAfterMs: options.mutant === 'no-republish' ? 1e12 : REPUBLISH_AFTER_MS,
        flapDamping: flapDampingByType(config.deviceTypes),
      },
      store: faulty.store,
      publisher: publisher(action),
      watermarks: {
        read: async () => {
          snapshot = await cutoffSource.read();
          return snapshot;
        },
      },
      queue: sweepQueue,
      now: () => {
        const t = now();
        startedAt ??= t;
        return t;
      },
    };
    clock.step = action.stepMs ?? 0;
    try {
      const cache = stateCaches[(action.budgetMs ?? 0) % stateCaches.length]!;
      const job$ = batched
        ? sweepBatchedShard(job, {
            ...deps,
            table: deps.store,
            log: faulty.log,
            states,
            ingest: config,
            batched: options.mutant === 'batched-no-lookback' ? { ...batchedSettings, lookbackMs: 0 } : batchedSettings,
            cache,
          })
        : undefined;
      const batchedResult =
        job$ && (await Promise.race([job$, faulty.hung.then(() => undefined), atSave.then(() => undefined)]));
      if (job$ && !batchedResult) {
        cache.clear();
        throw new Crashed('sweep timed out');
      }
      const result = batchedResult ?? (await sweepShard(job, deps));
      for (const error of result.errors) if (!(error instanceof Crashed)) throw error;
      if (stats && result.continued) stats.continuations++;
      if (stats?.batched && batchedResult) {
        stats.batched.merged += batchedResult.merged;
        stats.batched.slow += batchedResult.slow;
        if (batchedResult.warm) stats.batched.warm++;
        if (batchedResult.saved === 'conflict') stats.batched.conflicts++;
        if (batchedResult.saved === 'checkpoint') stats.batched.checkpoints++;
      }
      if (stats) stats.crashes += result.errors.length;
    } catch (error) {
      if (!(error instanceof Crashed)) throw error;
      if (stats) stats.crashes++;
    } finally {
      clock.step = 0;
    }
    const cutoff =
      job.cutoff ?? (snapshot && startedAt !== undefined ? sweepCutoff(startedAt, snapshot, 0) : undefined);
    for (const request of offline) checkOffline(request, cutoff ?? Number.NEGATIVE_INFINITY);
  };

  const adminDeps = (): AdminDeps => ({
    store: batched && options.mutant !== 'batched-no-notes' ? notingAdminStore(base, sightingLog, SHARDS) : base,
    deviceTypes: config.deviceTypes,
    housekeepingTtlMs: config.housekeepingTtlMs,
    now: () => clock.t,
  });
  /** Runs an operator action; a device that does not exist (yet, or any more) is the API's 404. */
  const operate = async (action: OperatorAction) => {
    const deviceId = deviceIds[action.device % deviceIds.length]!;
    try {
      if (action.kind === 'override') {
        const policy = OVERRIDES[action.policy % OVERRIDES.length];
        await setPolicy(adminDeps(), deviceId, policy);
        if (policy) everPrecision.set(deviceId, Math.max(everPrecision.get(deviceId)!, policy.precisionMs));
      } else if (action.kind === 'mute') {
        muteEnd = Math.max(muteEnd, clock.t + action.forMs);
        await mute(adminDeps(), deviceId, clock.t + action.forMs);
      } else if (action.kind === 'unmute') {
        await unmute(adminDeps(), deviceId);
      } else {
        await forget(adminDeps(), deviceId);
        const tombstone = (await base.get(deviceId))!;
        retiredAtSeq.get(deviceId)!.push(tombstone.seq);
        retiredThrough.set(deviceId, tombstone.lastSeen);
      }
    } catch (error) {
      if ((error as { code?: string }).code !== 'not-found') throw error;
    }
  };

  /** A probe stamped `at`, entering the source at `enteredAt` (the dispatcher's enter when stamped). */
  const probe = (at: number, key: Uint8Array, enteredAt = at) => {
    source.send(`${prefix}p${++messages}`, probeBody(key, at, source.partition, source.arn), enteredAt);
  };

  for (const action of scenario.actions) {
    switch (action.kind) {
      case 'send': {
        clock.t += action.gapMs;
        const deviceId = deviceIds[action.device % deviceIds.length]!;
        const type = typeOf.get(deviceId)!;
        // The default type (tracker) may go unnamed; a meter always names its type. A device payload may carry a
        // "probe" field of its own: it is still the device's heartbeat.
        const deviceType = type === 'meter' || action.typed ? type : undefined;
        const id = `${prefix}m${++messages}`;
        const body = {
          deviceId,
          ...(deviceType ? { deviceType } : {}),
          ...(action.probeField ? { probe: clock.t } : {}),
        };
        source.send(id, JSON.stringify(body), clock.t);
        sent.get(deviceId)!.push({ id, t: clock.t });
        deviceOf.set(id, deviceId);
        break;
      }
      case 'probe':
        probe(clock.t, KEY);
        break;
      case 'forge':
        // A producer's probe, stamped ahead and signed with a key of its own. The mutant is the first version: the
        // producer can sign (the real key), and a shard credits the stamp rather than the probe's arrival (here, an
        // arrival as late as the stamp).
        if (options.mutant === 'forgeable-probes') probe(clock.t + action.aheadMs, KEY);
        else probe(clock.t + action.aheadMs, FORGER_KEY, clock.t);
        break;
      case 'advance':
        clock.t += action.ms;
        break;
      case 'sns':
        snsDown = action.down;
        break;
      case 'ingest':
        await ingest(action);
        break;
      case 'sweep':
        await sweep({ shard: String(action.shard % SHARDS) }, action);
        break;
      case 'continue': {
        const index = action.index % Math.max(1, sweepQueue.jobs.length);
        const next = sweepQueue.jobs[index];
        if (!next) break;
        if (!action.keep) sweepQueue.jobs.splice(index, 1);
        await sweep(next.job, action);
        break;
      }
      case 'together': {
        const random = seededRandom(action.seed);
        const jobs = action.sweeps.map((s) => ({ shard: String(s.shard % SHARDS) }));
        await Promise.all([ingest(action.ingest, random), ...action.sweeps.map((s, i) => sweep(jobs[i]!, s, random))]);
        break;
      }
      default:
        await operate(action);
    }
  }

  if (stats) stats.earlyOffline += log.filter((e) => e.type === 'device.offline').length;
  // SNS comes back, ingestion catches up (failed records come back after their visibility timeout), a probe
  // releases the holds, then time passes every timeout and mute and the sweeps run without faults.
  snsDown = false;
  const calm: Faults = { crash: 'none', crashAt: 0 };
  const catchUp = async () => {
    for (let round = 0; source.pending() > 0 && round < 2 * MAX_RECEIVES + 2; round++) {
      await ingest({ kind: 'ingest', picks: 'all', redeliver: [], container: 0, throttled: [], ...calm });
      if (source.pending() > 0) clock.t += VISIBILITY_MS;
    }
    if (source.pending() > 0) violations.push(`ingest never caught up: ${source.pending()}`);
  };
  const probeAndIngest = async () => {
    probe(clock.t, KEY);
    await catchUp();
  };
  await catchUp();
  clock.t += VISIBILITY_MS + BATCH_TIMEOUT_MS;
  await probeAndIngest();
  for (let next = sweepQueue.jobs.shift(); next; next = sweepQueue.jobs.shift()) await sweep(next.job, calm);
  // With damping, a device that flapped until the end goes offline (held) and settles a window later.
  clock.t = Math.max(clock.t, muteEnd) + BATCH_TIMEOUT_MS + MAX_WINDOW + (options.flap ? FLAP.windowMs : 0);
  const finalAt = clock.t;
  const passes = options.flap ? [0, 1, 2] : [0, 1];
  for (const pass of passes) {
    await probeAndIngest();
    for (let shard = 0; shard < SHARDS; shard++) await sweep({ shard: String(shard) }, calm);
    for (let next = sweepQueue.jobs.shift(); next; next = sweepQueue.jobs.shift()) await sweep(next.job, calm);
    if (pass === passes.length - 2) clock.t += REPUBLISH_AFTER_MS; // then every outbox left behind is re-published
  }
  if (stats) stats.deadLettered += [...source.dropped()].filter((id) => deviceOf.has(id)).length;

  for (const deviceId of deviceIds) {
    const times = accepted(deviceId)
      .map((m) => m.t)
      .filter((t) => t > (retiredThrough.get(deviceId) ?? Number.NEGATIVE_INFINITY));
    const state = await base.get(deviceId);
    const retired = retiredAtSeq.get(deviceId)!;
    if (sent.get(deviceId)!.length === 0) {
      if (state) violations.push(`${deviceId} exists without a message`);
      continue;
    }
    // I2: silent past every timeout by the final cutoff, so reported offline, nothing left unpublished. A device
    // decommissioned after its last message stays forgotten; one whose last messages were dead-lettered may be
    // anything but online (a batch can write a record and still fail it).
    if (times.length > 0 ? state?.status !== 'OFFLINE' : state?.status === 'ONLINE') {
      violations.push(`I2: ${deviceId} is ${state?.status} at ${finalAt - T0}`);
    }
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
      if (!sent.get(deviceId)!.some((m) => m.t === event.lastSeen)) {
        violations.push(`${event.eventId}: lastSeen was never sent`);
      }
      if (event.since > event.detectedAt) violations.push(`${event.eventId}: since after it was detected`);
    }
    // A decommission starts a new life: its first event is an online one.
    const newLife = (event: DeviceEvent, previous: DeviceEvent | undefined) =>
      retired.some((seq) => event.seq > seq && (previous === undefined || previous.seq <= seq));
    if (options.flap) {
      violations.push(...dampedOrder(deviceId, distinct, newLife));
      if (state?.flapping) violations.push(`I3: ${deviceId} never settled`);
    } else {
      // I3: first publications in seq order, one per transition, alternating online / offline; since never back.
      let expectedType: DeviceEvent['type'] = 'device.online';
      distinct.forEach((event, i) => {
        if (newLife(event, distinct[i - 1])) expectedType = 'device.online';
        if (event.seq !== i + 1 || event.type !== expectedType) {
          violations.push(`I3: ${deviceId} event #${i + 1} is ${event.type} seq ${event.seq}`);
        }
        const previous = distinct[i - 1];
        if (previous && !newLife(event, previous) && event.since < previous.since) {
          violations.push(`I3: ${event.eventId} since ${event.since - T0} before ${previous.since - T0}`);
        }
        expectedType = event.type === 'device.online' ? 'device.offline' : 'device.online';
      });
      if (state && distinct.length !== state.seq) {
        violations.push(`I4: ${deviceId} committed ${state.seq} transitions, published ${distinct.length}`);
      }
    }
    const last = distinct[distinct.length - 1];
    const latest = Math.max(...times);
    if (times.length > 0 && last && last.lastSeen < latest - everPrecision.get(deviceId)!) {
      violations.push(`I4: ${deviceId} reported from lastSeen ${last.lastSeen - T0}, last message ${latest - T0}`);
    }
  }
  if (violations.length > 0) throw new Error(violations.join('\n'));
}

/** The mutant's classifier: any payload with a numeric "probe" field became a probe, losing its heartbeat. */
function probeFieldIsProbe(body: string, source: IngestSource): string {
  const { probe } = JSON.parse(body) as { probe?: unknown };
  return typeof probe === 'number' && !body.includes('"sig"')
    ? probeBody(KEY, probe, source.partition, source.arn)
    : body;
}

interface SourceMessage {
  id: string;
  body: string;
  enteredAt: number;
  /** SQS: how often it was received. */
  receives?: number;
}

/** The ingest source as the handler sees it: what a receive returns, and what its partial response does. */
interface IngestSource {
  partition: string;
  /** The queue or stream ARN probes are signed for. */
  arn: string;
  ordered: boolean;
  send(id: string, body: string, at: number): void;
  receive(now: number, action: Pick<IngestAction, 'picks' | 'redeliver'>): SourceMessage[];
  settle(batch: readonly SourceMessage[], failed: ReadonlySet<string>): void;
  /** SQS: a failed message handed back sooner than the visibility timeout. */
  retryAfter(now: number, ids: string[], delaySeconds: number): { failed: string[] };
  pending(): number;
  visible(now: number): number;
  /** Dead-lettered or skipped for good: the data the weaker guarantee is about. */
  dropped(): Set<string>;
}

function ingestSource(kind: SourceKind): IngestSource {
  if (kind === 'kinesis') {
    const shard = new KinesisShardModel(KINESIS_RETRIES);
    return {
      partition: `${STREAM}/shardId-000000000000`,
      arn: STREAM,
      ordered: true,
      send: (id, body, at) => shard.put(id, body, at),
      // Batch sizes vary; a shard keeps order and redelivers only through retries.
      receive: (_now, action) => shard.read(action.picks === 'all' ? Number.POSITIVE_INFINITY : action.picks.length),
      settle: (batch, failed) => shard.settle(batch, failed),
      retryAfter: (_now, ids) => ({ failed: ids }),
      pending: () => shard.pending().length,
      visible: () => 0,
      dropped: () => new Set(shard.dropped.map((r) => r.id)),
    };
  }
  const queue = new SqsModel(VISIBILITY_MS, MAX_RECEIVES);
  const deleted: SourceMessage[] = [];
  return {
    partition: QUEUE,
    arn: QUEUE,
    ordered: false,
    send: (id, body, at) => queue.send(id, body, at),
    receive: (now, action) => {
      for (const i of action.redeliver) {
        const again = deleted[i % Math.max(1, deleted.length)];
        if (again) queue.duplicate(again, now);
      }
      return action.picks === 'all' ? queue.receiveAll(now) : queue.receive(now, action.picks);
    },
    settle: (batch, failed) => {
      const done = batch.filter((m) => !failed.has(m.id));
      queue.delete(new Set(done.map((m) => m.id)));
      deleted.push(...done);
    },
    retryAfter: (now, ids, delaySeconds) => ({
      failed: ids.filter((id) => !queue.changeVisibility(id, now, delaySeconds * 1000)),
    }),
    pending: () => queue.pending().length,
    visible: (now) => queue.visible(now),
    dropped: () => new Set(queue.deadLetters.map((m) => m.id)),
  };
}

/** I3 with flap damping, over a device's distinct events in seq order: the reported state alternates, and once
 * device.flapping is out, the next event is the settled state (which may repeat the state reported before), not
 * before the device was stable for the window. That it settles on time is shown by the operator and flap tests. */
function dampedOrder(
  deviceId: string,
  events: DeviceEvent[],
  newLife: (event: DeviceEvent, previous: DeviceEvent | undefined) => boolean,
): string[] {
  const violations: string[] = [];
  let reported: 'ONLINE' | 'OFFLINE' | 'FLAPPING' | undefined;
  events.forEach((event, i) => {
    if (newLife(event, events[i - 1])) reported = undefined;
    const state = event.type === 'device.online' ? 'ONLINE' : event.type === 'device.offline' ? 'OFFLINE' : 'FLAPPING';
    const ok = reported === 'FLAPPING' ? event.settled === true : !event.settled && state !== reported;
    if (!ok) violations.push(`I3: ${deviceId} ${event.eventId} ${event.type} after ${reported ?? 'nothing'}`);
    if (event.settled && event.detectedAt < event.since + FLAP.windowMs) {
      violations.push(`I3: ${event.eventId} settled before the device was stable for the window`);
    }
    reported = state;
  });
  return violations;
}
