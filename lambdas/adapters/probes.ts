// Watermark probes into the ingest partitions: each SQS ingest queue (delayed to its tick) and each open shard of
// each ingest stream (hashed into the shard with an explicit hash key).
import { type KinesisClient, ListShardsCommand, PutRecordsCommand, type Shard } from '@aws-sdk/client-kinesis';
import { GetQueueAttributesCommand, SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import {
  type DispatchDeps,
  openShards,
  type ProbeOutcome,
  type QueueProbe,
  type ShardTarget,
  type StreamProbe,
} from '../core/dispatch.js';
import { chunks } from './chunks.js';

/** SQS ingest queues. Their watermark partition is the queue ARN, which is what Lambda names as `eventSourceARN`. */
export class QueueProbes implements Pick<DispatchDeps['queues'], 'partitions' | 'send'> {
  private urlByArn?: Promise<Map<string, string>>;

  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrls: readonly string[],
  ) {}

  /** The queues' ARNs, looked up once per container (they never change for a URL). */
  async partitions(): Promise<string[]> {
    return [...(await this.arns()).keys()];
  }

  async send(probes: QueueProbe[]): Promise<ProbeOutcome> {
    const urlByArn = await this.arns();
    const outcome = { sent: 0, failed: 0 };
    const byQueue = groupBy(probes, (probe) => probe.partition);
    await Promise.all(
      [...byQueue].flatMap(([partition, queueProbes]) =>
        chunks(queueProbes, 10).map(async (chunk) => {
          const url = urlByArn.get(partition);
          if (!url) {
            outcome.failed += chunk.length;
            return;
          }
          try {
            const out = await this.sqs.send(
              new SendMessageBatchCommand({
                QueueUrl: url,
                Entries: chunk.map((probe, i) => ({
                  Id: String(i),
                  MessageBody: probe.body,
                  DelaySeconds: probe.delaySeconds,
                })),
              }),
            );
            outcome.sent += out.Successful?.length ?? 0;
            outcome.failed += out.Failed?.length ?? 0;
          } catch {
            outcome.failed += chunk.length;
          }
        }),
      ),
    );
    return outcome;
  }

  private arns(): Promise<Map<string, string>> {
    this.urlByArn ??= Promise.all(
      this.queueUrls.map(async (url) => {
        const { Attributes } = await this.sqs.send(
          new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }),
        );
        const arn = Attributes?.QueueArn;
        if (!arn) throw new Error(`no QueueArn for ${url}`);
        return [arn, url] as const;
      }),
    ).then((pairs) => new Map(pairs));
    // A failed lookup is retried on the next call rather than remembered.
    this.urlByArn.catch(() => {
      this.urlByArn = undefined;
    });
    return this.urlByArn;
  }
}

/** Kinesis ingest streams, by ARN. A shard's watermark partition is `${streamArn}/${shardId}`. */
export class StreamProbes implements Pick<DispatchDeps['streams'], 'openShards' | 'send'> {
  constructor(
    private readonly kinesis: KinesisClient,
    private readonly streamArns: readonly string[],
    private readonly pageSize = 1000,
  ) {}

  /** Lists every shard (ListShards pages) and keeps the open ones, so resharding is followed every minute. */
  async openShards(): Promise<ShardTarget[]> {
    const perStream = await Promise.all(
      this.streamArns.map(async (streamArn) => {
        const shards: Shard[] = [];
        let nextToken: string | undefined;
        do {
          // A follow-up page names only its token: ListShards refuses the stream together with one.
          const out = await this.kinesis.send(
            new ListShardsCommand(
              nextToken
                ? { NextToken: nextToken, MaxResults: this.pageSize }
                : { StreamARN: streamArn, MaxResults: this.pageSize },
            ),
          );
          shards.push(...(out.Shards ?? []));
          nextToken = out.NextToken;
        } while (nextToken);
        return openShards(streamArn, shards);
      }),
    );
    return perStream.flat();
  }

  /** One record per shard, hashed to the shard's starting hash key so it lands in that shard (or, after a split
   * that raced us, in the child that took over that key). */
  async send(probes: StreamProbe[]): Promise<ProbeOutcome> {
    const outcome = { sent: 0, failed: 0 };
    const byStream = groupBy(probes, (probe) => probe.shard.streamArn);
    await Promise.all(
      [...byStream].flatMap(([streamArn, streamProbes]) =>
        chunks(streamProbes, 500).map(async (chunk) => {
          try {
            const out = await this.kinesis.send(
              new PutRecordsCommand({
                StreamARN: streamArn,
                Records: chunk.map(({ shard, body }) => ({
                  Data: Buffer.from(body),
                  PartitionKey: 'watermark-probe',
                  ExplicitHashKey: shard.hashKey,
                })),
              }),
            );
            const failed = out.FailedRecordCount ?? 0;
            outcome.failed += failed;
            outcome.sent += chunk.length - failed;
          } catch {
            outcome.failed += chunk.length;
          }
        }),
      ),
    );
    return outcome;
  }
}

/** `Map.groupBy`, which Node 20 lacks. */
function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}
