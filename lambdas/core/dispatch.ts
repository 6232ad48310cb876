// The dispatcher use case, run once a minute by the scheduler: spread one sweep job per shard over the minute's
// sub-minute ticks, record which ingest partitions are live, and send a watermark probe into every partition at
// every tick. No AWS here: ports only.
import { type ProbeKeyStore, probeBody } from './probe.js';
import type { SweepJob, SweepJobQueue } from './sweep.js';
import type { WatermarkStore } from './watermark.js';

/** One sub-minute tick of a scheduler invocation. */
export interface DispatchTick {
  /** SQS DelaySeconds of everything sent for this tick. */
  delaySeconds: number;
  /** When the tick is due (epoch ms). */
  at: number;
  jobs: SweepJob[];
}

/** The ticks of one scheduler invocation at `now`: DelaySeconds 0, T, 2T, … below 60, each with a sweep job for
 * every shard. A T that does not divide 60 leaves a shorter gap before the next minute's first tick. */
export function planDispatch(now: number, shardCount: number, tickSeconds: number): DispatchTick[] {
  const ticks: DispatchTick[] = [];
  const jobs = Array.from({ length: shardCount }, (_, shard): SweepJob => ({ shard: String(shard) }));
  for (let delaySeconds = 0; delaySeconds < 60; delaySeconds += tickSeconds) {
    ticks.push({ delaySeconds, at: now + delaySeconds * 1000, jobs });
  }
  return ticks;
}

/** A probe for an SQS ingest queue, delayed to its tick. */
export interface QueueProbe {
  partition: string;
  probeAt: number;
  delaySeconds: number;
  body: string;
}

/** SQS probes are all sent at once, each delayed to its tick, and stamped with the time it becomes visible: a
 * credit then says "the queue's backlog was small after `probeAt`", which is what the ingest checks. A queue's
 * partition is its ARN, which is also the source its probes are signed for. */
export function queueProbes(
  ticks: readonly DispatchTick[],
  queuePartitions: readonly string[],
  key: Uint8Array,
): QueueProbe[] {
  return ticks.flatMap((tick) =>
    queuePartitions.map((partition) => ({
      partition,
      probeAt: tick.at,
      delaySeconds: tick.delaySeconds,
      body: probeBody(key, tick.at, partition, partition),
    })),
  );
}

/** A probe for one open shard, signed for its stream. */
export interface StreamProbe {
  shard: ShardTarget;
  body: string;
}

export function streamProbes(shards: readonly ShardTarget[], probeAt: number, key: Uint8Array): StreamProbe[] {
  return shards.map((shard) => ({ shard, body: probeBody(key, probeAt, shard.partition, shard.streamArn) }));
}

/** A shard as ListShards describes it (only the fields we use). */
export interface ShardDescription {
  ShardId?: string;
  HashKeyRange?: { StartingHashKey?: string };
  SequenceNumberRange?: { EndingSequenceNumber?: string };
}

/** An open shard of an ingest stream: a watermark partition, and where a probe must be hashed to land in it. */
export interface ShardTarget {
  partition: string;
  streamArn: string;
  shardId: string;
  /** ExplicitHashKey for PutRecord: the shard's starting hash key is inside its range by definition. */
  hashKey: string;
}

/** The watermark partition of a Kinesis shard; the ingest derives the same id from its records. */
export const shardPartition = (streamArn: string, shardId: string) => `${streamArn}/${shardId}`;

/** The open shards among a stream's shards. A closed shard (it has an ending sequence number, after a split or
 * merge) stops counting as live. That is safe: Lambda reads a parent shard to its end before it reads any child,
 * so until the parent has drained, the children get no credits and their missing or old watermarks hold the
 * cutoff back; once a child is credited, everything that entered the parent was written as well. */
export function openShards(streamArn: string, shards: readonly ShardDescription[]): ShardTarget[] {
  return shards.flatMap((shard) => {
    const shardId = shard.ShardId;
    const hashKey = shard.HashKeyRange?.StartingHashKey;
    if (!shardId || hashKey === undefined || shard.SequenceNumberRange?.EndingSequenceNumber !== undefined) return [];
    return [{ partition: shardPartition(streamArn, shardId), streamArn, shardId, hashKey }];
  });
}

export interface ProbeOutcome {
  sent: number;
  failed: number;
}

/** Ports of the dispatcher. */
export interface DispatchDeps {
  shardCount: number;
  tickSeconds: number;
  sweepQueue: SweepJobQueue;
  watermarks: Pick<WatermarkStore, 'setLive'>;
  /** Signs the probes (probe.ts); created on the first dispatch. */
  probeKey: Pick<ProbeKeyStore, 'getOrCreate'>;
  queues: {
    /** The watermark partitions of the configured SQS ingest queues (their ARNs). */
    partitions(): Promise<string[]>;
    send(probes: QueueProbe[]): Promise<ProbeOutcome>;
  };
  streams: {
    /** The open shards of every configured ingest stream. */
    openShards(): Promise<ShardTarget[]>;
    send(probes: StreamProbe[]): Promise<ProbeOutcome>;
  };
  /** Wall clock (ms) and a way to wait for the next tick, injected so tests run the minute instantly. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export interface DispatchOptions {
  /** Time the runtime still grants (Lambda's `getRemainingTimeInMillis`): a Kinesis tick that would not fit is
   * skipped rather than cut off mid-call. */
  remainingMs?: () => number;
}

export interface DispatchResult {
  ticks: number;
  jobsEnqueued: number;
  live?: string[];
  probesSent: number;
  probeFailures: number;
  /** Kinesis ticks not sent because the invocation would have run out of time. */
  ticksSkipped: number;
  /** What went wrong, by step; the steps that worked still did their part. */
  errors: Array<{ step: 'enqueue' | 'live' | 'probes'; error: unknown }>;
}

/** Left of the runtime's remaining time for a Kinesis tick's PutRecords and the report. */
const TICK_MARGIN_MS = 3_000;

/**
 * Sweep jobs and SQS probes are sent up front with DelaySeconds per tick. Kinesis has no per-record delay, and a
 * probe is only worth the time it was put: so this invocation stays for the minute and puts one probe into every
 * open shard at each tick. That keeps the probes independent of the sweep queue, whose backlog in an offline storm
 * must not hold the watermarks (and with them the cutoff) back. Without streams it returns at once.
 */
export async function dispatch(deps: DispatchDeps, options: DispatchOptions = {}): Promise<DispatchResult> {
  const started = deps.now();
  const ticks = planDispatch(started, deps.shardCount, deps.tickSeconds);
  const result: DispatchResult = {
    ticks: ticks.length,
    jobsEnqueued: 0,
    probesSent: 0,
    probeFailures: 0,
    ticksSkipped: 0,
    errors: [],
  };
  const count = (outcome: ProbeOutcome) => {
    result.probesSent += outcome.sent;
    result.probeFailures += outcome.failed;
  };

  const [queuePartitions, shards] = await Promise.allSettled([deps.queues.partitions(), deps.streams.openShards()]);
  const enqueued = Promise.allSettled(
    ticks.map(async (tick) => {
      await deps.sweepQueue.enqueue(tick.jobs, tick.delaySeconds);
      result.jobsEnqueued += tick.jobs.length;
    }),
  );

  if (queuePartitions.status === 'fulfilled' && shards.status === 'fulfilled') {
    // Only a complete picture replaces the live list: a partition missing from it would stop holding the cutoff.
    const live = [...queuePartitions.value, ...shards.value.map((shard) => shard.partition)];
    try {
      await deps.watermarks.setLive(live, started);
      result.live = live;
    } catch (error) {
      result.errors.push({ step: 'live', error });
    }
  } else {
    for (const failed of [queuePartitions, shards]) {
      if (failed.status === 'rejected') result.errors.push({ step: 'live', error: failed.reason });
    }
  }

  const key = await deps.probeKey.getOrCreate().catch((error: unknown) => {
    result.errors.push({ step: 'probes', error });
    return undefined;
  });
  if (key && queuePartitions.status === 'fulfilled' && queuePartitions.value.length > 0) {
    await deps.queues
      .send(queueProbes(ticks, queuePartitions.value, key))
      .then(count, (error: unknown) => result.errors.push({ step: 'probes', error }));
  }
  for (const outcome of await enqueued) {
    if (outcome.status === 'rejected') result.errors.push({ step: 'enqueue', error: outcome.reason });
  }

  const targets = shards.status === 'fulfilled' ? shards.value : [];
  if (!key || targets.length === 0) return result;
  for (const tick of ticks) {
    const wait = tick.at - deps.now();
    if (options.remainingMs && options.remainingMs() - Math.max(wait, 0) < TICK_MARGIN_MS) {
      result.ticksSkipped++;
      continue;
    }
    if (wait > 0) await deps.sleep(wait);
    // Stamped when put: the record's arrival in the shard is no earlier, so a credit never claims too much.
    await deps.streams
      .send(streamProbes(targets, deps.now(), key))
      .then(count, (error: unknown) => result.errors.push({ step: 'probes', error }));
  }
  return result;
}
