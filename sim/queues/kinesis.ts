// A Kinesis shard as Lambda's poller reads it, in virtual time, for the fault model (AWS documentation;
// ../shared/STACK.md): records in arrival order; batches from the checkpoint; with ReportBatchItemFailures the
// retry starts at the first failed record (everything before it is checkpointed); a batch that fails
// `maxRetries` times in a row at the same record is skipped, and the on-failure destination gets only its range.

export interface KinesisRecordModel {
  id: string;
  body: string;
  /** approximateArrivalTimestamp. */
  enteredAt: number;
}

export class KinesisShardModel {
  /** Records skipped after their retries ran out: dropped for good (the weaker guarantee). */
  readonly dropped: KinesisRecordModel[] = [];
  private readonly records: KinesisRecordModel[] = [];
  private checkpoint = 0;
  private failures = 0;

  constructor(readonly maxRetries: number) {}

  put(id: string, body: string, enteredAt: number): void {
    this.records.push({ id, body, enteredAt });
  }

  /** Records not yet checkpointed or skipped. */
  pending(): readonly KinesisRecordModel[] {
    return this.records.slice(this.checkpoint);
  }

  /** The next batch: up to `max` records from the checkpoint, in order. */
  read(max: number): KinesisRecordModel[] {
    return this.records.slice(this.checkpoint, this.checkpoint + max);
  }

  /** The batch's partial response: checkpoint up to the first failed record, and retry from there; after
   * `maxRetries` failures at the same record, skip the batch (Lambda's MaximumRetryAttempts). */
  settle(batch: readonly KinesisRecordModel[], failed: ReadonlySet<string>): void {
    const firstFailed = batch.findIndex((record) => failed.has(record.id));
    if (firstFailed === -1) {
      this.checkpoint += batch.length;
      this.failures = 0;
      return;
    }
    this.checkpoint += firstFailed;
    this.failures = firstFailed === 0 ? this.failures + 1 : 1;
    if (this.failures > this.maxRetries) {
      const skipped = batch.slice(firstFailed);
      this.dropped.push(...skipped);
      this.checkpoint += skipped.length;
      this.failures = 0;
    }
  }
}
