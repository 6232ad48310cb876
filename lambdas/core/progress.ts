// What a finished ingest batch proves about its partitions, recorded before the batch is answered: the records it
// could not commit hold their SQS partition (watermark.ts `Hold`), and the probes it got past raise their
// partitions' watermarks, releasing a hold once a probe shows every held record was processed again. No AWS here.
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
  /** The state of an SQS ingest queue by its ARN (the partition). */
  queue: { state(partition: string): Promise<QueueState> };
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
        // Every record that failed a visibility timeout and a batch before this probe entered was visible again when
        // it entered, and was taken and processed before it (the backlog was small when it was processed).
        const release = state && {
          failedBefore: probe.probeAt - state.visibilityTimeoutMs - deps.batchTimeoutMs,
          until: deps.now() + deps.batchTimeoutMs,
        };
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

/** Holds each partition at the oldest entry time among its failed records. */
async function holdFailed(
  records: readonly IngestRecord[],
  failed: ReadonlySet<string>,
  deps: ProgressDeps,
  progress: Progress,
): Promise<void> {
  const oldest = new Map<string, number>();
  for (const record of records) {
    if (!failed.has(record.id)) continue;
    progress.held++;
    oldest.set(record.partition, Math.min(oldest.get(record.partition) ?? record.enteredAt, record.enteredAt));
  }
  const failedAt = deps.now();
  await Promise.all(
    [...oldest].map(([partition, at]) =>
      deps.watermarks.hold(partition, at, failedAt).catch((error: unknown) => {
        progress.errors.push({ step: 'hold', error });
      }),
    ),
  );
}
