// The whole protocol on the in-memory table: any interleaving of messages (late, reordered, duplicated), ingest
// batches, sweeps, continuations, crashes between commit, publish and clear, and a held-back watermark keeps
// I1 (no false offline), I2 (no missed offline) and I3 (alternating events, identical duplicates).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDeviceStore } from '../support/memory-store.js';
import { runScenario, scenarioArb } from '../support/protocol-model.js';

describe('offline detection protocol (in-memory model)', () => {
  it('keeps I1, I2 and I3 under any interleaving, duplicates, reordering, lag and crashes', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb({ maxDevices: 6, maxActions: 60 }), async (scenario) => {
        await runScenario(scenario, new MemoryDeviceStore());
      }),
      { numRuns: 400 },
    );
  });

  it('keeps I1, I2 and the damped I3 with flap damping on', async () => {
    let flapping = 0;
    await fc.assert(
      fc.asyncProperty(scenarioArb({ maxDevices: 6, maxActions: 60 }), async (scenario) => {
        const store = new MemoryDeviceStore();
        const publish = store.commit.bind(store);
        store.commit = async (request) => {
          flapping += request.append.filter((e) => e.type === 'device.flapping').length;
          return publish(request);
        };
        await runScenario(scenario, store, { flap: true });
      }),
      { numRuns: 400 },
    );
    expect(flapping).toBeGreaterThan(30); // the runs do flap (~70 in 400 runs)
  });

  it.each(['wall-clock-cutoff', 'no-republish'] as const)('notices a broken protocol (%s)', async (mutant) => {
    // Guards the model itself: judging by the wall clock breaks I1 under lag; without the re-publish, a crash
    // between commit and publish loses an event.
    const failure = await fc.check(
      fc.asyncProperty(scenarioArb({ maxDevices: 6, maxActions: 60 }), async (scenario) => {
        await runScenario(scenario, new MemoryDeviceStore(), { mutant });
      }),
      { numRuns: 400 },
    );
    expect(failure.failed).toBe(true);
  });
});
