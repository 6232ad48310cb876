// The SQS ingest at fleet scale in virtual time, to judge the SQS probe credit rule (core/watermark.ts
// `probeCredit`): is a probe credited often enough at the design rate that the cutoff keeps up with the clock
// (liveness), and is no probe credited while a message that entered before it stays unwritten and unheld for longer
// than the tolerance allows (soundness)? No AWS, no real time: a loop over 1 ms steps.
//
// Modelled:
// - arrivals: Poisson (or steady) at each phase's rate, a burst phase for a mass reconnect;
// - an SQS standard queue: visible messages, received ones in flight until deleted, a failed one invisible until its
//   receive + the visibility timeout and then visible again (a new receive), the dead-letter queue after
//   maxReceiveCount receives, out-of-order receipt (a receive takes each message at random among the oldest
//   `reorderWindow` visible ones), `ApproximateNumberOfMessages` as the visible count (optionally as it was a while
//   ago: the attribute is eventually consistent);
// - the Lambda event source mapping: up to `concurrency` pollers, each gathering a batch by ReceiveMessage calls of
//   up to 10 messages (a few in parallel, lognormal latency) until it holds `batchSize` records or the batching
//   window has passed since its first record, then invoking the function and waiting for it; pollers are added
//   while receives come back full and removed while they come back short, as Lambda scales an SQS mapping, which
//   keeps a standing visible backlog of tens to thousands of messages at the design rate; a throttled invocation is
//   retried with backoff while its records stay in flight, unheld, and dropped back to the queue when their
//   visibility timeout ends (Lambda's documented behaviour);
// - the function: a lognormal batch time, a slow tail, records failing at a small rate (reported in
//   batchItemFailures) and whole batches failing; a batch that would outlive the function is answered at
//   timeout − answer margin with every record failed (ingest-handler.ts), so failed records are always held;
// - the dispatcher's probe into the queue at every tick, stamped with its tick (it becomes visible then);
// - after a batch: its failed records held, then its newest probe credited by the real `probeCredit` against the
//   visible count, releasing the hold as progress.ts does, on the real hold semantics of `MemoryWatermarks` (or on
//   per-tick holds, a proposal, `holds: 'bucketed'`); the sweep's cutoff from the real `sweepCutoff`.
// Simplified: one ingest queue (one partition); a batch's records are written when the batch ends (the latest they
// can be); receive calls and the attribute read take effect at one instant; no 6 MB payload limit; the poller
// scaling is a plain controller calibrated to the backlog a healthy queue shows, not Lambda's (unpublished) one.
//
// Measured per message: its latency (entry → written, or held if it failed), and its exposure: the time during
// which it was neither written nor held while the effective watermark was past its entry time and at least a
// tolerance had passed since it entered. Only then can a cutoff (watermark + tolerance, never past the clock) reach
// entry + tolerance while the message is missing; a device type with timeout − heartbeat > tolerance (the check
// `toleranceWarnings` makes) is safe as long as no message is ever exposed. This is the brief's "time written or
// held − time the cutoff first passed its entry", taken against the tolerance the configuration promises.
import { effectiveMark, type Hold, type HoldRelease, probeCredit, sweepCutoff } from '../lambdas/core/watermark.js';
import { MemoryWatermarks } from '../sim/memory/watermark-store.js';
import { random } from '../sim/random.js';

export const PARTITION = 'arn:aws:sqs:eu-west-1:123456789012:ingest';

export interface Phase {
  name: string;
  durationMs: number;
  /** Device messages per second entering the queue. */
  rate: number;
  /** The pipeline is healthy here (the liveness figures that must hold). */
  healthy?: boolean;
  /** DynamoDB throttling: batches take this many times as long, and this share of records fail. */
  writeThrottle?: { latencyFactor: number; recordFailureRate: number };
  /** Lambda throttles this share of invocations (the account's concurrency is exhausted elsewhere). */
  invokeThrottle?: { probability: number };
}

export interface SimOptions {
  seed: number;
  phases: Phase[];
  poisson: boolean;
  // the queue
  visibilityTimeoutMs: number;
  maxReceiveCount: number;
  /** A receive takes each message at random among the oldest this many visible ones. */
  reorderWindow: number;
  /** `ApproximateNumberOfMessages` reports the visible count as it was this long ago. */
  attributeLagMs: number;
  // the event source mapping
  batchSize: number;
  batchingWindowMs: number;
  concurrency: number;
  messagesPerReceive: number;
  /** ReceiveMessage calls a gathering poller has in flight at once. */
  parallelReceives: number;
  /** Pollers at the start, at least, and how they scale: up while fewer receives than `scaleUpBelowShortShare`
   * come back short (fewer messages than asked), down by one a second while more than `scaleDownAboveShortShare`
   * do. */
  initialPollers: number;
  minPollers: number;
  scaleUpPerSecond: number;
  scaleUpBelowShortShare: number;
  scaleDownAboveShortShare: number;
  /** Median ReceiveMessage latency (lognormal, sigma 0.4). */
  receiveLatencyMs: number;
  // the function
  /** Median batch time, invocation and delete included (lognormal with `batchLatencySigma`). */
  batchLatencyMs: number;
  batchLatencySigma: number;
  /** Share of batches that take 1 s to `slowBatchMaxMs` instead (a slow dependency); past the answer deadline
   * (timeout − answer margin) they fail whole. */
  slowBatchRate: number;
  slowBatchMaxMs: number;
  /** Share of batches that throw (every record failed, answered in time, held). */
  batchFailureRate: number;
  /** Share of records reported in batchItemFailures. */
  recordFailureRate: number;
  ingestTimeoutMs: number;
  /** The ingest answers this long before its timeout (ingest-handler.ts ANSWER_MARGIN_MS). */
  answerMarginMs: number;
  // the detector
  tickMs: number;
  toleranceMs: number;
  probeMaxBacklog: number;
  /** The visibility the ingest gives a failed record (ChangeMessageVisibility, progress.ts): 5 s on its first
   * receive, four times more per receive, at most the visibility timeout. `false`: the visibility change failed and
   * it waits out the rest of its visibility timeout. */
  retryFailedSooner: boolean;
  stepMs: number;
  /** Called once a virtual second with the state (for plots and debugging). */
  trace?: (state: { t: number; visible: number; pollers: number; eff: number; mark: number }) => void;
  /** Latency and exposure are counted for messages entering from here on (the pollers' warm-up excluded). */
  measureFromMs: number;
}

/** The design point: 1,000,000 devices at one message a minute (16.7k/s) on the construct's defaults (batch 100,
 * window 1 s, 50 concurrent invocations, visibility timeout 6 × 30 s, tick 10 s, tolerance tick + 20 s). */
export const DESIGN_POINT: Omit<SimOptions, 'phases' | 'probeMaxBacklog'> = {
  seed: 1,
  poisson: true,
  visibilityTimeoutMs: 180_000,
  maxReceiveCount: 5,
  reorderWindow: 1_000,
  attributeLagMs: 0,
  batchSize: 100,
  batchingWindowMs: 1_000,
  concurrency: 50,
  messagesPerReceive: 10,
  parallelReceives: 3,
  initialPollers: 30,
  minPollers: 5,
  scaleUpPerSecond: 5,
  scaleUpBelowShortShare: 0.05,
  scaleDownAboveShortShare: 0.2,
  receiveLatencyMs: 15,
  batchLatencyMs: 120,
  batchLatencySigma: 0.5,
  slowBatchRate: 0.001,
  slowBatchMaxMs: 30_000,
  batchFailureRate: 0.0002,
  recordFailureRate: 0.001,
  // The ingest's batch budget (INGEST_TIMEOUT_MS, 10 s): it answers then, whatever the function's 30 s timeout.
  ingestTimeoutMs: 10_000,
  answerMarginMs: 0,
  tickMs: 10_000,
  toleranceMs: 30_000,
  retryFailedSooner: true,
  stepMs: 1,
  measureFromMs: 20_000,
};

export const DESIGN_RATE = 1_000_000 / 60;

export interface Quantiles {
  p50: number;
  p99: number;
  max: number;
}

export interface PhaseResult {
  name: string;
  fromMs: number;
  toMs: number;
  rate: number;
  healthy: boolean;
  messages: number;
  /** Probes stamped in the phase, those processed by the ingest, and those the rule credited. */
  probes: number;
  probesProcessed: number;
  probesCredited: number;
  /** ApproximateNumberOfMessages when each probe was judged. */
  visibleAtProbe: Quantiles;
  /** Sampled every 100 ms. */
  visible: Quantiles;
  inFlight: Quantiles;
  /** now − cutoff, sampled every second; Infinity while there is no cutoff. */
  cutoffLagMs: Quantiles;
  /** now − effective watermark, sampled every second. */
  watermarkAgeMs: Quantiles;
  /** Entry → written (or first held), messages that entered in the phase. */
  latencyMs: Quantiles;
  /** Share of the phase a hold capped the watermark. */
  heldShare: number;
}

export interface SimResult {
  rule: { probeMaxBacklog: number; toleranceMs: number; tickMs: number };
  durationMs: number;
  messages: number;
  probesSent: number;
  phases: PhaseResult[];
  soundness: {
    /** Messages exposed (see the file header); must be 0. */
    exposedMessages: number;
    maxExposureMs: number;
    /** Messages the watermark passed while they were neither written nor held (allowed: the tolerance covers them
     * as long as each is written within a tolerance of its entry). */
    passedWhileMissing: number;
    /** The longest entry → written/held time among those: must stay within the tolerance. */
    passedWhileMissingMaxLatencyMs: number;
    recordsFailed: number;
    batchesFailedWhole: number;
    batchesThrottled: number;
    /** Records returned to the queue by a throttled invocation that never ran: in flight and unheld meanwhile. */
    recordsDroppedByThrottle: number;
    deadLettered: number;
    /** Messages neither written nor dead-lettered when the run ended. */
    unwrittenAtEnd: number;
  };
  holds: { placed: number; released: number };
}

// Message flags.
const PROBE = 1;
const DONE = 2; // written, or held once (its first interval is closed)
const PENDING_FAILED = 4; // failed, not written since
const WRITTEN = 8;
const DEAD = 16;
const MEASURED = 32;

const LAT_BUCKET_MS = 10;
const LAT_BUCKETS = 200_000; // up to 2,000 s

export function simulate(options: SimOptions): SimResult {
  const o = options;
  const rand = random(o.seed);
  const normal = () => {
    const u = 1 - rand();
    const v = rand();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const lognormal = (median: number, sigma: number) => median * Math.exp(sigma * normal());
  const poisson = (mean: number) => {
    if (mean <= 0) return 0;
    if (mean > 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * normal()));
    const limit = Math.exp(-mean);
    let k = 0;
    let p = rand();
    while (p > limit) {
      k++;
      p *= rand();
    }
    return k;
  };

  const phaseStarts: number[] = [];
  let durationMs = 0;
  for (const phase of o.phases) {
    phaseStarts.push(durationMs);
    durationMs += phase.durationMs;
  }
  const phaseAt = (t: number) => {
    let i = 0;
    while (i + 1 < phaseStarts.length && phaseStarts[i + 1]! <= t) i++;
    return i;
  };

  // ── Messages (and probes), in growable typed arrays.
  let capacity = 1 << 16;
  let entered = new Float64Array(capacity);
  let receivedAt = new Float64Array(capacity);
  let receives = new Uint8Array(capacity);
  let flags = new Uint8Array(capacity);
  let phaseOf = new Uint8Array(capacity);
  let count = 0;
  const add = (at: number, flag: number, phase: number) => {
    if (count === capacity) {
      capacity *= 2;
      const grow = <T extends Float64Array | Uint8Array>(a: T, make: (n: number) => T): T => {
        const b = make(capacity);
        b.set(a);
        return b;
      };
      entered = grow(entered, (n) => new Float64Array(n));
      receivedAt = grow(receivedAt, (n) => new Float64Array(n));
      receives = grow(receives, (n) => new Uint8Array(n));
      flags = grow(flags, (n) => new Uint8Array(n));
      phaseOf = grow(phaseOf, (n) => new Uint8Array(n));
    }
    entered[count] = at;
    flags[count] = flag | (at >= o.measureFromMs ? MEASURED : 0);
    phaseOf[count] = phase;
    return count++;
  };

  // ── The visible messages: a deque; a receive swaps a random one of the oldest `reorderWindow` to the front.
  let vis = new Int32Array(1 << 16);
  let head = 0;
  let tail = 0;
  const pushVisible = (id: number) => {
    if (tail === vis.length) {
      const live = tail - head;
      if (live * 2 > vis.length) {
        const next = new Int32Array(vis.length * 2);
        next.set(vis.subarray(head, tail), 0);
        vis = next;
      } else vis.copyWithin(0, head, tail);
      head = 0;
      tail = live;
    }
    vis[tail++] = id;
  };
  const popVisible = () => {
    const window = Math.min(o.reorderWindow, tail - head);
    const j = head + Math.floor(rand() * window);
    const id = vis[j]!;
    vis[j] = vis[head]!;
    head++;
    return id;
  };
  const visibleCount = () => tail - head;

  // ── Failed or dropped records, invisible until their visibility timeout ends: a binary heap on that time.
  const heapAt: number[] = [];
  const heapId: number[] = [];
  const heapPush = (at: number, id: number) => {
    let i = heapAt.length;
    heapAt.push(at);
    heapId.push(id);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heapAt[parent]! <= at) break;
      heapAt[i] = heapAt[parent]!;
      heapId[i] = heapId[parent]!;
      i = parent;
    }
    heapAt[i] = at;
    heapId[i] = id;
  };
  const heapPop = () => {
    const id = heapId[0]!;
    const lastAt = heapAt.pop()!;
    const lastId = heapId.pop()!;
    const n = heapAt.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && heapAt[r]! < heapAt[l]! ? r : l;
        if (heapAt[c]! >= lastAt) break;
        heapAt[i] = heapAt[c]!;
        heapId[i] = heapId[c]!;
        i = c;
      }
      heapAt[i] = lastAt;
      heapId[i] = lastId;
    }
    return id;
  };

  // ── Watermarks and holds; the effective watermark's history, for the exposure of each message.
  const watermarks = new ShippedHolds();
  const effTimes: number[] = [];
  const effValues: number[] = [];
  let eff = 0;
  let peak = 0;
  const recordEff = (t: number) => {
    const value = watermarks.effective(t);
    if (effTimes.length > 0 && value === eff) return;
    effTimes.push(t);
    effValues.push(value);
    eff = value;
    if (value > peak) peak = value;
  };
  recordEff(0);

  // ── Soundness accounting.
  const tol = o.toleranceMs;
  const soundness = {
    exposedMessages: 0,
    maxExposureMs: 0,
    passedWhileMissing: 0,
    passedWhileMissingMaxLatencyMs: 0,
    recordsFailed: 0,
    batchesFailedWhole: 0,
    batchesThrottled: 0,
    recordsDroppedByThrottle: 0,
    deadLettered: 0,
    unwrittenAtEnd: 0,
  };
  /** How long, in [from, to), the effective watermark was past `e` (from the recorded history). */
  const timePast = (e: number, from: number, to: number) => {
    if (to <= from || peak <= e) return 0;
    let lo = 0;
    let hi = effTimes.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (effTimes[mid]! <= from) lo = mid;
      else hi = mid - 1;
    }
    let total = 0;
    for (let i = lo; i < effTimes.length; i++) {
      const start = Math.max(from, effTimes[i]!);
      if (start >= to) break;
      const end = Math.min(to, i + 1 < effTimes.length ? effTimes[i + 1]! : to);
      if (effValues[i]! > e && end > start) total += end - start;
    }
    return total;
  };
  const exposure = new Map<number, number>(); // per exposed message, accumulated
  const expose = (id: number, ms: number) => {
    if (ms <= 0 || !(flags[id]! & MEASURED)) return;
    const before = exposure.get(id) ?? 0;
    if (before === 0) soundness.exposedMessages++;
    exposure.set(id, before + ms);
    soundness.maxExposureMs = Math.max(soundness.maxExposureMs, before + ms);
  };
  const latency = o.phases.map(() => new Uint32Array(LAT_BUCKETS + 1));
  /** A message written or held for the first time at `t`: its latency, and its exposure since it entered. */
  const closeFirst = (id: number, t: number) => {
    flags[id]! |= DONE;
    if (!(flags[id]! & MEASURED) || flags[id]! & PROBE) return;
    const e = entered[id]!;
    const took = t - e;
    latency[phaseOf[id]!]![Math.min(LAT_BUCKETS, Math.floor(took / LAT_BUCKET_MS))]!++;
    if (peak > e && timePast(e, e, t) > 0) {
      soundness.passedWhileMissing++;
      soundness.passedWhileMissingMaxLatencyMs = Math.max(soundness.passedWhileMissingMaxLatencyMs, took);
    }
    if (took > tol) expose(id, timePast(e, e + tol, t));
  };
  // Failed records not written since: their exposure is counted step by step (a released hold uncovers them).
  const pendingFailed = new Set<number>();
  let pendingMin = Number.POSITIVE_INFINITY;
  let pendingMinDirty = false;
  const writtenAt = (id: number, t: number) => {
    if (flags[id]! & PENDING_FAILED) {
      flags[id]! &= ~PENDING_FAILED;
      pendingFailed.delete(id);
      if (entered[id] === pendingMin) pendingMinDirty = true;
    } else if (!(flags[id]! & DONE)) closeFirst(id, t);
    flags[id]! |= WRITTEN | DONE;
  };

  // ── Pollers.
  const RUNNING = 1;
  const THROTTLED = 2;
  interface Slot {
    index: number;
    waiting: boolean;
    state: number;
    nextAt: number;
    size: number;
    batch: Int32Array;
    firstAt: number;
    attempts: number;
    failAll: boolean;
  }
  const slots: Slot[] = Array.from({ length: o.concurrency }, (_, index) => ({
    index,
    waiting: false,
    state: 0,
    nextAt: rand() * o.receiveLatencyMs,
    size: 0,
    batch: new Int32Array(o.batchSize),
    firstAt: 0,
    attempts: 0,
    failAll: false,
  }));
  const receiveLatency = () => lognormal(o.receiveLatencyMs, 0.4);
  const holds = { placed: 0, released: 0 };

  // ── Per-phase samples.
  const samples = o.phases.map(() => ({
    visible: [] as number[],
    inFlight: [] as number[],
    lag: [] as number[],
    age: [] as number[],
    visibleAtProbe: [] as number[],
    messages: 0,
    probes: 0,
    processed: 0,
    credited: 0,
    heldSteps: 0,
    steps: 0,
  }));
  const lagSteps = Math.max(0, Math.round(o.attributeLagMs / o.stepMs));
  const visibleHistory = new Int32Array(lagSteps + 1);

  const invoke = (slot: Slot, t: number) => {
    const phase = o.phases[phaseAt(t)]!;
    if (phase.invokeThrottle && rand() < phase.invokeThrottle.probability) {
      if (slot.state !== THROTTLED) soundness.batchesThrottled++;
      slot.state = THROTTLED;
      slot.attempts++;
      slot.nextAt = t + Math.min(2 ** (slot.attempts - 1), 32) * 1000 * (0.5 + rand() / 2);
      return;
    }
    let took = lognormal(o.batchLatencyMs, o.batchLatencySigma) * (phase.writeThrottle?.latencyFactor ?? 1);
    if (rand() < o.slowBatchRate) took = 1_000 + rand() * (o.slowBatchMaxMs - 1_000);
    slot.failAll = rand() < o.batchFailureRate;
    const budget = o.ingestTimeoutMs - o.answerMarginMs;
    if (took > budget) {
      took = budget;
      slot.failAll = true;
    }
    slot.state = RUNNING;
    slot.nextAt = t + took;
  };

  const finish = (slot: Slot, t: number) => {
    const phase = o.phases[phaseAt(t)]!;
    const failRate = phase.writeThrottle?.recordFailureRate ?? o.recordFailureRate;
    if (slot.failAll) soundness.batchesFailedWhole++;
    let heldAt = Number.POSITIVE_INFINITY;
    let newestProbe = Number.NEGATIVE_INFINITY;
    const failed: number[] = [];
    const probes: number[] = [];
    for (let i = 0; i < slot.size; i++) {
      const id = slot.batch[i]!;
      if (slot.failAll || rand() < failRate) {
        failed.push(id);
        heldAt = Math.min(heldAt, entered[id]!);
      } else if (flags[id]! & PROBE) {
        probes.push(id);
        newestProbe = Math.max(newestProbe, entered[id]!);
        flags[id]! |= WRITTEN | DONE;
      } else writtenAt(id, t);
    }
    if (failed.length > 0) {
      // Held before the answer (progress.ts holdFailed) until they are visible again: after the retry visibility
      // the ingest gives them, or the rest of their visibility timeout.
      const returnsAt = (id: number) =>
        o.retryFailedSooner
          ? t + Math.min(5_000 * 4 ** ((receives[id] ?? 1) - 1), o.visibilityTimeoutMs)
          : receivedAt[id]! + o.visibilityTimeoutMs;
      watermarks.hold(heldAt, Math.max(...failed.map(returnsAt)));
      holds.placed++;
      recordEff(t);
      for (const id of failed) {
        if (!(flags[id]! & PROBE)) {
          soundness.recordsFailed++;
          if (!(flags[id]! & DONE)) closeFirst(id, t);
          if (!(flags[id]! & PENDING_FAILED)) {
            flags[id]! |= PENDING_FAILED;
            pendingFailed.add(id);
            if (entered[id]! < pendingMin) pendingMin = entered[id]!;
          }
        }
        heapPush(returnsAt(id), id);
      }
    }
    if (probes.length > 0) {
      const visible = lagSteps === 0 ? visibleCount() : visibleHistory[(stepIndex + 1) % (lagSteps + 1)]!;
      const mark = probeCredit(newestProbe, t, {
        ordered: false,
        visibleBacklog: visible,
        maxBacklog: o.probeMaxBacklog,
      });
      for (const id of probes) {
        const s = samples[phaseOf[id]!]!;
        s.processed++;
        s.visibleAtProbe.push(visible);
        if (mark !== undefined) s.credited++;
      }
      if (mark !== undefined) {
        holds.released += watermarks.credit(mark, {
          returnedBefore: newestProbe - o.ingestTimeoutMs,
          until: t + o.ingestTimeoutMs,
        });
        recordEff(t);
      }
    }
    slot.state = 0;
    slot.size = 0;
    slot.attempts = 0;
    slot.nextAt = t + receiveLatency();
  };

  /** A throttled batch whose records' visibility timeout ended: Lambda drops it, they come back unheld. */
  const drop = (slot: Slot) => {
    for (let i = 0; i < slot.size; i++) {
      const id = slot.batch[i]!;
      if (!(flags[id]! & PROBE)) soundness.recordsDroppedByThrottle++;
      heapPush(receivedAt[id]! + o.visibilityTimeoutMs, id);
    }
    slot.state = 0;
    slot.size = 0;
    slot.attempts = 0;
  };

  let pollers = Math.min(o.concurrency, o.initialPollers);
  let nextScaleAt = 1_000;
  let calls = 0;
  let shortCalls = 0;
  let stepIndex = 0;
  let carry = 0;
  let nextTick = 0;
  let probesSent = 0;
  const step = o.stepMs;
  for (let t = 0; t < durationMs; t += step, stepIndex++) {
    const p = phaseAt(t);
    const phase = o.phases[p]!;
    const s = samples[p]!;
    s.steps++;

    // Arrivals, spread over the step.
    const mean = (phase.rate * step) / 1000;
    let n: number;
    if (o.poisson) n = poisson(mean);
    else {
      carry += mean;
      n = Math.floor(carry);
      carry -= n;
    }
    for (let i = 0; i < n; i++) pushVisible(add(t + rand() * step, 0, p));
    s.messages += n;
    if (t >= nextTick) {
      pushVisible(add(nextTick, PROBE, p));
      s.probes++;
      probesSent++;
      nextTick += o.tickMs;
    }
    while (heapAt.length > 0 && heapAt[0]! <= t) {
      const id = heapPop();
      if (!(flags[id]! & WRITTEN)) pushVisible(id);
    }

    // Pollers.
    for (const slot of slots) {
      if (slot.nextAt > t) continue;
      if (slot.state === RUNNING) {
        finish(slot, t);
        continue;
      }
      if (slot.state === THROTTLED) {
        let oldest = Number.POSITIVE_INFINITY;
        for (let i = 0; i < slot.size; i++) oldest = Math.min(oldest, receivedAt[slot.batch[i]!]!);
        if (t + o.ingestTimeoutMs >= oldest + o.visibilityTimeoutMs) {
          drop(slot);
          slot.nextAt = t + receiveLatency();
        } else invoke(slot, t);
        continue;
      }
      if (slot.size === 0 && slot.index >= pollers) {
        slot.nextAt = t + step; // not polling: the mapping scaled its pollers down
        continue;
      }
      // Gathering: `parallelReceives` ReceiveMessage calls complete now.
      const want = Math.min(o.messagesPerReceive * o.parallelReceives, o.batchSize - slot.size);
      let got = 0;
      while (got < want && visibleCount() > 0) {
        const id = popVisible();
        if (receives[id]! >= o.maxReceiveCount) {
          flags[id]! |= DEAD;
          soundness.deadLettered++;
          if (flags[id]! & PENDING_FAILED) {
            flags[id]! &= ~PENDING_FAILED;
            pendingFailed.delete(id);
            pendingMinDirty = true;
          }
          continue;
        }
        receives[id]!++;
        receivedAt[id] = t;
        if (slot.size === 0) slot.firstAt = t;
        slot.batch[slot.size++] = id;
        got++;
      }
      // A long poll that finds nothing waits for a message; it counts once as a call that came back short.
      if (!slot.waiting) {
        const asked = Math.ceil(want / o.messagesPerReceive);
        calls += asked;
        shortCalls += asked - Math.floor(got / o.messagesPerReceive);
      }
      slot.waiting = got === 0;
      if (slot.size >= o.batchSize || (slot.size > 0 && t - slot.firstAt >= o.batchingWindowMs)) invoke(slot, t);
      else slot.nextAt = got === 0 ? t + step : t + receiveLatency();
    }

    // Poller scaling (Lambda adds pollers while receives come back full, up to 300 a minute, and removes them as
    // receives come back short), once a second.
    if (t >= nextScaleAt) {
      nextScaleAt += 1_000;
      if (calls > 0) {
        const short = shortCalls / calls;
        if (short < o.scaleUpBelowShortShare) pollers = Math.min(o.concurrency, pollers + o.scaleUpPerSecond);
        else if (short > o.scaleDownAboveShortShare) pollers = Math.max(o.minPollers, pollers - 1);
      }
      calls = 0;
      shortCalls = 0;
    }

    // Holds expire (a released hold lingers until `until`), and failed records a released hold uncovered.
    recordEff(t);
    if (eff < watermarks.mark()) s.heldSteps++;
    if (pendingFailed.size > 0) {
      if (pendingMinDirty && eff > pendingMin) {
        pendingMin = Number.POSITIVE_INFINITY;
        for (const id of pendingFailed) pendingMin = Math.min(pendingMin, entered[id]!);
        pendingMinDirty = false;
      }
      if (eff > pendingMin) {
        for (const id of pendingFailed) {
          const e = entered[id]!;
          if (e < eff && t >= e + tol) expose(id, step);
        }
      }
    } else {
      pendingMin = Number.POSITIVE_INFINITY;
      pendingMinDirty = false;
    }

    const visible = visibleCount();
    visibleHistory[lagSteps > 0 ? stepIndex % (lagSteps + 1) : 0] = visible;
    if (stepIndex % Math.max(1, Math.round(100 / step)) === 0) {
      let inFlight = heapAt.length;
      for (const slot of slots) inFlight += slot.size;
      s.visible.push(visible);
      s.inFlight.push(inFlight);
    }
    if (stepIndex % Math.max(1, Math.round(1000 / step)) === 0) {
      o.trace?.({ t, visible, pollers, eff, mark: watermarks.mark() });
      const cutoff = watermarks.cutoff(t, tol);
      s.lag.push(cutoff === undefined ? Number.POSITIVE_INFINITY : t - cutoff);
      s.age.push(t - eff);
    }
  }

  // Whatever is still missing at the end: exposed until now.
  for (let id = 0; id < count; id++) {
    const f = flags[id]!;
    if (f & (WRITTEN | DEAD) || f & PROBE) continue;
    soundness.unwrittenAtEnd++;
    if (!(f & DONE) && f & MEASURED) {
      const e = entered[id]!;
      if (durationMs - e > tol) expose(id, timePast(e, e + tol, durationMs));
    }
  }

  const phases = o.phases.map((phase, i): PhaseResult => {
    const s = samples[i]!;
    return {
      name: phase.name,
      fromMs: phaseStarts[i]!,
      toMs: phaseStarts[i]! + phase.durationMs,
      rate: phase.rate,
      healthy: phase.healthy ?? false,
      messages: s.messages,
      probes: s.probes,
      probesProcessed: s.processed,
      probesCredited: s.credited,
      visibleAtProbe: quantiles(s.visibleAtProbe),
      visible: quantiles(s.visible),
      inFlight: quantiles(s.inFlight),
      cutoffLagMs: quantiles(s.lag),
      watermarkAgeMs: quantiles(s.age),
      latencyMs: histogramQuantiles(latency[i]!),
      heldShare: s.steps === 0 ? 0 : round(s.heldSteps / s.steps, 3),
    };
  });
  return {
    rule: { probeMaxBacklog: o.probeMaxBacklog, toleranceMs: tol, tickMs: o.tickMs },
    durationMs,
    messages: count - probesSent,
    probesSent,
    phases,
    soundness: {
      ...soundness,
      maxExposureMs: Math.round(soundness.maxExposureMs),
      passedWhileMissingMaxLatencyMs: Math.round(soundness.passedWhileMissingMaxLatencyMs),
    },
    holds,
  };
}

/** A partition's watermark and its holds on the shipped semantics: `MemoryWatermarks` (the same rules as the
 * DynamoDB store, holds per bucket of return time), `effectiveMark`, `sweepCutoff`. */
class ShippedHolds {
  private readonly store = new MemoryWatermarks();
  private forgotten = 0;
  constructor() {
    this.store.snapshot = { live: [PARTITION], marks: { [PARTITION]: 0 } };
  }
  mark() {
    return this.store.snapshot.marks[PARTITION] ?? 0;
  }
  hold(at: number, returnsAt: number) {
    void this.store.hold(PARTITION, at, returnsAt);
  }
  /** Raises the watermark and releases what `release` allows; returns the holds released. */
  credit(mark: number, release: HoldRelease) {
    const counting = (holds: readonly Hold[] = []) => holds.filter((hold) => hold.until === undefined).length;
    const before = counting(this.store.snapshot.holds?.[PARTITION]);
    void this.store.credit(PARTITION, mark, release);
    return before - counting(this.store.snapshot.holds?.[PARTITION]);
  }
  /** The watermark capped by the holds that count at `now`; holds that stopped counting are forgotten once a
   * virtual minute, as the dispatcher's setLive does. */
  effective(now: number) {
    if (now - this.forgotten >= 60_000) {
      this.forgotten = now;
      void this.store.setLive([PARTITION], now);
    }
    return effectiveMark(now, this.store.snapshot, PARTITION) ?? Number.NEGATIVE_INFINITY;
  }
  cutoff(now: number, toleranceMs: number) {
    return sweepCutoff(now, this.store.snapshot, toleranceMs);
  }
}

const round = (x: number, digits = 0) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

export function quantiles(values: number[]): Quantiles {
  if (values.length === 0) return { p50: 0, p99: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: round(at(0.5)), p99: round(at(0.99)), max: round(sorted[sorted.length - 1]!) };
}

function histogramQuantiles(buckets: Uint32Array): Quantiles {
  let total = 0;
  for (const n of buckets) total += n;
  if (total === 0) return { p50: 0, p99: 0, max: 0 };
  const at = (q: number) => {
    const want = Math.ceil(q * total);
    let seen = 0;
    for (let i = 0; i < buckets.length; i++) {
      seen += buckets[i]!;
      if (seen >= want) return (i + 1) * LAT_BUCKET_MS;
    }
    return buckets.length * LAT_BUCKET_MS;
  };
  return { p50: at(0.5), p99: at(0.99), max: at(1) };
}
