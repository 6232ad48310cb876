// An in-memory WatermarkStore: tests set the snapshot directly (to hold the cutoff back, to simulate lag) or drive
// it through `credit` as the ingest would.
import {
  type Hold,
  type HoldRelease,
  holdBucket,
  type WatermarkSnapshot,
  type WatermarkStore,
} from '../../lambdas/core/watermark.js';

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
    if (!release) return;
    this.setHolds(
      partition,
      this.holdsOf(partition).map((hold) =>
        hold.until === undefined && hold.returnsAt <= release.returnedBefore ? { ...hold, until: release.until } : hold,
      ),
    );
  }

  async hold(partition: string, at: number, returnsAt: number): Promise<void> {
    const bucket = holdBucket(returnsAt);
    const holds = this.holdsOf(partition);
    const i = holds.findIndex((hold) => holdBucket(hold.returnsAt) === bucket);
    const same = holds[i];
    const next: Hold =
      !same || same.until !== undefined
        ? { at, returnsAt }
        : { at: Math.min(same.at, at), returnsAt: Math.max(same.returnsAt, returnsAt) };
    this.setHolds(partition, i === -1 ? [...holds, next] : holds.map((hold, j) => (j === i ? next : hold)));
  }

  private holdsOf(partition: string): Hold[] {
    return [...(this.snapshot.holds?.[partition] ?? [])];
  }

  private setHolds(partition: string, holds: Hold[]): void {
    this.snapshot = { ...this.snapshot, holds: { ...this.snapshot.holds, [partition]: holds } };
  }

  async setLive(partitions: string[], at?: number): Promise<void> {
    this.snapshot = { ...this.snapshot, live: [...partitions] };
    if (at === undefined) return;
    for (const partition of Object.keys(this.snapshot.holds ?? {})) {
      this.setHolds(
        partition,
        this.holdsOf(partition).filter((hold) => hold.until === undefined || hold.until > at),
      );
    }
  }
}
