// The dispatcher's plan, its use of the ports over a simulated minute, and the open-shard rule. (Its check of the
// watermark tolerance, shared with the construct, is config.ts `toleranceWarnings`: test/unit/config.test.ts.)
import { describe, expect, it } from 'vitest';
import {
  type DispatchDeps,
  dispatch,
  openShards,
  planDispatch,
  type QueueProbe,
  queueProbes,
  type ShardTarget,
} from '../../lambdas/core/dispatch.js';
import type { SweepJob } from '../../lambdas/core/sweep.js';

const T0 = 1_800_000_000_000;
const KEY = new Uint8Array(32).fill(7);

describe('planDispatch', () => {
  it('has one sweep job per shard at DelaySeconds 0, T, 2T … below 60', () => {
    const ticks = planDispatch(T0, 3, 10);
    expect(ticks.map((t) => t.delaySeconds)).toEqual([0, 10, 20, 30, 40, 50]);
    expect(ticks.map((t) => t.at - T0)).toEqual([0, 10_000, 20_000, 30_000, 40_000, 50_000]);
    for (const tick of ticks) expect(tick.jobs).toEqual([{ shard: '0' }, { shard: '1' }, { shard: '2' }]);
  });

  it('copes with ticks that do not divide the minute, and with a one-minute tick', () => {
    expect(planDispatch(T0, 1, 7).map((t) => t.delaySeconds)).toEqual([0, 7, 14, 21, 28, 35, 42, 49, 56]);
    expect(planDispatch(T0, 1, 60).map((t) => t.delaySeconds)).toEqual([0]);
  });

  it('stamps each SQS probe with the time it becomes visible', () => {
    const probes = queueProbes(planDispatch(T0, 1, 20), ['q1', 'q2'], KEY).map(({ body: _body, ...probe }) => probe);
    expect(probes).toEqual([
      { partition: 'q1', probeAt: T0, delaySeconds: 0 },
      { partition: 'q2', probeAt: T0, delaySeconds: 0 },
      { partition: 'q1', probeAt: T0 + 20_000, delaySeconds: 20 },
      { partition: 'q2', probeAt: T0 + 20_000, delaySeconds: 20 },
      { partition: 'q1', probeAt: T0 + 40_000, delaySeconds: 40 },
      { partition: 'q2', probeAt: T0 + 40_000, delaySeconds: 40 },
    ]);
  });
});

describe('openShards', () => {
  const stream = 'arn:aws:kinesis:us-east-1:000000000000:stream/devices';
  // ListShards after shard 0 was split into 2 and 3, and 1 and 3 were merged into 4.
  const listed = [
    {
      ShardId: 'shardId-0',
      HashKeyRange: { StartingHashKey: '0' },
      SequenceNumberRange: { EndingSequenceNumber: '9' },
    },
    {
      ShardId: 'shardId-1',
      HashKeyRange: { StartingHashKey: '50' },
      SequenceNumberRange: { EndingSequenceNumber: '8' },
    },
    { ShardId: 'shardId-2', HashKeyRange: { StartingHashKey: '0' }, SequenceNumberRange: {} },
    {
      ShardId: 'shardId-3',
      HashKeyRange: { StartingHashKey: '25' },
      SequenceNumberRange: { EndingSequenceNumber: '7' },
    },
    { ShardId: 'shardId-4', HashKeyRange: { StartingHashKey: '25' }, SequenceNumberRange: {} },
  ];

  it('keeps only open shards, each with its partition id and a hash key inside it', () => {
    expect(openShards(stream, listed)).toEqual([
      { partition: `${stream}/shardId-2`, streamArn: stream, shardId: 'shardId-2', hashKey: '0' },
      { partition: `${stream}/shardId-4`, streamArn: stream, shardId: 'shardId-4', hashKey: '25' },
    ]);
  });

  it('ignores shards it cannot address', () => {
    expect(openShards(stream, [{ ShardId: 'x' }, { HashKeyRange: { StartingHashKey: '1' } }])).toEqual([]);
  });
});

/** Ports that record what the dispatcher did, on a clock that `sleep` advances. */
function fakes(options: { queues?: string[]; shards?: ShardTarget[]; failEnqueueAt?: number; failShards?: boolean }) {
  let clock = T0 + 250;
  const enqueued: Array<{ delaySeconds: number; jobs: SweepJob[] }> = [];
  const queueSent: QueueProbe[] = [];
  const streamSent: Array<{ at: number; probeAt: number; partitions: string[] }> = [];
  const live: Array<{ partitions: string[]; at?: number }> = [];
  const deps: DispatchDeps = {
    shardCount: 2,
    tickSeconds: 20,
    sweepQueue: {
      enqueue: async (jobs, delaySeconds = 0) => {
        if (delaySeconds === options.failEnqueueAt) throw new Error('queue down');
        enqueued.push({ delaySeconds, jobs });
      },
    },
    probeKey: { getOrCreate: async () => KEY },
    watermarks: {
      setLive: async (partitions, at) => {
        live.push({ partitions, at });
      },
    },
    queues: {
      partitions: async () => options.queues ?? [],
      send: async (probes) => {
        queueSent.push(...probes);
        return { sent: probes.length, failed: 0 };
      },
    },
    streams: {
      openShards: async () => {
        if (options.failShards) throw new Error('ListShards throttled');
        return options.shards ?? [];
      },
      send: async (probes) => {
        const stamps = probes.map((p) => (JSON.parse(p.body) as { probe: number }).probe);
        streamSent.push({ at: clock, probeAt: stamps[0]!, partitions: probes.map((p) => p.shard.partition) });
        return { sent: probes.length, failed: 0 };
      },
    },
    now: () => clock,
    sleep: async (ms) => {
      clock += ms;
    },
  };
  return { deps, enqueued, queueSent, streamSent, live, elapsed: () => clock - T0 };
}

const shard = (id: string): ShardTarget => ({ partition: `s/${id}`, streamArn: 's', shardId: id, hashKey: '0' });

describe('dispatch', () => {
  it('with SQS only: enqueues every tick, records the live queues and sends delayed probes, without waiting', async () => {
    const f = fakes({ queues: ['q'] });
    const result = await dispatch(f.deps);
    expect(f.enqueued.map((e) => e.delaySeconds).sort((a, b) => a - b)).toEqual([0, 20, 40]);
    expect(f.enqueued.flatMap((e) => e.jobs)).toHaveLength(6);
    expect(f.live).toEqual([{ partitions: ['q'], at: T0 + 250 }]);
    expect(f.queueSent.map((p) => [p.delaySeconds, p.probeAt - T0])).toEqual([
      [0, 250],
      [20, 20_250],
      [40, 40_250],
    ]);
    expect(f.elapsed()).toBe(250);
    expect(result).toMatchObject({ ticks: 3, jobsEnqueued: 6, probesSent: 3, probeFailures: 0, errors: [] });
  });

  it('with Kinesis: puts a probe into every open shard at every tick, stamped when put', async () => {
    const f = fakes({ queues: ['q'], shards: [shard('a'), shard('b')] });
    const result = await dispatch(f.deps);
    expect(f.live).toEqual([{ partitions: ['q', 's/a', 's/b'], at: T0 + 250 }]);
    expect(f.streamSent).toEqual(
      [0, 20_000, 40_000].map((d) => ({
        at: T0 + 250 + d,
        probeAt: T0 + 250 + d,
        partitions: ['s/a', 's/b'],
      })),
    );
    expect(result.probesSent).toBe(3 + 6);
  });

  it('skips the Kinesis ticks the runtime has no time left for', async () => {
    const f = fakes({ shards: [shard('a')] });
    const deadline = T0 + 30_000;
    const result = await dispatch(f.deps, { remainingMs: () => deadline - f.deps.now() });
    expect(f.streamSent.map((s) => s.at - T0)).toEqual([250, 20_250]);
    expect(result.ticksSkipped).toBe(1);
  });

  it('keeps the previous live list when a stream cannot be listed, and still sweeps and probes the queues', async () => {
    const f = fakes({ queues: ['q'], failShards: true });
    const result = await dispatch(f.deps);
    expect(f.live).toEqual([]);
    expect(result.jobsEnqueued).toBe(6);
    expect(f.queueSent).toHaveLength(3);
    expect(result.errors.map((e) => e.step)).toEqual(['live']);
  });

  it('reports a tick whose jobs could not be enqueued, after doing everything else', async () => {
    const f = fakes({ queues: ['q'], failEnqueueAt: 20 });
    const result = await dispatch(f.deps);
    expect(result.jobsEnqueued).toBe(4);
    expect(f.queueSent).toHaveLength(3);
    expect(result.errors.map((e) => e.step)).toEqual(['enqueue']);
  });

  it('with no partitions configured records an empty live list (the sweep then judges by the clock)', async () => {
    const f = fakes({});
    await dispatch(f.deps);
    expect(f.live).toEqual([{ partitions: [], at: T0 + 250 }]);
    expect(f.queueSent).toEqual([]);
    expect(f.streamSent).toEqual([]);
  });
});
