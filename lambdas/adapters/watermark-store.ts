// Watermarks in DynamoDB: one control item holding every partition's watermark and the list of live partitions.
// One item keeps `read()` to a single strongly consistent GetItem per sweep job; its write rate is a few probes per
// partition per minute, far below one item's limit.
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { KEY, WATERMARKS_KEY } from '../core/table-schema.js';
import type { WatermarkSnapshot, WatermarkStore } from '../core/watermark.js';

/** Control item attributes. */
const W = { marks: 'marks', live: 'live', liveAt: 'liveAt' } as const;

export class DynamoWatermarkStore implements WatermarkStore {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    private readonly tableName: string,
  ) {
    this.doc = DynamoDBDocumentClient.from(client);
  }

  async read(): Promise<WatermarkSnapshot> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { [KEY]: WATERMARKS_KEY }, ConsistentRead: true }),
    );
    const live = Item?.[W.live];
    const marks = Item?.[W.marks];
    const liveAt = Item?.[W.liveAt];
    return {
      live: Array.isArray(live) ? live.filter((p): p is string => typeof p === 'string') : [],
      marks: typeof marks === 'object' && marks !== null ? numbersOf(marks as Record<string, unknown>) : {},
      ...(typeof liveAt === 'number' ? { liveAt } : {}),
    };
  }

  async credit(partition: string, probeAt: number): Promise<void> {
    try {
      await this.raise(partition, probeAt);
    } catch (error) {
      // A failed condition means the watermark is already at or past `probeAt`: nothing to do.
      if (error instanceof ConditionalCheckFailedException) return;
      if (!isMissingMap(error)) throw error;
      // First credit ever (the dispatcher has not created the map yet): create it holding this partition.
      try {
        await this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { [KEY]: WATERMARKS_KEY },
            UpdateExpression: 'SET #m = :m',
            ConditionExpression: 'attribute_not_exists(#m)',
            ExpressionAttributeNames: { '#m': W.marks },
            ExpressionAttributeValues: { ':m': { [partition]: probeAt } },
          }),
        );
      } catch (raced) {
        if (!(raced instanceof ConditionalCheckFailedException)) throw raced;
        // Someone created the map meanwhile: the monotonic update now applies (or is not needed).
        await this.raise(partition, probeAt).catch((again) => {
          if (!(again instanceof ConditionalCheckFailedException)) throw again;
        });
      }
    }
  }

  /** Replaces the live list, and forgets the watermarks of partitions no longer live (closed shards, removed
   * queues) so the item does not grow with every reshard. A partition that comes back starts without a watermark,
   * which holds the sweep until its first probe is credited: the safe direction. */
  async setLive(partitions: string[], at: number = Date.now()): Promise<void> {
    const { Attributes } = await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { [KEY]: WATERMARKS_KEY },
        UpdateExpression: 'SET #l = :l, #at = :at, #m = if_not_exists(#m, :empty)',
        ExpressionAttributeNames: { '#l': W.live, '#at': W.liveAt, '#m': W.marks },
        ExpressionAttributeValues: { ':l': partitions, ':at': at, ':empty': {} },
        ReturnValues: 'ALL_NEW',
      }),
    );
    const live = new Set(partitions);
    const gone = Object.keys((Attributes?.[W.marks] as Record<string, unknown> | undefined) ?? {}).filter(
      (p) => !live.has(p),
    );
    if (gone.length === 0) return;
    const names: Record<string, string> = { '#m': W.marks };
    gone.forEach((p, i) => {
      names[`#g${i}`] = p;
    });
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { [KEY]: WATERMARKS_KEY },
        UpdateExpression: `REMOVE ${gone.map((_, i) => `#m.#g${i}`).join(', ')}`,
        ExpressionAttributeNames: names,
      }),
    );
  }

  private async raise(partition: string, probeAt: number): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { [KEY]: WATERMARKS_KEY },
        UpdateExpression: 'SET #m.#p = :t',
        ConditionExpression: 'attribute_not_exists(#m.#p) OR #m.#p < :t',
        ExpressionAttributeNames: { '#m': W.marks, '#p': partition },
        ExpressionAttributeValues: { ':t': probeAt },
      }),
    );
  }
}

/** DynamoDB refuses `SET marks.p` while `marks` itself does not exist (or the item does not). */
function isMissingMap(error: unknown): boolean {
  return (
    error instanceof Error &&
    error.name === 'ValidationException' &&
    /document path provided in the update expression is invalid/i.test(error.message)
  );
}

function numbersOf(map: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [partition, mark] of Object.entries(map)) if (typeof mark === 'number') out[partition] = mark;
  return out;
}
