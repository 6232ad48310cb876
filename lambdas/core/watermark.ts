// Watermarks: how far ingestion has really got, per ingest partition. The sweep judges devices by this clock, not
// the wall clock, so messages merely waiting in our own queue never make a device look silent.

/** The watermark (epoch ms) of every partition that has one, and which partitions are live now. A partition's
 * watermark `w` means: everything that entered it before `w` has been written to the device table. */
export interface WatermarkSnapshot {
  /** Partitions that count: the configured ingest queues and the open shards of the ingest streams. */
  live: string[];
  marks: Readonly<Record<string, number>>;
  /** When the live list was last recorded (epoch ms), if ever: lets the sweep notice a dispatcher that stopped. */
  liveAt?: number;
}

export interface WatermarkStore {
  read(): Promise<WatermarkSnapshot>;
  /** Raises a partition's watermark to `probeAt`; never lowers it. */
  credit(partition: string, probeAt: number): Promise<void>;
  /** Records which partitions are live (the dispatcher does, as shards open and close), as of `at` (epoch ms). */
  setLive(partitions: string[], at?: number): Promise<void>;
}

/** The time up to which silence may be judged: `min(now, min over live partitions of watermark + tolerance)`.
 * Undefined while a live partition has no watermark yet: nothing is judged until every partition has proven it
 * is caught up. With no live partitions at all, nothing can lag, and the wall clock is the cutoff. */
export function sweepCutoff(now: number, snapshot: WatermarkSnapshot, toleranceMs: number): number | undefined {
  let cutoff = now;
  for (const partition of snapshot.live) {
    const mark = snapshot.marks[partition];
    if (mark === undefined) return undefined;
    cutoff = Math.min(cutoff, mark + toleranceMs);
  }
  return cutoff;
}
