// The crediting policy: when a committed probe may raise its partition's watermark, and to what.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ENV, PROBE_BACKLOG_WAIT_MS, probeMaxBacklogSetting } from '../../lambdas/core/config.js';
import { newestPerPartition, probeCredit } from '../../lambdas/core/watermark.js';

const NOW = 1_800_000_060_000;

describe('probeCredit', () => {
  it('credits a probe from an ordered source (a Kinesis shard) with its stamp', () => {
    expect(probeCredit(NOW - 5_000, NOW, { ordered: true })).toBe(NOW - 5_000);
  });

  it('credits an SQS probe only while the visible backlog is at most the threshold', () => {
    const sqs = (visibleBacklog: number | undefined) => ({ ordered: false as const, visibleBacklog, maxBacklog: 10 });
    expect(probeCredit(NOW - 1_000, NOW, sqs(0))).toBe(NOW - 1_000);
    expect(probeCredit(NOW - 1_000, NOW, sqs(10))).toBe(NOW - 1_000);
    expect(probeCredit(NOW - 1_000, NOW, sqs(11))).toBeUndefined();
    expect(probeCredit(NOW - 1_000, NOW, sqs(500_000))).toBeUndefined();
  });

  it('credits nothing when the backlog is unknown', () => {
    expect(probeCredit(NOW, NOW, { ordered: false, visibleBacklog: undefined, maxBacklog: 10 })).toBeUndefined();
  });

  it('never credits past the clock of the crediting Lambda (a probe from the future cannot freeze a watermark)', () => {
    expect(probeCredit(NOW + 3_600_000, NOW, { ordered: true })).toBe(NOW);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 * NOW }), fc.nat(1000), fc.nat(1000), (probeAt, backlog, max) => {
        const mark = probeCredit(probeAt, NOW, { ordered: false, visibleBacklog: backlog, maxBacklog: max });
        return mark === undefined ? backlog > max : mark <= NOW && mark <= probeAt;
      }),
    );
  });
});

describe('the SQS backlog threshold (PROBE_MAX_BACKLOG)', () => {
  it('is half a second of the ingest rate when only the rate is set: 8,334 at 1,000,000 devices a minute', () => {
    expect(PROBE_BACKLOG_WAIT_MS).toBe(500);
    expect(probeMaxBacklogSetting({ [ENV.ingestMessageRate]: '16667' })).toBe(8_334);
    expect(probeMaxBacklogSetting({ [ENV.ingestMessageRate]: '100' })).toBe(50);
  });

  it('is at least one ReceiveMessage worth (10), the old default, without a rate or at low rates', () => {
    expect(probeMaxBacklogSetting({})).toBe(10);
    expect(probeMaxBacklogSetting({ [ENV.ingestMessageRate]: '5' })).toBe(10);
  });

  it('is PROBE_MAX_BACKLOG when that is set, whatever the rate', () => {
    expect(probeMaxBacklogSetting({ [ENV.probeMaxBacklog]: '250', [ENV.ingestMessageRate]: '16667' })).toBe(250);
    expect(probeMaxBacklogSetting({ [ENV.probeMaxBacklog]: '0' })).toBe(0);
  });

  it('refuses a rate that is not a whole number of messages per second', () => {
    expect(() => probeMaxBacklogSetting({ [ENV.ingestMessageRate]: '16.7k' })).toThrow(/INGEST_MESSAGE_RATE/);
    expect(() => probeMaxBacklogSetting({ [ENV.ingestMessageRate]: '-1' })).toThrow(/INGEST_MESSAGE_RATE/);
  });
});

describe('newestPerPartition', () => {
  it('keeps the newest probe of each partition and counts the ones it covers', () => {
    expect(
      newestPerPartition([
        { partition: 'a', probeAt: 3 },
        { partition: 'b', probeAt: 1 },
        { partition: 'a', probeAt: 5 },
        { partition: 'a', probeAt: 4 },
      ]),
    ).toEqual([
      { partition: 'a', probeAt: 5, count: 3 },
      { partition: 'b', probeAt: 1, count: 1 },
    ]);
    expect(newestPerPartition([])).toEqual([]);
  });
});
