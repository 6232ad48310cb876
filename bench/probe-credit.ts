// npm run bench:probe-credit — prints one JSON object: the SQS probe credit rule (core/watermark.ts `probeCredit`)
// at the design point, 1,000,000 devices at one message a minute (16.7k messages/s) with 100k/s reconnect bursts,
// in virtual time (bench/probe-credit-sim.ts: an SQS queue with visibility timeouts, in-flight messages, redelivery
// and out-of-order receipt; Lambda pollers with batch 100, a 1 s window, up to 50 concurrent invocations), for the
// old fixed threshold (10) and the threshold derived from the rate (config.ts, half a second of rate). Per run and
// phase: probes credited, ApproximateNumberOfMessages when they were judged, the cutoff lag (now − cutoff), message
// latency; and the soundness figures: messages the watermark passed while missing, the longest of them, and the
// messages exposed (missing past the tolerance after the watermark passed them), which must be none.
import { probeMaxBacklogSetting } from '../lambdas/core/config.js';
import {
  DESIGN_POINT,
  DESIGN_RATE,
  type Phase,
  type PhaseResult,
  type SimOptions,
  type SimResult,
  simulate,
} from './probe-credit-sim.js';

const SEED = Number(process.env.BENCH_SEED ?? 1);
const S = 1_000;
const OLD = 10;
const SCALED = probeMaxBacklogSetting({ INGEST_MESSAGE_RATE: String(Math.ceil(DESIGN_RATE)) });
/** A rule that ignores the backlog: what the soundness figures must catch. */
const ALWAYS = Number.MAX_SAFE_INTEGER;

const healthy = (name: string, durationMs: number): Phase => ({ name, durationMs, rate: DESIGN_RATE, healthy: true });
const busy = (name: string, durationMs: number): Phase => ({ name, durationMs, rate: DESIGN_RATE });
const burst: Phase = { name: 'reconnect burst 100k/s', durationMs: 10 * S, rate: 100_000 };

/** No failed records (holds out of the way): the credit rule alone. Slow batches end before the answer deadline. */
const noFailures: Partial<SimOptions> = { recordFailureRate: 0, batchFailureRate: 0, slowBatchMaxMs: 8 * S };

const faults: Phase[] = [
  healthy('healthy', 300 * S),
  burst,
  busy('drain', 240 * S),
  {
    name: 'DynamoDB throttling (×4 batch time, 5% of records fail)',
    durationMs: 60 * S,
    rate: DESIGN_RATE,
    writeThrottle: { latencyFactor: 4, recordFailureRate: 0.05 },
  },
  busy('drain 2', 120 * S),
  {
    name: 'Lambda throttling (half the invocations)',
    durationMs: 30 * S,
    rate: DESIGN_RATE,
    invokeThrottle: { probability: 0.5 },
  },
  busy('drain 3', 150 * S),
  healthy('healthy again', 240 * S),
];

interface Run {
  scenario: string;
  rule: string;
  options: Partial<SimOptions> & Pick<SimOptions, 'phases' | 'probeMaxBacklog'>;
}

const runs: Run[] = [
  ...[OLD, SCALED].map(
    (k): Run => ({
      scenario: 'healthy: 10 min at 16.7k/s, no failed records',
      rule: `maxBacklog ${k}`,
      options: { ...noFailures, probeMaxBacklog: k, phases: [healthy('healthy', 600 * S)] },
    }),
  ),
  ...[OLD, SCALED, ALWAYS].map(
    (k): Run => ({
      scenario: 'faults without failed records: burst, DynamoDB throttling (slow batches only), Lambda throttling',
      rule: k === ALWAYS ? 'ignore the backlog (mutant)' : `maxBacklog ${k}`,
      options: {
        ...noFailures,
        probeMaxBacklog: k,
        phases: faults.map((phase) =>
          phase.writeThrottle ? { ...phase, writeThrottle: { latencyFactor: 4, recordFailureRate: 0 } } : phase,
        ),
      },
    }),
  ),
  ...[OLD, SCALED].map(
    (k): Run => ({
      scenario: 'faults with failed records (0.1% of records, 0.02% of batches, DynamoDB throttling 5%), shipped holds',
      rule: `maxBacklog ${k}`,
      options: { probeMaxBacklog: k, phases: faults },
    }),
  ),
  ...[1e-6, 1e-5, 1e-4, 1e-3].map(
    (rate): Run => ({
      scenario: `healthy, ${rate} of records failed, held and handed back after 5 s (shipped)`,
      rule: `maxBacklog ${SCALED}`,
      options: {
        ...noFailures,
        recordFailureRate: rate,
        probeMaxBacklog: SCALED,
        phases: [healthy('healthy', 600 * S)],
      },
    }),
  ),
  {
    scenario: 'healthy, 0.001 of records failed, the visibility change failing: held for the visibility timeout',
    rule: `maxBacklog ${SCALED}`,
    options: {
      ...noFailures,
      recordFailureRate: 1e-3,
      retryFailedSooner: false,
      probeMaxBacklog: SCALED,
      phases: [healthy('healthy', 600 * S)],
    },
  },
  ...[OLD, SCALED, ALWAYS].map(
    (k): Run => ({
      scenario: 'out of order: every receive takes visible messages at random (no FIFO tendency), burst',
      rule: k === ALWAYS ? 'ignore the backlog (mutant)' : `maxBacklog ${k}`,
      options: {
        ...noFailures,
        probeMaxBacklog: k,
        reorderWindow: Number.MAX_SAFE_INTEGER,
        phases: [healthy('healthy', 120 * S), burst, busy('drain', 240 * S)],
      },
    }),
  ),
  {
    scenario: 'ApproximateNumberOfMessages 5 s stale, burst',
    rule: `maxBacklog ${SCALED}`,
    options: {
      ...noFailures,
      probeMaxBacklog: SCALED,
      attributeLagMs: 5 * S,
      phases: [healthy('healthy', 120 * S), burst, busy('drain', 240 * S)],
    },
  },
];

const phaseSummary = (p: PhaseResult) => ({
  phase: p.name,
  seconds: (p.toMs - p.fromMs) / S,
  rate: Math.round(p.rate),
  probesCredited: `${p.probesCredited}/${p.probes}`,
  visibleAtProbe: p.visibleAtProbe,
  inFlight: p.inFlight,
  cutoffLagMs: p.cutoffLagMs,
  latencyMs: p.latencyMs,
  heldShare: p.heldShare,
});

function summary(result: SimResult) {
  const healthyPhases = result.phases.filter((p) => p.healthy);
  const probes = healthyPhases.reduce((n, p) => n + p.probes, 0);
  const credited = healthyPhases.reduce((n, p) => n + p.probesCredited, 0);
  return {
    healthyTicksCredited: probes === 0 ? 0 : Math.round((1000 * credited) / probes) / 1000,
    healthyCutoffLagMaxMs: Math.max(...healthyPhases.map((p) => p.cutoffLagMs.max)),
    exposedMessages: result.soundness.exposedMessages,
    maxExposureMs: result.soundness.maxExposureMs,
    passedWhileMissingMaxLatencyMs: result.soundness.passedWhileMissingMaxLatencyMs,
  };
}

const started = performance.now();
const out = {
  command: 'npm run bench:probe-credit',
  seed: SEED,
  model: {
    designRate: Math.round(DESIGN_RATE),
    ...Object.fromEntries(Object.entries(DESIGN_POINT).filter(([key]) => key !== 'seed')),
  },
  thresholds: { old: OLD, scaled: SCALED, scaledFrom: `INGEST_MESSAGE_RATE=${Math.ceil(DESIGN_RATE)}` },
  runs: runs.map((run) => {
    const t0 = performance.now();
    const result = simulate({ ...DESIGN_POINT, seed: SEED, ...run.options });
    return {
      scenario: run.scenario,
      rule: run.rule,
      summary: summary(result),
      phases: result.phases.map(phaseSummary),
      soundness: result.soundness,
      holds: result.holds,
      messages: result.messages,
      realSeconds: Math.round(performance.now() - t0) / 1000,
    };
  }),
  realSeconds: 0,
};
out.realSeconds = Math.round(performance.now() - started) / 1000;
console.log(JSON.stringify(out, null, 2));
