// The sweep queue: sweep jobs as JSON messages. The dispatcher enqueues tick jobs here (delayed to spread them over
// the minute) and a sweep job that runs out of budget enqueues its continuation.
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SweepJob, SweepJobQueue } from '../core/sweep.js';
import { chunks } from './chunks.js';

/** SQS refuses a larger DelaySeconds. */
export const MAX_DELAY_SECONDS = 900;

export class SweepEnqueueFailed extends Error {
  constructor(
    readonly failed: SweepJob[],
    readonly reasons: string[],
  ) {
    super(`${failed.length} sweep job(s) not enqueued: ${reasons.slice(0, 3).join('; ')}`);
    this.name = 'SweepEnqueueFailed';
  }
}

export class SweepQueue implements SweepJobQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
  ) {}

  /** Resolves once every job is on the queue; otherwise throws with the ones that are not. Callers retry the whole
   * call: a job enqueued twice is harmless (every sweep write is conditional). */
  async enqueue(jobs: SweepJob[], delaySeconds = 0): Promise<void> {
    if (!Number.isInteger(delaySeconds) || delaySeconds < 0 || delaySeconds > MAX_DELAY_SECONDS) {
      throw new RangeError(`delaySeconds must be a whole number in 0..${MAX_DELAY_SECONDS}, got ${delaySeconds}`);
    }
    const failed: SweepJob[] = [];
    const reasons: string[] = [];
    await Promise.all(
      chunks(jobs, 10).map(async (chunk) => {
        try {
          const out = await this.sqs.send(
            new SendMessageBatchCommand({
              QueueUrl: this.queueUrl,
              Entries: chunk.map((job, i) => ({
                Id: String(i),
                MessageBody: JSON.stringify(job),
                DelaySeconds: delaySeconds,
              })),
            }),
          );
          for (const entry of out.Failed ?? []) {
            failed.push(chunk[Number(entry.Id)]!);
            reasons.push(`${entry.Code}: ${entry.Message ?? ''}`);
          }
        } catch (error) {
          failed.push(...chunk);
          reasons.push(String(error));
        }
      }),
    );
    if (failed.length > 0) throw new SweepEnqueueFailed(failed, reasons);
  }
}
