// An in-memory WatermarkStore: tests set the snapshot directly (to hold the cutoff back, to simulate lag) or drive
// it through `credit` as the ingest would.
import type { HoldRelease, WatermarkSnapshot, WatermarkStore } from '../../lambdas/core/watermark.js';

export class MemoryWatermarks implements WatermarkStore {
  snapshot: WatermarkSnapshot;

  /** With no partitions the cutoff is the wall clock; `at` gives one partition `p` that watermark. */
  constructor(at?: number) {
    this.snapshot = at === undefined ? { live: [], marks: {} } : { live: ['p'], marks: { p: at } };
  }

  /** Sets the one partition's watermark, up or down (a test may model any lag). */
  set(at: number, partition = 'p'): void {
    this.snapshot = {
      live: this.snapshot.live.includes(partition) ? this.snapshot.live : [...this.snapshot.live, partition],
      marks: { ...this.snapshot.marks, [partition]: at },
    };
  }

  async read(): Promise<WatermarkSnapshot> {
    return structuredClone(this.snapshot);
  }

  async credit(partition: string, probeAt: number, release?: HoldRelease): Promise<void> {
    const mark = this.snapshot.marks[partition];
    if (mark === undefined || probeAt > mark)
      this.snapshot = { ...this.snapshot, marks: { ...this.snapshot.marks, [partition]: probeAt } };
    const hold = this.snapshot.holds?.[partition];
    if (release && hold && hold.until === undefined && hold.failedAt <= release.failedBefore) {
      this.snapshot = {
        ...this.snapshot,
        holds: { ...this.snapshot.holds, [partition]: { ...hold, until: release.until } },
      };
    }
  }

  async hold(partition: string, at: number, failedAt: number): Promise<void> {
    const hold = this.snapshot.holds?.[partition];
    const next =
      !hold || hold.until !== undefined || hold.at >= at
        ? { at, failedAt }
        : { at: hold.at, failedAt: Math.max(hold.failedAt, failedAt) };
    this.snapshot = { ...this.snapshot, holds: { ...this.snapshot.holds, [partition]: next } };
  }

  async setLive(partitions: string[], at?: number): Promise<void> {
    this.snapshot = { ...this.snapshot, live: [...partitions], ...(at === undefined ? {} : { liveAt: at }) };
  }
}
