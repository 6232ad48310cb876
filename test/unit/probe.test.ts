// Probes are told from device payloads by their signature alone (issue: a device payload with a `probe` field was
// taken for a probe, and any producer could forge one).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ingestBatch } from '../../lambdas/core/ingest.js';
import { mayBeProbe, probeBody, readEntry, readProbe, signEntry } from '../../lambdas/core/probe.js';
import { memoryDeps, record } from '../support/ingest-fixtures.js';

const KEY = new Uint8Array(32).fill(1);
const OTHER_KEY = new Uint8Array(32).fill(2);
const QUEUE = 'arn:aws:sqs:us-east-1:000000000000:ingest';
const T = 1_800_000_000_000;

describe('probe signatures', () => {
  it('reads back the stamp of a probe signed for the source it is read from', () => {
    expect(readProbe(probeBody(KEY, T, QUEUE, QUEUE), QUEUE, KEY)).toBe(T);
    expect(readProbe(Buffer.from(probeBody(KEY, T, 's/shard-1', 'stream')), 'stream', KEY)).toBe(T);
  });

  it('refuses a probe signed with another key, for another source, or with its stamp changed', () => {
    expect(readProbe(probeBody(OTHER_KEY, T, QUEUE, QUEUE), QUEUE, KEY)).toBeUndefined();
    expect(readProbe(probeBody(KEY, T, QUEUE, 'another-queue'), QUEUE, KEY)).toBeUndefined();
    const moved = probeBody(KEY, T, QUEUE, QUEUE).replace(String(T), String(T + 60_000));
    expect(readProbe(moved, QUEUE, KEY)).toBeUndefined();
    expect(readProbe(JSON.stringify({ probe: T, partition: QUEUE }), QUEUE, KEY)).toBeUndefined();
  });

  it('never takes an arbitrary payload for a probe', () => {
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string()), (body) => readProbe(body, QUEUE, KEY) === undefined),
      { numRuns: 2_000 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 * T }), fc.string(), (probe, sig) => {
        return readProbe(JSON.stringify({ probe, partition: QUEUE, sig }), QUEUE, KEY) === undefined;
      }),
    );
    expect(mayBeProbe(`{"probe":1,"pad":"${'x'.repeat(600)}"}`)).toBe(false);
  });
});

describe('ingest with probes', () => {
  const keyStore = { get: async () => KEY };

  it('credits a signed probe, and treats forged or unsigned ones as the device payloads they claim not to be', async () => {
    const { deps, store, rejects } = memoryDeps({ probeKey: keyStore });
    const result = await ingestBatch(
      [
        record(probeBody(KEY, T, QUEUE, QUEUE), T, QUEUE),
        record({ probe: T + 3_600_000, partition: QUEUE, sig: 'forged' }, T, QUEUE),
        record(probeBody(OTHER_KEY, T + 3_600_000, QUEUE, QUEUE), T, QUEUE),
        record({ deviceId: 'sensor-1', probe: 42 }, T + 1, QUEUE),
      ].map((r) => ({ ...r, source: QUEUE })),
      deps,
      { ordered: false },
    );
    expect(result.probes.map((p) => p.probeAt)).toEqual([T]);
    expect(rejects.rejected.map((r) => r.reason)).toEqual(['MISSING_DEVICE_ID', 'MISSING_DEVICE_ID']);
    // The device's heartbeat is not lost because its payload has a "probe" field.
    expect((await store.get('sensor-1'))?.lastSeen).toBe(T + 1);
  });

  it('on a Kinesis shard, never claims more than what arrived before the probe did (issue 14)', async () => {
    const { deps } = memoryDeps({ probeKey: keyStore });
    const stream = 'arn:aws:kinesis:us-east-1:000000000000:stream/ingest';
    const ahead = { ...record(probeBody(KEY, T + 3_600_000, `${stream}/shard-0`, stream), T, `${stream}/shard-0`) };
    const result = await ingestBatch([{ ...ahead, source: stream }], deps, { ordered: true });
    expect(result.probes.map((p) => p.probeAt)).toEqual([T]);
  });

  it('recognises no probe at all before the dispatcher has created the key', async () => {
    const { deps } = memoryDeps({ probeKey: { get: async () => undefined } });
    const result = await ingestBatch([record(probeBody(KEY, T, QUEUE, QUEUE), T, QUEUE)], deps, { ordered: false });
    expect(result.probes).toEqual([]);
  });
});

describe('entry times a redrive preserves', () => {
  const body = '{"deviceId":"late-1"}';
  const record = { body, enteredAt: T + 60_000, source: QUEUE };

  it('are taken when signed for this body and queue, and no later than the record itself entered', () => {
    expect(readEntry({ at: T, sig: signEntry(KEY, T, QUEUE, body) }, record, KEY)).toBe(T);
  });

  it('are ignored when signed for another body, queue or time, with another key, or later than the record', () => {
    const claims = [
      { at: T, sig: signEntry(KEY, T, QUEUE, '{"deviceId":"other"}') },
      { at: T, sig: signEntry(KEY, T, 'another-queue', body) },
      { at: T - 1, sig: signEntry(KEY, T, QUEUE, body) },
      { at: T, sig: signEntry(OTHER_KEY, T, QUEUE, body) },
      { at: T + 120_000, sig: signEntry(KEY, T + 120_000, QUEUE, body) },
    ];
    for (const claim of claims) expect(readEntry(claim, record, KEY)).toBeUndefined();
  });
});
