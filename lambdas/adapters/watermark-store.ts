// Watermarks in DynamoDB: one control item holding every partition's watermark, its hold (failed records pending),
// and the list of live partitions. One item keeps `read()` to a single strongly consistent GetItem per sweep job; its
// write rate is a few probes per partition per minute plus one write per ingest batch with failures, far below one
// item's limit, and its size grows with the partitions only.
import { type AttributeValue, ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { KEY, WATERMARKS_KEY } from '../core/table-schema.js';
import {
  type Hold,
  type HoldRelease,
  holdBucket,
  type WatermarkSnapshot,
  type WatermarkStore,
} from '../core/watermark.js';

type Item = Record<string, unknown>;

/** Control item attributes. */
const W = { marks: 'marks', holds: 'holds', live: 'live' } as const;

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
    const holds = Item?.[W.holds];
    return {
      live: Array.isArray(live) ? live.filter((p): p is string => typeof p === 'string') : [],
      marks: typeof marks === 'object' && marks !== null ? numbersOf(marks as Record<string, unknown>) : {},
      ...(typeof holds === 'object' && holds !== null ? { holds: byPartition(holdsOf(holds as Item)) } : {}),
    };
  }

  async credit(partition: string, probeAt: number, release?: HoldRelease): Promise<void> {
    // The raise returns the item either way (applied or not), so the holds to release cost no extra read.
    const item = await this.inMap(W.marks, partition, probeAt, () => this.raise(partition, probeAt));
    if (!release) return;
    const due = Object.entries(holdsOf((item?.[W.holds] as Item | undefined) ?? {})).filter(
      ([key, hold]) =>
        partitionOf(key) === partition && hold.until === undefined && hold.returnsAt <= release.returnedBefore,
    );
    await Promise.all(
      due.map(([key, hold]) =>
        // Only the hold seen: a failure recorded meanwhile moved its `returnsAt` and keeps it.
        this.doc
          .send(
            new UpdateCommand({
              TableName: this.tableName,
              Key: { [KEY]: WATERMARKS_KEY },
              UpdateExpression: 'SET #h.#k.#u = :u',
              ConditionExpression: '#h.#k.#r = :r AND attribute_not_exists(#h.#k.#u)',
              ExpressionAttributeNames: { '#h': W.holds, '#k': key, '#u': 'until', '#r': 'returnsAt' },
              ExpressionAttributeValues: { ':u': release.until, ':r': hold.returnsAt },
            }),
          )
          .catch(ignoreFailedCondition),
      ),
    );
  }

  async hold(partition: string, at: number, returnsAt: number): Promise<void> {
    const key = holdKey(partition, holdBucket(returnsAt));
    const names = { '#h': W.holds, '#k': key, '#a': 'at', '#r': 'returnsAt', '#u': 'until' };
    let seen: Hold | undefined;
    for (let attempt = 0; attempt < 10; attempt++) {
      // No hold of this bucket in force (none, or a released one): this one replaces it. Else merge into the one
      // seen, if it is still as seen (compare-and-set): `at` only goes down and `returnsAt` only up.
      const entry = seen
        ? { at: Math.min(seen.at, at), returnsAt: Math.max(seen.returnsAt, returnsAt) }
        : { at, returnsAt };
      if (seen && entry.at === seen.at && entry.returnsAt === seen.returnsAt) return;
      try {
        await this.inMap(W.holds, key, entry, () =>
          this.doc.send(
            new UpdateCommand({
              TableName: this.tableName,
              Key: { [KEY]: WATERMARKS_KEY },
              UpdateExpression: 'SET #h.#k = :e',
              ConditionExpression: seen
                ? '#h.#k.#a = :seenAt AND #h.#k.#r = :seenReturnsAt AND attribute_not_exists(#h.#k.#u)'
                : 'attribute_not_exists(#h.#k) OR attribute_exists(#h.#k.#u)',
              ExpressionAttributeNames: seen ? names : { '#h': W.holds, '#k': key, '#u': 'until' },
              ExpressionAttributeValues: seen
                ? { ':e': entry, ':seenAt': seen.at, ':seenReturnsAt': seen.returnsAt }
                : { ':e': entry },
              ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            }),
          ),
        );
        return;
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
        const item = error.Item ? unmarshall(error.Item as Record<string, AttributeValue>) : {};
        const current = holdsOf((item[W.holds] as Item | undefined) ?? {})[key];
        seen = current && current.until === undefined ? current : undefined;
      }
    }
    throw new Error(`hold on ${partition} kept changing`);
  }

  /** Runs an update of one partition's entry in a map attribute; creates the map first when the item or the map
   * does not exist yet (DynamoDB refuses `SET map.key` then). A failed condition is the caller's to judge, except on
   * the watermark raise, where it only means the watermark is already at or past the probe. */
  private async inMap(
    map: string,
    partition: string,
    value: unknown,
    update: () => Promise<{ Attributes?: Record<string, unknown> }>,
  ): Promise<Record<string, unknown> | undefined> {
    try {
      return (await update()).Attributes;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException && map === W.marks) {
        return error.Item ? unmarshall(error.Item as Record<string, AttributeValue>) : undefined;
      }
      if (!isMissingMap(error)) throw error;
    }
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [KEY]: WATERMARKS_KEY },
          UpdateExpression: 'SET #m = :m',
          ConditionExpression: 'attribute_not_exists(#m)',
          ExpressionAttributeNames: { '#m': map },
          ExpressionAttributeValues: { ':m': { [partition]: value } },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return out.Attributes;
    } catch (raced) {
      if (!(raced instanceof ConditionalCheckFailedException)) throw raced;
      // Someone created the map meanwhile: the update now applies (or is not needed).
      return this.inMap(map, partition, value, update);
    }
  }

  /** Replaces the live list, and forgets the watermarks and holds of partitions no longer live (closed shards,
   * removed queues) so the item does not grow with every reshard. A partition that comes back starts without a watermark,
   * which holds the sweep until its first probe is credited: the safe direction. */
  async setLive(partitions: string[], at: number = Date.now()): Promise<void> {
    const { Attributes } = await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { [KEY]: WATERMARKS_KEY },
        UpdateExpression: 'SET #l = :l, #m = if_not_exists(#m, :empty)',
        ExpressionAttributeNames: { '#l': W.live, '#m': W.marks },
        ExpressionAttributeValues: { ':l': partitions, ':empty': {} },
        ReturnValues: 'ALL_NEW',
      }),
    );
    const live = new Set(partitions);
    const marks = Object.keys((Attributes?.[W.marks] as Item | undefined) ?? {});
    const holds = Object.entries(holdsOf((Attributes?.[W.holds] as Item | undefined) ?? {}));
    // Marks and holds of partitions no longer live, and holds that stopped counting.
    const gone = [
      ...marks.filter((p) => !live.has(p)).map((p) => [W.marks, p] as const),
      ...holds
        .filter(([key, hold]) => !live.has(partitionOf(key)) || (hold.until !== undefined && hold.until <= at))
        .map(([key]) => [W.holds, key] as const),
    ];
    if (gone.length === 0) return;
    const names: Record<string, string> = {};
    const paths = gone.map(([map, p], i) => {
      names[`#${map}`] = map;
      names[`#g${i}`] = p;
      return `#${map}.#g${i}`;
    });
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { [KEY]: WATERMARKS_KEY },
        UpdateExpression: `REMOVE ${paths.join(', ')}`,
        ExpressionAttributeNames: names,
      }),
    );
  }

  private raise(partition: string, probeAt: number) {
    return this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { [KEY]: WATERMARKS_KEY },
        UpdateExpression: 'SET #m.#p = :t',
        ConditionExpression: 'attribute_not_exists(#m.#p) OR #m.#p < :t',
        ExpressionAttributeNames: { '#m': W.marks, '#p': partition },
        ExpressionAttributeValues: { ':t': probeAt },
        ReturnValues: 'ALL_NEW',
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
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

function ignoreFailedCondition(error: unknown): void {
  if (!(error instanceof ConditionalCheckFailedException)) throw error;
}

/** Holds are one map entry per partition and bucket, `<partition>|<bucket>`: '|' occurs in no queue or stream ARN. */
const holdKey = (partition: string, bucket: number) => `${partition}|${bucket}`;
const partitionOf = (key: string) => key.slice(0, key.lastIndexOf('|'));

function holdsOf(map: Item): Record<string, Hold> {
  const out: Record<string, Hold> = {};
  for (const [key, raw] of Object.entries(map)) {
    const { at, returnsAt, until } = (raw ?? {}) as Partial<Record<keyof Hold, unknown>>;
    if (typeof at === 'number' && typeof returnsAt === 'number') {
      out[key] = { at, returnsAt, ...(typeof until === 'number' ? { until } : {}) };
    }
  }
  return out;
}

function byPartition(holds: Record<string, Hold>): Record<string, Hold[]> {
  const out: Record<string, Hold[]> = {};
  for (const [key, hold] of Object.entries(holds).sort(([a], [b]) => a.localeCompare(b))) {
    const partition = partitionOf(key);
    out[partition] = [...(out[partition] ?? []), hold];
  }
  return out;
}

function numbersOf(map: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [partition, mark] of Object.entries(map)) if (typeof mark === 'number') out[partition] = mark;
  return out;
}
