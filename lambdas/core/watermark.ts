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

/** Age of the slowest live partition's watermark (`now - watermark`), or undefined with no live partition. A live
 * partition without a watermark counts as infinitely old: it holds the cutoff back just the same. */
export function oldestWatermarkAge(now: number, snapshot: WatermarkSnapshot): number | undefined {
  if (snapshot.live.length === 0) return undefined;
  return Math.max(...snapshot.live.map((partition) => now - (snapshot.marks[partition] ?? Number.NEGATIVE_INFINITY)));
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

/** A probe the ingest got past: the partition it was read from, and the time it was stamped with. */
export interface ProbeSeen {
  partition: string;
  probeAt: number;
}

/** How the partition a probe was read from orders its records. */
export type ProbeSource =
  /** A Kinesis shard read with ParallelizationFactor 1: every record before the probe was processed before it. */
  | { ordered: true }
  /** An SQS standard queue: no order, so the queue's visible backlog at the time the probe is processed decides. */
  | { ordered: false; visibleBacklog: number | undefined; maxBacklog: number };

/**
 * The watermark a committed probe earns, or undefined when it earns none. Only called for probes whose preceding
 * records (SQS: the whole batch) were committed.
 *
 * SQS standard queues may deliver a probe before older messages, so a probe proves nothing by its position. It is
 * credited only when, after its batch committed, at most `maxBacklog` messages are still visible
 * (ApproximateNumberOfMessages): then any older message left is picked up by the very next receive and written
 * within one batch's latency, which the tolerance covers. An ingest stall, or a drain that has not finished, shows
 * a larger backlog and earns nothing. Not counted, on purpose:
 * - messages in flight (ApproximateNumberOfMessagesNotVisible): they include this very batch until Lambda deletes
 *   it after we return, and the other batches being written right now; counting them would stop every credit as
 *   soon as ingest runs at any concurrency, and what is in flight is being written at healthy latency.
 * - delayed messages (ApproximateNumberOfMessagesDelayed): these are the dispatcher's own probes for the rest of
 *   the minute. Devices do not send delayed messages (and the ingest queue must have no queue-level delay): a
 *   delayed device message could enter before a probe and be processed after it, which no backlog shows.
 * An unknown backlog (the attribute call failed) earns nothing: the next probe will.
 *
 * The credit never exceeds `now`: a probe stamped in the future (a wrong clock, a forged probe) must not raise a
 * watermark that only ever rises.
 */
export function probeCredit(probeAt: number, now: number, source: ProbeSource): number | undefined {
  if (!source.ordered && (source.visibleBacklog === undefined || source.visibleBacklog > source.maxBacklog)) {
    return undefined;
  }
  return Math.min(probeAt, now);
}

/** The newest probe per partition, and how many it stands for: a watermark credited with it covers the others. */
export function newestPerPartition(probes: readonly ProbeSeen[]): Array<ProbeSeen & { count: number }> {
  const newest = new Map<string, ProbeSeen & { count: number }>();
  for (const probe of probes) {
    const seen = newest.get(probe.partition);
    if (!seen) newest.set(probe.partition, { ...probe, count: 1 });
    else {
      seen.count++;
      seen.probeAt = Math.max(seen.probeAt, probe.probeAt);
    }
  }
  return [...newest.values()];
}
