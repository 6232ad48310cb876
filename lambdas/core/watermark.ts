// Watermarks: how far ingestion has really got, per ingest partition. The sweep judges devices by this clock, not
// the wall clock, so messages merely waiting in our own queue never make a device look silent.

/** The watermark (epoch ms) of every partition that has one, and which partitions are live now. A partition's
 * watermark `w` means: everything that entered it before `w` has been written to the device table, or is held. */
export interface WatermarkSnapshot {
  /** Partitions that count: the configured ingest queues and the open shards of the ingest streams. */
  live: string[];
  marks: Readonly<Record<string, number>>;
  /** Failed records still pending in an SQS partition (see `Hold`), one hold per `HOLD_BUCKET_MS` of return time. */
  holds?: Readonly<Record<string, readonly Hold[]>>;
}

/**
 * An SQS record the ingest could not commit is not in the table, and while it is invisible (in flight, or waiting out
 * its visibility) not in the visible backlog either: no probe can tell it exists. So before answering Lambda, the
 * ingest makes it visible again soon (a short backoff instead of the queue's visibility timeout; progress.ts) and
 * records a hold for its partition, which then counts as caught up only to the oldest held entry time, whatever
 * probes are credited meanwhile.
 *
 * Holds are kept per `HOLD_BUCKET_MS` of the time the held records are visible again (`returnsAt`), so that records
 * failing every few seconds (at 16.7k msg/s, one in a million does) release the older ones instead of keeping one
 * hold alive forever. A hold is released by a probe stamped an ingest timeout after its `returnsAt`, and credited by
 * the usual rule: every held record was visible before the probe entered, so it was taken before the probe (the
 * backlog was small when the probe was processed) and its batch has finished; a record that failed again is held
 * again, later. A released hold lingers one ingest timeout (`until`) for a batch still running when the probe was
 * credited. A record that fails on its last receive goes to the dead-letter queue: its hold is released the same way,
 * and the data is the redrive's to bring back (README, "Guarantees under faults").
 */
export interface Hold {
  /** Oldest entry time among the records held. */
  at: number;
  /** When the last of them is visible again (wall clock of the ingest). */
  returnsAt: number;
  /** Set on release: the hold stops counting at this time. */
  until?: number;
}

/** Width of a hold's bucket of return times. */
export const HOLD_BUCKET_MS = 10_000;

export interface WatermarkStore {
  read(): Promise<WatermarkSnapshot>;
  /** Raises a partition's watermark to `probeAt`; never lowers it. With `release`, also releases the partition's
   * holds whose records returned at or before `release.returnedBefore`, to stop counting at `release.until`. */
  credit(partition: string, probeAt: number, release?: HoldRelease): Promise<void>;
  /** Records failed records of a partition, in the hold of their `returnsAt` bucket: its `at` only ever goes down
   * and its `returnsAt` up; a released hold of that bucket is replaced. */
  hold(partition: string, at: number, returnsAt: number): Promise<void>;
  /** Records which partitions are live (the dispatcher does, as shards open and close), and forgets holds that
   * stopped counting by `at` (epoch ms). */
  setLive(partitions: string[], at?: number): Promise<void>;
}

export interface HoldRelease {
  returnedBefore: number;
  until: number;
}

/** The bucket of a hold's return time. */
export const holdBucket = (returnsAt: number) => Math.floor(returnsAt / HOLD_BUCKET_MS);

/** A partition's watermark as the sweep may use it: capped by the holds that still count at `now`. */
export function effectiveMark(now: number, snapshot: WatermarkSnapshot, partition: string): number | undefined {
  const mark = snapshot.marks[partition];
  if (mark === undefined) return undefined;
  let effective = mark;
  for (const hold of snapshot.holds?.[partition] ?? []) {
    if (hold.until === undefined || hold.until > now) effective = Math.min(effective, hold.at);
  }
  return effective;
}

/** Age of the slowest live partition's watermark (`now - watermark`), or undefined with no live partition. A live
 * partition without a watermark counts as infinitely old: it holds the cutoff back just the same. */
export function oldestWatermarkAge(now: number, snapshot: WatermarkSnapshot): number | undefined {
  if (snapshot.live.length === 0) return undefined;
  return Math.max(
    ...snapshot.live.map((partition) => now - (effectiveMark(now, snapshot, partition) ?? Number.NEGATIVE_INFINITY)),
  );
}

/** The time up to which silence may be judged: `min(now, min over live partitions of watermark + tolerance)`, each
 * watermark capped by its partition's hold. Undefined while a live partition has no watermark yet: nothing is
 * judged until every partition has proven it is caught up. With no live partitions at all, nothing can lag, and
 * the wall clock is the cutoff. */
export function sweepCutoff(now: number, snapshot: WatermarkSnapshot, toleranceMs: number): number | undefined {
  let cutoff = now;
  for (const partition of snapshot.live) {
    const mark = effectiveMark(now, snapshot, partition);
    if (mark === undefined) return undefined;
    // A probe stamped t (a hold at t) vouches for what entered before t: a record entered in the same millisecond may
    // be behind it. So the silence judged ends a millisecond before.
    cutoff = Math.min(cutoff, mark - 1 + toleranceMs);
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
  /** An SQS standard queue: no order, so the queue's visible backlog at the time the probe is processed decides.
   * `maxBacklog` is `PROBE_MAX_BACKLOG`, by default half a second of the queue's usual peak rate (config.ts). */
  | { ordered: false; visibleBacklog: number | undefined; maxBacklog: number };

/**
 * The watermark a committed probe earns, or undefined when it earns none. Only called for probes whose preceding
 * records (SQS: the whole batch) were committed.
 *
 * SQS standard queues may deliver a probe before older messages, so a probe proves nothing by its position. It is
 * credited only when, after its batch committed, at most `maxBacklog` messages are still visible
 * (ApproximateNumberOfMessages); an ingest stall, or a drain that has not finished, shows a larger backlog and earns
 * nothing. Why that is enough, and what it assumes:
 * - A queue served roughly in order that shows `n` visible messages at rate `r` is handing out messages that
 *   entered about `n / r` ago. With `maxBacklog` = `r` × PROBE_BACKLOG_WAIT_MS (config.ts), a credit is given only
 *   while messages wait about that long or less: an older message still visible is received within it.
 * - Messages in flight (ApproximateNumberOfMessagesNotVisible) are not counted: they include this very batch until
 *   Lambda deletes it, and every other batch being written, thousands of messages at fleet rates; counting them
 *   would stop every credit. Each is written, or failed and held (`Hold`), within the batching window plus
 *   INGEST_TIMEOUT_MS (10 s) of being received: the handler answers a batch within that budget, with every record
 *   not yet committed failed and held (ingest-handler.ts), whatever the function's own timeout.
 * So a message that entered before a credited probe is written or held within the queue wait + the batching window
 * + INGEST_TIMEOUT_MS of its entry, and the watermark passing it is harmless while the tolerance covers that:
 * `tolerance ≥ PROBE_BACKLOG_WAIT_MS + maxBatchingWindow + INGEST_TIMEOUT_MS` (defaults: 0.5 + 1 + 10 = 11.5 s
 * against 30 s; the construct warns at synth below it). Liveness asks the opposite: `maxBacklog` above the visible
 * backlog a healthy queue shows when probes are judged (about a hundred, up to about a thousand, at 16.7k
 * messages/s; up to about 2,000 while records fail and are handed back), and `tolerance ≥ tick + probe latency`.
 * bench/probe-credit.ts measures both at the design point: half a second of rate (8,334) is credited at every tick
 * and no message is missing past the tolerance after the watermark passed it; a fixed 10 credits 7 probes of 60
 * there, and the cutoff falls up to 160 s behind the clock. Not covered:
 * - an invocation Lambda throttles stays in flight, unheld, retried until the visibility timeout ends: the ingest
 *   function needs reserved concurrency at least the event source mapping's maximum concurrency;
 * - a queue far out of order (a message left behind for longer than the tolerance while newer ones are served), and
 *   right after a backlog drains, a batch received while the queue was still behind that runs to the deadline;
 * - a configured rate far above the real one: the queue wait a credit allows grows as configured / real rate.
 * Delayed messages (ApproximateNumberOfMessagesDelayed) are not counted either: they are the dispatcher's own probes
 * for the rest of the minute. Devices do not send delayed messages (and the ingest queue must have no queue-level
 * delay): a delayed device message could enter before a probe and be processed after it, which no backlog shows.
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
