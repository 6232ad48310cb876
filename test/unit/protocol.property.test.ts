// The whole protocol on the in-memory table under the fault model (protocol-model.ts): an SQS queue that reorders,
// redelivers and dead-letters, or a Kinesis shard retried from the failed record and skipped after its retries,
// failed records waiting out the visibility timeout, batches that throw or time out,
// single devices throttled, SNS down, forged probes and device payloads that look like probes, the scheduler
// stopping, crashes between commit, publish and clear, and operators overriding, muting and decommissioning
// devices under warm caches. I1 (no false offline), I2 (no missed offline), I3 (alternating events, identical
// duplicates, `since` never back) and I4 (everything committed published) hold; each fault class has a mutant it
// catches.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDeviceStore } from '../../sim/memory/device-store.js';
import { type Mutant, runScenario, type ScenarioStats, scenarioArb } from '../support/protocol-model.js';

const emptyStats = (): ScenarioStats => ({
  earlyOffline: 0,
  offlineEvents: 0,
  onlineEvents: 0,
  crashes: 0,
  continuations: 0,
  held: 0,
  credited: 0,
  deadLettered: 0,
  batched: { merged: 0, slow: 0, warm: 0, conflicts: 0, checkpoints: 0 },
});

describe('offline detection protocol under faults (in-memory model)', () => {
  it('keeps I1–I4 under every fault class, operators included', async () => {
    const stats = emptyStats();
    await fc.assert(
      fc.asyncProperty(scenarioArb({ maxDevices: 6, maxActions: 60, operators: true }), async (scenario) => {
        await runScenario(scenario, new MemoryDeviceStore(), { stats });
      }),
      { numRuns: 1_500 },
    );
    // The faults did happen: records failed and were held, some were dead-lettered, probes moved the watermarks,
    // and devices were reported offline before the final catch-up (about twice these in 1,500 runs, half of them on
    // SQS and half on Kinesis).
    expect(stats.held).toBeGreaterThan(700);
    expect(stats.deadLettered).toBeGreaterThan(2);
    expect(stats.credited).toBeGreaterThan(5_000);
    expect(stats.crashes).toBeGreaterThan(150);
    expect(stats.earlyOffline).toBeGreaterThan(100);
  });

  it('keeps I1, I2, I4 and the damped I3 with flap damping on', async () => {
    let flapping = 0;
    await fc.assert(
      fc.asyncProperty(scenarioArb({ maxDevices: 6, maxActions: 60, operators: true }), async (scenario) => {
        const store = new MemoryDeviceStore();
        const commit = store.commit.bind(store);
        store.commit = async (request) => {
          flapping += request.append.filter((e) => e.type === 'device.flapping').length;
          return commit(request);
        };
        await runScenario(scenario, store, { flap: true });
      }),
      { numRuns: 1_000 },
    );
    expect(flapping).toBeGreaterThan(4); // the runs do flap (about 15 in 1,000 runs)
  });

  it.each<Mutant>(['wall-clock-cutoff', 'no-republish', 'no-hold', 'probe-field-is-probe', 'forgeable-probes'])(
    'notices a broken protocol (%s)',
    async (mutant) => {
      // Guards the model itself: judging by the wall clock breaks I1 under lag; without the re-publish, a crash
      // between commit and publish loses an event; without holds, a failed record waiting out its visibility
      // timeout lets probes move the cutoff past it; a device payload taken for a probe loses the heartbeat; a probe a
      // producer can sign, stamped ahead and read from a Kinesis shard behind newer records, claims they are written.
      // A forged probe stamped ahead does harm where records queue up behind it: a Kinesis shard.
      const sources = mutant === 'forgeable-probes' ? (['kinesis'] as const) : undefined;
      const failure = await fc.check(
        fc.asyncProperty(
          scenarioArb({ maxDevices: 6, maxActions: 60, ...(sources ? { sources: [...sources] } : {}) }),
          async (scenario) => {
            await runScenario(scenario, new MemoryDeviceStore(), { mutant });
          },
        ),
        // A fixed seed: whether a mutant is caught must not depend on the run.
        { numRuns: 3_000, seed: 1 },
      );
      expect(failure.failed).toBe(true);
    },
  );
});

// The batched engine (batched.ts) under the same faults, plus its own: sweeps of one shard racing and saving over
// each other, sweeps that die between their commits and the save of the shard state (their warm states gone), and
// operators changing devices the state holds. Half the scenarios send often, so that most sightings are merged in
// memory rather than through the device items.
describe('the batched engine under the same faults (in-memory model)', () => {
  const arb = fc.oneof(
    scenarioArb({ maxDevices: 6, maxActions: 60, operators: true }),
    scenarioArb({ maxDevices: 6, maxActions: 60, operators: true, maxGapMs: 300 }),
  );

  it('keeps I1–I4 under every fault class, operators included', async () => {
    const stats = emptyStats();
    await fc.assert(
      fc.asyncProperty(arb, async (scenario) => {
        await runScenario(scenario, new MemoryDeviceStore(), { stats, engine: 'batched' });
      }),
      { numRuns: 1_500 },
    );
    // About twice these in 1,500 runs: the engine's own faults happen, and sightings take both paths.
    expect(stats.batched!.merged).toBeGreaterThan(100);
    expect(stats.batched!.slow).toBeGreaterThan(2_500);
    expect(stats.batched!.conflicts).toBeGreaterThan(150);
    expect(stats.batched!.warm).toBeGreaterThan(4_000);
    expect(stats.crashes).toBeGreaterThan(500);
    expect(stats.held).toBeGreaterThan(400);
    expect(stats.earlyOffline).toBeGreaterThan(100);
  });

  it('keeps I1, I2, I4 and the damped I3 with flap damping on', async () => {
    await fc.assert(
      fc.asyncProperty(arb, async (scenario) => {
        await runScenario(scenario, new MemoryDeviceStore(), { flap: true, engine: 'batched' });
      }),
      { numRuns: 1_000 },
    );
  });

  it.each<Mutant>(['batched-no-notes', 'batched-no-lookback', 'no-hold', 'wall-clock-cutoff'])(
    'notices a broken protocol (%s)',
    async (mutant) => {
      // Without notes, a decommissioned device that keeps sending stays in the state as online: its new life is never
      // announced. Without the look back, a sighting appended while a read ran is never read. The per-device
      // engine's fault classes bite here too.
      const failure = await fc.check(
        fc.asyncProperty(arb, async (scenario) => {
          await runScenario(scenario, new MemoryDeviceStore(), { mutant, engine: 'batched' });
        }),
        { numRuns: 3_000, seed: 1 },
      );
      expect(failure.failed).toBe(true);
    },
  );
});
