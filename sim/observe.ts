// What the local runs watch of the real handlers, through their ports only (the handlers run unchanged):
// - which sweeps completed and by which cutoff, so that the judge counts a detection as missed only against what
//   the detector could have known (truth.ts);
// - who published each event and when, so that a duplicate the consumer receives names the publishes that made it
//   (the ingest, the sweep after its commit, the sweep's re-publish of older outboxes). Delivery is at least once,
//   but in a run without faults every event should be published once.
import { AsyncLocalStorage } from 'node:async_hooks';
import type { DeviceEvent } from '../lambdas/core/device.js';
import type { DeviceStore, EventPublisher } from '../lambdas/core/ports.js';
import type { SweepDeps, SweepJob } from '../lambdas/core/sweep.js';
import type { AnySweepDeps } from '../lambdas/sweep.js';

export type PublishSource = 'ingest' | 'sweep' | 'sweep re-publish';

export interface Publish {
  source: PublishSource;
  /** When the publish call returned (the clock of the run). */
  at: number;
  /** A sweep's publish: when its job started (what the job read of other items, it read after that). */
  jobStartedAt?: number;
}

/** A sweep job that judged the rest of its shard by `cutoff` and completed: every device of the shard whose
 * deadline in the index was at or before the cutoff has been settled, its events published. */
export interface CompletedSweep {
  shard: string;
  cutoff: number;
  completedAt: number;
}

/** What one sweep invocation did, gathered from its calls on the ports. */
interface SweepInvocation {
  startedAt: number;
  shard?: string;
  cutoff?: number;
  continued: boolean;
  republish: boolean;
}

export class RuntimeObserver {
  private readonly publishes = new Map<string, Publish[]>();
  private readonly invocation = new AsyncLocalStorage<SweepInvocation>();
  private readonly completions: Array<CompletedSweep & { chain: string }> = [];
  /** Chains of continuations (shard and cutoff) with a job that failed: their completion does not count (a failed
   * job enqueued its continuation before it failed, so the continuation may complete first). */
  private readonly failedChains = new Set<string>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Wraps the ingest's publisher. */
  ingestPublisher(inner: EventPublisher): EventPublisher {
    return this.logged(inner, () => 'ingest');
  }

  /** Wraps the sweep's dependencies: its expiry queries carry the cutoff, an enqueue is a continuation, an outbox
   * query starts the re-publish. */
  sweepDeps<D extends AnySweepDeps>(deps: D): D {
    // The batched engine sweeps its shard's state: the store it hands the sweep is the one watched.
    if ('log' in deps)
      return { ...deps, ...this.sweepDepsOf(deps), observe: (store: DeviceStore) => this.observed(store) };
    return { ...deps, ...this.sweepDepsOf(deps), store: this.observed(deps.store) };
  }

  private observed(store: DeviceStore): DeviceStore {
    const track = (update: (call: SweepInvocation) => void) => {
      const call = this.invocation.getStore();
      if (call) update(call);
    };
    return new Proxy(store, {
      get: (target, key) => {
        if (key === 'queryExpired') {
          return (...args: Parameters<DeviceStore['queryExpired']>) => {
            track((call) => {
              call.shard = args[0];
              call.cutoff = args[1];
            });
            return target.queryExpired(...args);
          };
        }
        if (key === 'queryOutbox') {
          return (...args: Parameters<DeviceStore['queryOutbox']>) => {
            track((call) => {
              call.republish = true;
            });
            return target.queryOutbox(...args);
          };
        }
        const value = Reflect.get(target, key, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }

  private sweepDepsOf(deps: Pick<SweepDeps, 'publisher' | 'queue'>): Pick<SweepDeps, 'publisher' | 'queue'> {
    const track = (update: (call: SweepInvocation) => void) => {
      const call = this.invocation.getStore();
      if (call) update(call);
    };
    return {
      publisher: this.logged(deps.publisher, () =>
        this.invocation.getStore()?.republish ? 'sweep re-publish' : 'sweep',
      ),
      queue: {
        enqueue: (jobs: SweepJob[], delaySeconds?: number) => {
          track((call) => {
            call.continued = true;
          });
          return deps.queue.enqueue(jobs, delaySeconds);
        },
      },
    };
  }

  /** Wraps the sweep Lambda (one job per invocation, as its event source mapping is configured): a job that judged
   * by a cutoff, enqueued no continuation and did not fail completed its chain. */
  sweepHandler<E extends { Records: Array<{ body: string }> }, C, R>(
    handler: (event: E, context: C) => Promise<R>,
  ): (event: E, context: C) => Promise<R> {
    return (event, context) => {
      const call: SweepInvocation = { startedAt: this.now(), continued: false, republish: false };
      return this.invocation.run(call, async () => {
        const response = await handler(event, context);
        const failures = (response as { batchItemFailures?: unknown[] } | undefined)?.batchItemFailures ?? [];
        const { shard, cutoff } = call;
        // Without a cutoff (no watermark yet) nothing was judged.
        if (shard === undefined || cutoff === undefined) return response;
        const chain = `${shard}@${cutoff}`;
        if (failures.length > 0 || event.Records.length !== 1) this.failedChains.add(chain);
        else if (!call.continued) this.completions.push({ shard, cutoff, completedAt: this.now(), chain });
        return response;
      });
    };
  }

  /** The sweeps that completed so far, in completion order. */
  completedSweeps(): CompletedSweep[] {
    return this.completions.filter((c) => !this.failedChains.has(c.chain)).map(({ chain: _chain, ...sweep }) => sweep);
  }

  private logged(inner: EventPublisher, source: () => PublishSource): EventPublisher {
    return {
      publish: async (events) => {
        const from = source();
        const jobStartedAt = this.invocation.getStore()?.startedAt;
        const result = await inner.publish(events);
        // Held events (outage detection's hold) stay in their outbox: not published yet.
        const failed = new Set([...result.failed, ...(result.held ?? [])].map((e) => e.eventId));
        const at = this.now();
        for (const event of events) {
          if (failed.has(event.eventId)) continue;
          const publish = { source: from, at, ...(jobStartedAt === undefined ? {} : { jobStartedAt }) };
          const list = this.publishes.get(event.eventId);
          if (list) list.push(publish);
          else this.publishes.set(event.eventId, [publish]);
        }
        return result;
      },
    };
  }

  /** When the sweep job that first published an event started, if a sweep did. */
  jobStartedAt(eventId: string): number | undefined {
    return this.publishes.get(eventId)?.[0]?.jobStartedAt;
  }

  /** Events published more than once, by the publishers that did (e.g. `{"sweep+ingest": 2}`). */
  republishedBy(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const list of this.publishes.values()) {
      if (list.length < 2) continue;
      const key = list.map((p) => p.source).join('+');
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return counts;
  }

  /** How an event came to be published, relative to `startedAt`: "sweep 12.04 s, ingest 12.07 s". */
  describe(event: Pick<DeviceEvent, 'eventId'>, startedAt: number): string {
    const list = this.publishes.get(event.eventId) ?? [];
    if (list.length === 0) return 'no publish seen';
    return list.map((p) => `${p.source} ${((p.at - startedAt) / 1000).toFixed(2)} s`).join(', ');
  }
}
