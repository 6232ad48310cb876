// Local event-source mappings that behave like Lambda's, so the real handlers run in-process as they do in AWS.
//
// SQS (Lambda's SQS poller): up to `concurrency` invocations at once; each gathers up to `batchSize` messages
// within `batchingWindowMs`, invokes the handler, deletes what succeeded and leaves the partial batch response's
// failures (or the whole batch, when the handler throws) to become visible again after the queue's visibility
// timeout. The queue's RedrivePolicy moves a message to its DLQ after maxReceiveCount receives, as in AWS.
// Why not sqs-consumer: 15.x needs Node 22, and 14.x hands the handler one ReceiveMessage (at most 10 messages)
// with no batching window, so it cannot build Lambda's batches of 100 gathered over a window, which the ingest's
// coalescing and probe crediting are designed around.
//
// Kinesis (Lambda's Kinesis poller, ParallelizationFactor 1): one reader per shard, batches in shard order;
// checkpoint after a successful batch; on a reported failure, retry from the first failed sequence number
// (everything before it is checkpointed), up to `retryAttempts`, then the batch goes to the on-failure queue and
// the reader moves past it.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type _Record,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  ListShardsCommand,
} from '@aws-sdk/client-kinesis';
import {
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, KinesisStreamBatchResponse, KinesisStreamEvent, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { kinesisRecord, lambdaContext, sqsRecord } from '../sim/lambda-events.js';

export interface PollerStats {
  invocations: number;
  records: number;
  failedRecords: number;
  failedInvocations: number;
  inFlight: number;
}

type Handler<E, R> = (event: E, context: Context) => Promise<R>;

abstract class Poller {
  readonly stats: PollerStats = { invocations: 0, records: 0, failedRecords: 0, failedInvocations: 0, inFlight: 0 };
  protected readonly abort = new AbortController();
  protected paused = false;
  private loops: Promise<void>[] = [];
  lastError?: unknown;

  /** Our own outage: no new batches are taken (running invocations finish), as when a mapping is disabled. */
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  get isPaused(): boolean {
    return this.paused;
  }

  protected run(loops: Array<() => Promise<void>>): void {
    this.loops = loops.map(async (loop) => {
      while (!this.abort.signal.aborted) {
        if (this.paused) {
          await this.idle(100);
          continue;
        }
        try {
          await loop();
        } catch (error) {
          if (this.abort.signal.aborted) return;
          this.lastError = error;
          await this.idle(500);
        }
      }
    });
  }

  protected idle(ms: number): Promise<void> {
    return sleep(ms, undefined, { signal: this.abort.signal }).catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled(this.loops);
  }
}

export interface SqsPollerOptions {
  name: string;
  sqs: SQSClient;
  queueUrl: string;
  queueArn: string;
  batchSize: number;
  batchingWindowMs: number;
  concurrency: number;
  functionTimeoutMs: number;
  handler: Handler<SQSEvent, SQSBatchResponse | undefined | unknown>;
}

export class SqsPoller extends Poller {
  constructor(private readonly options: SqsPollerOptions) {
    super();
  }

  start(): this {
    this.run(Array.from({ length: this.options.concurrency }, () => () => this.once()));
    return this;
  }

  private async receive(max: number, waitSeconds: number): Promise<Message[]> {
    const { sqs, queueUrl } = this.options;
    const out = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: Math.min(10, max),
        WaitTimeSeconds: waitSeconds,
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
      { abortSignal: this.abort.signal },
    );
    return out.Messages ?? [];
  }

  private async once(): Promise<void> {
    const { batchSize, batchingWindowMs, queueArn } = this.options;
    const messages = await this.receive(batchSize, 1);
    if (messages.length === 0) return;
    // The batching window starts with the first message and closes when the batch is full.
    const closes = Date.now() + batchingWindowMs;
    while (messages.length < batchSize && Date.now() < closes && !this.abort.signal.aborted) {
      const more = await this.receive(batchSize - messages.length, 0);
      if (more.length === 0) await this.idle(Math.min(50, closes - Date.now()));
      messages.push(...more);
    }
    const event: SQSEvent = { Records: messages.map((m) => sqsRecord(m, queueArn)) };
    this.stats.inFlight++;
    this.stats.invocations++;
    this.stats.records += messages.length;
    let failed: Set<string>;
    try {
      const response = (await this.options.handler(
        event,
        lambdaContext(this.options.name, this.options.functionTimeoutMs),
      )) as SQSBatchResponse | undefined;
      failed = new Set((response?.batchItemFailures ?? []).map((f) => f.itemIdentifier));
    } catch (error) {
      // A failed invocation leaves the whole batch to the visibility timeout.
      this.lastError = error;
      this.stats.failedInvocations++;
      failed = new Set(messages.map((m) => m.MessageId!));
    } finally {
      this.stats.inFlight--;
    }
    this.stats.failedRecords += failed.size;
    const done = messages.filter((m) => !failed.has(m.MessageId!));
    for (let i = 0; i < done.length; i += 10) {
      await this.options.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.options.queueUrl,
          Entries: done.slice(i, i + 10).map((m, j) => ({ Id: String(j), ReceiptHandle: m.ReceiptHandle! })),
        }),
      );
    }
  }
}

export interface KinesisPollerOptions {
  name: string;
  kinesis: KinesisClient;
  sqs: SQSClient;
  streamName: string;
  streamArn: string;
  batchSize: number;
  batchingWindowMs: number;
  retryAttempts: number;
  /** On-failure destination: a record of each batch given up on, as Lambda sends. */
  failureQueueUrl?: string;
  functionTimeoutMs: number;
  handler: Handler<KinesisStreamEvent, KinesisStreamBatchResponse | undefined | unknown>;
}

export class KinesisPoller extends Poller {
  constructor(private readonly options: KinesisPollerOptions) {
    super();
  }

  async start(): Promise<this> {
    const { kinesis, streamName } = this.options;
    const { Shards } = await kinesis.send(new ListShardsCommand({ StreamName: streamName }));
    this.run((Shards ?? []).map((shard) => this.reader(shard.ShardId!)));
    return this;
  }

  private reader(shardId: string): () => Promise<void> {
    const { kinesis, streamName, streamArn, batchSize } = this.options;
    let iterator: string | undefined;
    /** Sequence number of the last record handled (checkpoint). */
    let checkpoint: string | undefined;
    let pending: _Record[] = [];
    let attempts = 0;
    const iteratorFrom = async () => {
      const out = await kinesis.send(
        new GetShardIteratorCommand({
          StreamName: streamName,
          ShardId: shardId,
          ...(checkpoint
            ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: checkpoint }
            : { ShardIteratorType: 'TRIM_HORIZON' }),
        }),
      );
      return out.ShardIterator;
    };
    return async () => {
      if (pending.length === 0) {
        iterator ??= await iteratorFrom();
        const closes = Date.now() + this.options.batchingWindowMs;
        while (pending.length < batchSize && Date.now() < closes && iterator) {
          const out = await kinesis.send(
            new GetRecordsCommand({ ShardIterator: iterator, Limit: batchSize - pending.length }),
            { abortSignal: this.abort.signal },
          );
          iterator = out.NextShardIterator;
          pending.push(...(out.Records ?? []));
          if (!out.Records?.length) await this.idle(pending.length > 0 ? 50 : 200);
          if (pending.length === 0) return;
        }
        if (pending.length === 0) return;
        attempts = 0;
      }
      const event: KinesisStreamEvent = { Records: pending.map((r) => kinesisRecord(r, streamArn, shardId)) };
      this.stats.inFlight++;
      this.stats.invocations++;
      this.stats.records += pending.length;
      let firstFailed: string | undefined;
      try {
        const response = (await this.options.handler(
          event,
          lambdaContext(this.options.name, this.options.functionTimeoutMs),
        )) as KinesisStreamBatchResponse | undefined;
        firstFailed = response?.batchItemFailures?.[0]?.itemIdentifier;
      } catch (error) {
        this.lastError = error;
        this.stats.failedInvocations++;
        firstFailed = pending[0]?.SequenceNumber;
      } finally {
        this.stats.inFlight--;
      }
      if (firstFailed === undefined) {
        checkpoint = pending.at(-1)?.SequenceNumber;
        pending = [];
        return;
      }
      // Checkpoint what came before the first failure and retry from it, in order.
      const at = pending.findIndex((r) => r.SequenceNumber === firstFailed);
      if (at > 0) checkpoint = pending[at - 1]!.SequenceNumber;
      pending = pending.slice(Math.max(0, at));
      this.stats.failedRecords += pending.length;
      if (++attempts > this.options.retryAttempts) {
        if (this.options.failureQueueUrl) {
          await this.options.sqs.send(
            new SendMessageCommand({
              QueueUrl: this.options.failureQueueUrl,
              MessageBody: JSON.stringify({
                streamArn,
                shardId,
                startSequenceNumber: pending[0]?.SequenceNumber,
                endSequenceNumber: pending.at(-1)?.SequenceNumber,
                batchSize: pending.length,
              }),
            }),
          );
        }
        checkpoint = pending.at(-1)?.SequenceNumber;
        pending = [];
        iterator = undefined;
        return;
      }
      await this.idle(Math.min(5_000, 200 * 2 ** attempts));
    };
  }
}
