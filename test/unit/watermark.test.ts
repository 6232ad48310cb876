import { describe, expect, it } from 'vitest';
import { oldestWatermarkAge, sweepCutoff } from '../../lambdas/core/watermark.js';

describe('watermarks', () => {
  const snapshot = { live: ['q', 's1'], marks: { q: 1_000, s1: 700, gone: 10 } };

  it('judges up to the slowest live partition plus the tolerance, never past now', () => {
    // A probe stamped t vouches for what entered before t: the silence judged ends a millisecond before it.
    expect(sweepCutoff(2_000, snapshot, 100)).toBe(799);
    expect(sweepCutoff(750, snapshot, 100)).toBe(750);
    expect(sweepCutoff(2_000, { live: [], marks: {} }, 100)).toBe(2_000);
    expect(sweepCutoff(2_000, { live: ['q', 'new'], marks: { q: 1_000 } }, 100)).toBeUndefined();
  });

  it('reports the age of the slowest live watermark', () => {
    expect(oldestWatermarkAge(2_000, snapshot)).toBe(1_300);
    expect(oldestWatermarkAge(2_000, { live: [], marks: {} })).toBeUndefined();
    expect(oldestWatermarkAge(2_000, { live: ['new'], marks: {} })).toBe(Number.POSITIVE_INFINITY);
  });
});
