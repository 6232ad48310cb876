// A failed SQS record holds its partition's watermark until it is processed again (issue 10 #1): the record is
// invisible for the visibility timeout, in neither the visible backlog nor the table, so without the hold the probes
// credited meanwhile let the sweep report its device offline.
import { describe, expect, it } from 'vitest';
import type { IngestRecord } from '../../lambdas/core/ingest.js';
import { ingestBatch } from '../../lambdas/core/ingest.js';
import type { DeviceStore } from '../../lambdas/core/ports.js';
import { probeBody } from '../../lambdas/core/probe.js';
import { recordProgress } from '../../lambdas/core/progress.js';
import type { WatermarkStore } from '../../lambdas/core/watermark.js';
import { harness, T0 } from '../support/sweep-harness.js';

const QUEUE = 'arn:aws:sqs:us-east-1:000000000000:ingest';
const KEY = new Uint8Array(32).fill(9);
const S = 1_000;
const VISIBILITY_MS = 180 * S;
const BATCH_TIMEOUT_MS = 30 * S;

/** The example: a tracker (timeout 90 s) whose message at 30 s fails once; probes every 10 s meanwhile;
 * the message comes back after the visibility timeout and commits; then the tracker is silent for good. */
async function failedRecordScenario(options: { holds: boolean }) {
  const h = harness();
  // The mutant: the ingest forgets to hold what failed.
  const watermarks: Pick<WatermarkStore, 'credit' | 'hold'> = {
    credit: (partition, probeAt, release) => h.watermarks.credit(partition, probeAt, release),
    hold: options.holds ? (partition, at, failedAt) => h.watermarks.hold(partition, at, failedAt) : async () => {},
  };
  await h.watermarks.setLive([QUEUE]);
  let n = 0;
  const record = (body: string, enteredAt: number): IngestRecord => ({
    id: `m${++n}`,
    body,
    enteredAt,
    partition: QUEUE,
    source: QUEUE,
  });
  const device = (at: number) => record(JSON.stringify({ deviceId: 'tracker-1' }), T0 + at);
  const probe = (at: number) => record(probeBody(KEY, T0 + at, QUEUE, QUEUE), T0 + at);
  let failing = false;
  const store: DeviceStore = Object.create(h.store);
  store.touch = async (request) => {
    if (failing) throw new Error('throttled (injected)');
    return h.store.touch(request);
  };
  store.commit = async (request) => {
    if (failing) throw new Error('throttled (injected)');
    return h.store.commit(request);
  };
  /** One Lambda invocation: the batch, then holds and credits as the handler records them. */
  const invoke = async (records: IngestRecord[], at: number) => {
    h.clock.t = T0 + at;
    const deps = h.ingestDeps({ store, probeKey: { get: async () => KEY } });
    const result = await ingestBatch(records, deps, { ordered: false });
    await recordProgress(
      records,
      result,
      {
        watermarks,
        // No receipt handles here: a failed record comes back after the visibility timeout, as in the issue.
        queue: {
          state: async () => ({ visible: 0, visibilityTimeoutMs: VISIBILITY_MS }),
          retryAfter: async (_partition, handles) => ({ failed: handles }),
        },
        probeMaxBacklog: 10,
        batchTimeoutMs: BATCH_TIMEOUT_MS,
        now: () => h.clock.t,
      },
      { ordered: false },
    );
    return result;
  };
  const sweepAt = async (at: number) => {
    h.clock.t = T0 + at;
    return h.sweepAll();
  };

  await invoke([device(0), probe(0)], 0);
  failing = true;
  const failed = await invoke([device(30 * S)], 30 * S);
  expect(failed.failedRecordIds.size).toBe(1);
  failing = false;
  for (let t = 40; t <= 200; t += 10) await invoke([probe(t * S)], t * S);
  await sweepAt(201 * S);
  const offlineWhileHeld = h.events.of('tracker-1', 'device.offline').length;
  // The redelivery (visibility timeout after the failure) commits; later probes release the hold.
  await invoke([device(30 * S)], 210 * S);
  for (let t = 210; t <= 400; t += 10) await invoke([probe(t * S)], t * S);
  await sweepAt(401 * S);
  return { h, offlineWhileHeld };
}

describe('holds on failed SQS records', () => {
  it('keep the device online while its failed message waits out the visibility timeout, then judge it by it', async () => {
    const { h, offlineWhileHeld } = await failedRecordScenario({ holds: true });
    expect(offlineWhileHeld).toBe(0);
    // Exactly one transition after the registration: offline, from the message that was held.
    const events = h.events.of('tracker-1').map((e) => [e.type, e.since - T0]);
    expect(events).toEqual([
      ['device.online', 0],
      ['device.offline', 120 * S],
    ]);
    const holds = (await h.watermarks.read()).holds?.[QUEUE] ?? [];
    expect(holds.length).toBeGreaterThan(0);
    expect(holds.every((hold) => hold.until !== undefined)).toBe(true);
  });

  it('without them, the issue reproduces: reported offline since 90 s though a message entered at 30 s', async () => {
    const { h, offlineWhileHeld } = await failedRecordScenario({ holds: false });
    expect(offlineWhileHeld).toBe(1);
    // The redelivered message entered before that `since`: history, not a return (else `since` would go back).
    const events = h.events.of('tracker-1').map((e) => [e.type, e.since - T0]);
    expect(events).toEqual([
      ['device.online', 0],
      ['device.offline', 90 * S],
    ]);
  });
});
