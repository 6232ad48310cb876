// What a finished ingest batch proves about its partitions, recorded before the batch is answered: the records it
// could not commit hold their SQS partition and come back soon (watermark.ts `Hold`), and the probes it got past
// raise their partitions' watermarks, releasing holds once a probe shows the held records were processed again.
// No AWS here.
import type { IngestRecord, IngestResult } from './ingest.js';
import { newestPerPartition, probeCredit, type WatermarkStore } from './watermark.js';

/** What the ingest sees of an SQS queue, in one GetQueueAttributes. */
export interface QueueState {
  /** ApproximateNumberOfMessages. */
  visible: number;
  visibilityTimeoutMs: number;
}

export interface ProgressDeps {
  watermarks: Pick<WatermarkStore, 'credit' | 'hold'>;
  queue: {
    /** The state of an SQS ingest queue by its ARN (the partition). */
    state(partition: string): Promise<QueueState>;
    /** Makes received records visible again after `delaySeconds` (ChangeMessageVisibility); returns the receipt
     * handles it could not change. */
    retryAfter(partition: string, receiptHandles: string[], delaySeconds: number): Promise<{ failed: string[] }>;
  };
  probeMaxBacklog: number;
  /** The longest an ingest batch can run (the ingest function's timeout). */
  batchTimeoutMs: number;
  now: () => number;
}

export interface Progress {
  credited: number;
  notCredited: number;
  /** Failed records held. */
  held: number;
  /** Holds or credits that could not be written (the next batch or probe tries again; holds are alarmed on). */
  errors: Array<{ step: 'hold' | 'credit'; error: unknown }>;
}

export async function recordProgress(
  records: readonly IngestRecord[],
  result: Pick<IngestResult, 'failedRecordIds' | 'probes' | 'stats'>,
  deps: ProgressDeps,
  options: { ordered: boolean },
): Promise<Progress> {
  const progress: Progress = {
    credited: 0,
    notCredited: result.stats.probes - result.probes.length,
    held: 0,
    errors: [],
  };
  // A Kinesis shard is retried from the first failed record and nothing after it is credited: no hold needed.
  if (!options.ordered) await holdFailed(records, result.failedRecordIds, deps, progress);

  const seen = result.probes.map(({ partition, probeAt }) => ({ partition, probeAt }));
  await Promise.all(
    newestPerPartition(seen).map(async (probe) => {
      try {
        const state = options.ordered ? undefined : await deps.queue.state(probe.partition).catch(() => undefined);
        const mark = probeCredit(
          probe.probeAt,
          deps.now(),
          options.ordered
            ? { ordered: true }
            : { ordered: false, visibleBacklog: state?.visible, maxBacklog: deps.probeMaxBacklog },
        );
        if (mark === undefined) {
          progress.notCredited += probe.count;
          return;
        }
        // Records visible again a batch before this probe entered were taken before it (the backlog was small when
        // it was processed), and their batches have finished: committed, or failed and held again.
        const release = options.ordered
          ? undefined
          : { returnedBefore: probe.probeAt - deps.batchTimeoutMs, until: deps.now() + deps.batchTimeoutMs };
        await deps.watermarks.credit(probe.partition, mark, release);
        progress.credited += probe.count;
      } catch (error) {
        progress.notCredited += probe.count;
        progress.errors.push({ step: 'credit', error });
      }
    }),
  );
  return progress;
}

/** SQS's longest visibility timeout: when neither the record's nor the queue's could be read, the hold assumes it. */
const MAX_VISIBILITY_MS = 12 * 3600_000;

/**
 * Holds each partition at the oldest entry time among its failed records, then makes them visible again soon: after
 * 5 s on the first failure, growing fourfold per receive up to the queue's own visibility timeout, so that a
 * sporadic failure holds its partition for seconds, while a record that keeps failing is still retried for minutes
 * before SQS moves it to the dead-letter queue (at maxReceiveCount). The hold comes first: until it is written the
 * record is in flight in a batch that has not answered. A record whose visibility could not be changed comes back
 * after the queue's visibility timeout, and is held that long.
 */
async function holdFailed(
  records: readonly IngestRecord[],
  failed: ReadonlySet<string>,
  deps: ProgressDeps,
  progress: Progress,
): Promise<void> {
  const byPartition = new Map<string, IngestRecord[]>();
  for (const record of records) {
    if (!failed.has(record.id)) continue;
    progress.held++;
    byPartition.set(record.partition, [...(byPartition.get(record.partition) ?? []), record]);
  }
  const now = deps.now();
  await Promise.all(
    [...byPartition].map(async ([partition, held]) => {
      const at = Math.min(...held.map((record) => record.enteredAt));
      const visibilityMs = await deps.queue.state(partition).then(
        (state) => state.visibilityTimeoutMs,
        () => MAX_VISIBILITY_MS,
      );
      const receives = Math.max(...held.map((record) => record.receiveCount ?? 1));
      const delaySeconds = Math.min(5 * 4 ** (receives - 1), Math.floor(visibilityMs / 1000));
      const hold = (returnsAt: number) =>
        deps.watermarks.hold(partition, at, returnsAt).then(
          () => true,
          (error: unknown) => {
            progress.errors.push({ step: 'hold', error });
            return false;
          },
        );
      // Not held, not hurried: it comes back after the visibility timeout, and the error is alarmed on.
      if (!(await hold(now + delaySeconds * 1000))) return;
      const handles = held.flatMap((record) => (record.receiptHandle ? [record.receiptHandle] : []));
      const changed = await deps.queue.retryAfter(partition, handles, delaySeconds).catch(() => ({ failed: handles }));
      if (changed.failed.length > 0 || handles.length < held.length) await hold(now + visibilityMs);
    }),
  );
}
