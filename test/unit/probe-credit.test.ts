// The crediting policy: when a committed probe may raise its partition's watermark, and to what.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
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
