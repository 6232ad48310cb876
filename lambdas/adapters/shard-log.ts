// The batched engine's shard logs and shard states in DynamoDB (core/batched.ts, table-schema.ts SHARD_TABLE). Every
// payload is JSON compressed with gzip in one binary attribute: DynamoDB bills a write by the kilobyte of the item,
// and a kilobyte then holds 40–60 sightings instead of 15–25.
import { randomUUID } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { ShardEntry } from '../core/batched.js';
import type {
  Billed,
  LogRead,
  ShardChange,
  ShardStateStore,
  Sighting,
  SightingLog,
  StoredShard,
} from '../core/ports.js';
import { SHARD_TABLE as S } from '../core/table-schema.js';
import type { Tags } from '../core/tags.js';

/** Below DynamoDB's 400 KB item limit, with room for the keys. */
const MAX_PAYLOAD_BYTES = 350_000;
const STAMP_DIGITS = 15;
const HEAD = 'head';

type Encoded = [deviceId: string, offset: number, deviceType?: string | null, tags?: Tags];
interface LogPayload {
  /** The sightings' times are offsets from `base`: a few digits each instead of thirteen. */
  base: number;
  s: Encoded[];
  n?: string[];
}

const encode = (s: Sighting, base: number): Encoded => {
  const offset = s.lastSeen - base;
  if (s.tags) return [s.deviceId, offset, s.deviceType ?? null, s.tags];
  return s.deviceType ? [s.deviceId, offset, s.deviceType] : [s.deviceId, offset];
};
const pack = (value: unknown) => gzipSync(JSON.stringify(value));
const unpack = <T>(data: Uint8Array): T => JSON.parse(gunzipSync(data).toString('utf8')) as T;
const stampKey = (stamp: number) => String(Math.max(0, Math.floor(stamp))).padStart(STAMP_DIGITS, '0');
const unitsOf = (out: { ConsumedCapacity?: { CapacityUnits?: number } | Array<{ CapacityUnits?: number }> }) =>
  [out.ConsumedCapacity ?? []].flat().reduce((n, c) => n + (c.CapacityUnits ?? 0), 0);

/** Splits `items` into parts whose packed payload stays under the item limit: into as many parts as the first
 * packing's size calls for (with a margin), and a part still too large in halves. */
function packed<T>(items: T[], payload: (part: T[]) => unknown, parts = 1): Uint8Array[] {
  const size = Math.ceil(items.length / parts);
  const out: Uint8Array[] = [];
  for (let i = 0; i < items.length || (i === 0 && out.length === 0); i += Math.max(size, 1)) {
    const part = items.slice(i, i + size);
    const data = pack(payload(part));
    if (data.byteLength <= MAX_PAYLOAD_BYTES || part.length <= 1) out.push(data);
    else out.push(...packed(part, payload, Math.ceil((data.byteLength / MAX_PAYLOAD_BYTES) * 1.2)));
  }
  return out;
}

export interface ShardTableOptions {
  /** How long log records, checkpoints and journals are kept (TTL): longer than any sweep outage to survive. */
  retentionMs: number;
  /** Stamps appended records (the writer's clock). */
  now?: () => number;
  /** Prepended to every shard's keys: deployments (or test runs) sharing a table. */
  prefix?: string;
}

abstract class ShardTable {
  protected readonly doc: DynamoDBDocumentClient;
  protected readonly now: () => number;

  constructor(
    client: DynamoDBClient,
    protected readonly tableName: string,
    protected readonly options: ShardTableOptions,
  ) {
    this.doc = DynamoDBDocumentClient.from(client);
    this.now = options.now ?? Date.now;
  }

  protected logKey(shard: string): string {
    return S.logKey(`${this.options.prefix ?? ''}${shard}`);
  }

  protected stateKey(shard: string): string {
    return S.stateKey(`${this.options.prefix ?? ''}${shard}`);
  }

  protected expiresAt(): number {
    return Math.ceil((this.now() + this.options.retentionMs) / 1000);
  }

  protected async put(pk: string, sort: string, data: Uint8Array): Promise<number> {
    const out = await this.doc.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { [S.partitionKey]: pk, [S.sortKey]: sort, [S.data]: data, [S.ttl]: this.expiresAt() },
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    return unitsOf(out);
  }
}

/** A log record's payloads (more than one when the sightings do not fit one item). */
export function encodeSightings(sightings: Sighting[], notes?: string[]): Uint8Array[] {
  const base = sightings.reduce((min, s) => Math.min(min, s.lastSeen), Number.POSITIVE_INFINITY);
  return packed(
    sightings,
    (part): LogPayload => ({
      base: Number.isFinite(base) ? base : 0,
      s: part.map((s) => encode(s, base)),
      ...(notes?.length ? { n: notes } : {}),
    }),
  );
}

export function decodeSightings(data: Uint8Array): LogRead {
  const payload = unpack<LogPayload>(data);
  return {
    sightings: payload.s.map(([deviceId, offset, deviceType, tags]) => ({
      deviceId,
      lastSeen: payload.base + offset,
      ...(deviceType ? { deviceType } : {}),
      ...(tags ? { tags } : {}),
    })),
    notes: payload.n ?? [],
  };
}

/** A checkpoint's chunks. */
export function encodeEntries(entries: Map<string, ShardEntry>): Uint8Array[] {
  return packed([...entries], (part) => part);
}

export class DynamoSightingLog extends ShardTable implements SightingLog {
  /** Write and read units consumed since created (for benchmarks). */
  readonly consumed = { write: 0, read: 0 };

  async append(shard: string, record: { sightings?: Sighting[]; notes?: string[] }): Promise<Billed> {
    const sightings = record.sightings ?? [];
    const base = sightings.reduce((min, s) => Math.min(min, s.lastSeen), Number.POSITIVE_INFINITY);
    const parts = packed(
      sightings,
      (part): LogPayload => ({
        base: Number.isFinite(base) ? base : 0,
        s: part.map((s) => encode(s, base)),
        ...(record.notes?.length ? { n: record.notes } : {}),
      }),
    );
    const stamp = stampKey(this.now());
    let units = 0;
    for (const data of parts) units += await this.put(this.logKey(shard), `${stamp}#${randomUUID()}`, data);
    this.consumed.write += units;
    return { units };
  }

  async read(shard: string, after: number): Promise<LogRead & Billed> {
    // Stamped after `after`: from its next millisecond on (everything when unbounded).
    const from = stampKey(Number.isFinite(after) ? Math.floor(after) + 1 : 0);
    const read: LogRead = { sightings: [], notes: [] };
    const notes = new Set<string>();
    let units = 0;
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: '#pk = :pk AND #sort >= :from',
          ExpressionAttributeNames: { '#pk': S.partitionKey, '#sort': S.sortKey },
          ExpressionAttributeValues: { ':pk': this.logKey(shard), ':from': from },
          ConsistentRead: true,
          ExclusiveStartKey: start,
          ReturnConsumedCapacity: 'TOTAL',
        }),
      );
      units += unitsOf(out);
      for (const item of out.Items ?? []) {
        const decoded = decodeSightings(item[S.data] as Uint8Array);
        read.sightings.push(...decoded.sightings);
        for (const note of decoded.notes) notes.add(note);
      }
      start = out.LastEvaluatedKey;
    } while (start);
    read.notes = [...notes];
    this.consumed.read += units;
    return { ...read, units };
  }
}

interface Head {
  version: number;
  position: number | null;
  /** The version that wrote the checkpoint, and its chunk count. */
  checkpoint: number;
  chunks: number;
  /** Sort keys of the journals since the checkpoint, in order. */
  journals: string[];
}

type JournalPayload = Array<[deviceId: string, entry: ShardEntry | null]>;

export class DynamoShardStates extends ShardTable implements ShardStateStore<ShardEntry> {
  readonly consumed = { write: 0, read: 0 };

  async version(shard: string): Promise<number> {
    const head = await this.head(shard, 'version');
    return head?.version ?? 0;
  }

  async load(shard: string): Promise<StoredShard<ShardEntry> | undefined> {
    const head = await this.head(shard);
    if (!head) return undefined;
    const pk = this.stateKey(shard);
    const chunkKeys = Array.from({ length: head.chunks }, (_, i) => chunkKey(head.checkpoint, i));
    const items = await this.getAll(pk, [...chunkKeys, ...head.journals]);
    const entries = new Map<string, ShardEntry>();
    for (const key of chunkKeys) {
      for (const [deviceId, entry] of unpack<JournalPayload>(required(items, key)))
        if (entry) entries.set(deviceId, entry);
    }
    for (const key of head.journals) {
      for (const [deviceId, entry] of unpack<JournalPayload>(required(items, key))) {
        if (entry) entries.set(deviceId, entry);
        else entries.delete(deviceId);
      }
    }
    return {
      version: head.version,
      position: head.position ?? Number.NEGATIVE_INFINITY,
      entries,
      journals: head.journals.length,
    };
  }

  async save(shard: string, expectVersion: number, change: ShardChange<ShardEntry>): Promise<boolean> {
    const pk = this.stateKey(shard);
    const version = expectVersion + 1;
    // The items first, under keys no other save uses; the head then makes them the state, or they expire unread.
    let update: { expression: string; values: Record<string, unknown> };
    if ('journal' in change) {
      const key = `journal#${String(version).padStart(12, '0')}#${randomUUID()}`;
      const payload: JournalPayload = [...change.journal].map(([id, entry]) => [id, entry ?? null]);
      this.consumed.write += await this.put(pk, key, pack(payload));
      update = {
        expression:
          'SET version = :v, journals = list_append(if_not_exists(journals, :none), :key), ' +
          'checkpoint = if_not_exists(checkpoint, :zero), chunks = if_not_exists(chunks, :zero)',
        values: { ':v': version, ':key': [key], ':none': [], ':zero': 0 },
      };
    } else {
      const parts = encodeEntries(change.checkpoint);
      for (const [i, data] of parts.entries()) this.consumed.write += await this.put(pk, chunkKey(version, i), data);
      update = {
        expression: 'SET version = :v, #position = :position, checkpoint = :v, chunks = :chunks, journals = :none',
        values: {
          ':v': version,
          ':position': Number.isFinite(change.position) ? change.position : null,
          ':chunks': parts.length,
          ':none': [],
        },
      };
    }
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [S.partitionKey]: pk, [S.sortKey]: HEAD },
          UpdateExpression: update.expression,
          ConditionExpression: expectVersion === 0 ? 'attribute_not_exists(version)' : 'version = :expect',
          ExpressionAttributeNames: 'checkpoint' in change ? { '#position': 'position' } : undefined,
          ExpressionAttributeValues: { ...update.values, ...(expectVersion === 0 ? {} : { ':expect': expectVersion }) },
          ReturnConsumedCapacity: 'TOTAL',
        }),
      );
      this.consumed.write += unitsOf(out);
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  private async head(shard: string, projection?: string): Promise<Head | undefined> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { [S.partitionKey]: this.stateKey(shard), [S.sortKey]: HEAD },
        ConsistentRead: true,
        ...(projection ? { ProjectionExpression: projection } : {}),
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    this.consumed.read += unitsOf(out);
    return out.Item as Head | undefined;
  }

  /** The items under `sorts` of one partition, 100 keys a request, strongly consistent. */
  private async getAll(pk: string, sorts: string[]): Promise<Map<string, Uint8Array>> {
    const found = new Map<string, Uint8Array>();
    let pending = sorts.map((sort) => ({ [S.partitionKey]: pk, [S.sortKey]: sort }));
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 10) throw new Error(`${pk}: state items left unread after ${attempt} attempts`);
      const batch = pending.slice(0, 100);
      const out = await this.doc.send(
        new BatchGetCommand({
          RequestItems: { [this.tableName]: { Keys: batch, ConsistentRead: true } },
          ReturnConsumedCapacity: 'TOTAL',
        }),
      );
      this.consumed.read += unitsOf(out);
      for (const item of out.Responses?.[this.tableName] ?? []) {
        found.set(item[S.sortKey] as string, item[S.data] as Uint8Array);
      }
      const unprocessed = out.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
      pending = [...pending.slice(100), ...(unprocessed as typeof pending)];
    }
    return found;
  }
}

const chunkKey = (version: number, i: number) => `checkpoint#${String(version).padStart(12, '0')}#${i}`;

function required(items: Map<string, Uint8Array>, key: string): Uint8Array {
  const data = items.get(key);
  if (!data) throw new Error(`shard state item ${key} is missing (expired, or not yet visible)`);
  return data;
}
