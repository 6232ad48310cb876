// The device table in DynamoDB: every read and conditional write the core does, and nothing else.
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  type DynamoDBClient,
  QueryCommand as RawQueryCommand,
  TransactionCanceledException,
} from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  type QueryCommandOutput,
  TransactWriteCommand,
  UpdateCommand,
  type UpdateCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { mapLimit } from '../core/concurrency.js';
import type { DeviceEvent, DeviceState, Flapping, OutboxSpills } from '../core/device.js';
import { commitSpilling, type OutboxView, pendingSpills, SPILLS_PER_READ, type SpillOutcome } from '../core/outbox.js';
import type { Policy } from '../core/policy.js';
import type {
  AdminStore,
  AdminUpdate,
  CommitOutcome,
  CommitRequest,
  DeviceStore,
  ExpiredEntry,
  OfflineEntry,
  Page,
  ParkRequest,
  RegisterRequest,
  RetireRequest,
  TouchOutcome,
  TouchRequest,
  TypeCounts,
} from '../core/ports.js';
import {
  A,
  DEADLINE_INDEX,
  DEFAULT_SHARD_COUNT,
  KEY,
  OFFLINE_INDEX,
  OUTBOX_INDEX,
  offlineIndexKeys,
  offlinePartitions,
  SPILL,
  STATUS,
  type Status,
  spillKey,
} from '../core/table-schema.js';
import type { Tags } from '../core/tags.js';

type Item = Record<string, unknown>;

export interface DynamoDeviceStoreOptions {
  tableName: string;
  /** DynamoDB and DynamoDB Local return the item on a failed condition (ReturnValuesOnConditionCheckFailure);
   * engines that do not (dynalite) get a consistent read instead. */
  conditionFailureReturnsItem?: boolean;
  /** Shards of the deadline index (SHARD_COUNT): `counts()` reads every one of them, so it must be at least the
   * deployment's shard count (more only costs empty queries). @default DEFAULT_SHARD_COUNT */
  shardCount?: number;
  /** Entries per page of the counting queries. @default DynamoDB's (1 MB); tests set it small to exercise paging */
  countPageLimit?: number;
}

/** Index partitions `counts()` reads at once. */
const COUNT_CONCURRENCY = 16;
/** Spill items read or cleared at once. */
const SPILL_CONCURRENCY = 8;

/** Builds update expressions with every attribute name aliased: several of ours (`shard`, ...) are reserved. */
class Expression {
  readonly names: Record<string, string> = {};
  readonly values: Record<string, unknown> = {};
  private n = 0;

  name(attribute: string): string {
    const alias = `#${attribute}`;
    this.names[alias] = attribute;
    return alias;
  }

  value(value: unknown): string {
    const alias = `:v${this.n++}`;
    this.values[alias] = value;
    return alias;
  }

  input(tableName: string, deviceId: string, update: string, condition: string): UpdateCommandInput {
    return {
      TableName: tableName,
      Key: { [KEY]: deviceId },
      UpdateExpression: update,
      ConditionExpression: condition,
      ExpressionAttributeNames: this.names,
      ...(Object.keys(this.values).length > 0 ? { ExpressionAttributeValues: this.values } : {}),
      ReturnConsumedCapacity: 'TOTAL',
    };
  }
}

export class DynamoDeviceStore implements DeviceStore, AdminStore {
  private readonly client: DynamoDBClient;
  private readonly doc: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly conditionFailureReturnsItem: boolean;
  private readonly shardCount: number;
  private readonly countPageLimit: number | undefined;

  constructor(client: DynamoDBClient, options: DynamoDeviceStoreOptions) {
    this.client = client;
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    this.tableName = options.tableName;
    this.conditionFailureReturnsItem = options.conditionFailureReturnsItem ?? true;
    this.shardCount = options.shardCount ?? DEFAULT_SHARD_COUNT;
    this.countPageLimit = options.countPageLimit;
  }

  async touch(request: TouchRequest): Promise<TouchOutcome> {
    const x = new Expression();
    const sets = [
      `${x.name(A.lastSeen)} = ${x.value(request.lastSeen)}`,
      `${x.name(A.expiresAt)} = ${x.value(ttlSeconds(request.expiresAt))}`,
    ];
    const conditions = [
      `${x.name(A.status)} = ${x.value(STATUS.online)}`,
      `${x.name(A.lastSeen)} < ${x.value(request.lastSeen)}`,
      `(attribute_exists(${x.name(A.override)}) OR ${typePolicyEquals(x, request)})`,
    ];
    if (request.deviceType) conditions.push(`${x.name(A.deviceType)} = ${x.value(request.deviceType)}`);
    if (request.tags) sets.push(`${x.name(A.tags)} = ${x.value(request.tags)}`);
    if (request.moveDeadline) {
      sets.push(`${x.name(A.deadline)} = ${x.value(request.moveDeadline.deadline)}`);
      conditions.push(policyEquals(x, request.moveDeadline.policy));
      if (!request.moveDeadline.flapping) conditions.push(`attribute_not_exists(${x.name(A.flapping)})`);
    }
    const input = x.input(this.tableName, request.deviceId, `SET ${sets.join(', ')}`, conditions.join(' AND '));
    return this.conditionalWrite(request.deviceId, { ...input, ReturnValues: 'ALL_OLD' }, (item) => ({
      applied: true,
      before: toState(item!),
    }));
  }

  /** One conditional write, preceded by a spill transaction when the outbox would pass OUTBOX_ITEM_MAX (outbox.ts). */
  async commit(request: CommitRequest): Promise<CommitOutcome> {
    return commitSpilling(request, {
      write: (r, room) => this.commitWrite(r, room),
      spill: (deviceId, read) => this.spill(deviceId, read),
    });
  }

  private async commitWrite(request: CommitRequest, room: number | undefined): Promise<CommitOutcome> {
    const x = new Expression();
    const { state } = request;
    const sets = [
      [A.deviceType, state.deviceType],
      [A.timeoutMs, state.timeoutMs],
      [A.precisionMs, state.precisionMs],
      [A.lastSeen, state.lastSeen],
      [A.status, state.status],
      [A.since, state.since],
      [A.seq, state.seq],
    ].map(([attribute, value]) => `${x.name(attribute as string)} = ${x.value(value)}`);
    const removes: string[] = [];
    for (const [attribute, value] of [
      [A.shard, state.shard],
      [A.deadline, state.deadline],
      [A.transitions, state.transitions],
      [A.flapping, state.flapping],
      [A.parentOffline, state.parentOffline],
    ] as const) {
      if (value === undefined) removes.push(x.name(attribute));
      else sets.push(`${x.name(attribute)} = ${x.value(value)}`);
    }
    // The offline index follows the status in the same write: keys while OFFLINE, none otherwise.
    const offline =
      state.status === STATUS.offline ? offlineIndexKeys(request.deviceId, state.deviceType, state.since) : undefined;
    for (const [attribute, value] of [
      [A.offlineShard, offline?.offlineShard],
      [A.offlineKey, offline?.offlineKey],
    ] as const) {
      if (value === undefined) removes.push(x.name(attribute));
      else sets.push(`${x.name(attribute)} = ${x.value(value)}`);
    }
    if (request.expiresAt !== undefined) {
      sets.push(`${x.name(A.expiresAt)} = ${x.value(ttlSeconds(request.expiresAt))}`);
    }
    if (state.tags) sets.push(`${x.name(A.tags)} = ${x.value(state.tags)}`);
    if (request.append.length > 0) {
      const outbox = x.name(A.outbox);
      const outboxAt = x.name(A.outboxAt);
      sets.push(
        `${outbox} = list_append(if_not_exists(${outbox}, ${x.value([])}), ${x.value(request.append.map((e) => JSON.stringify(e)))})`,
        `${x.name(A.outboxShard)} = ${x.value(request.outboxShard)}`,
        `${outboxAt} = if_not_exists(${outboxAt}, ${x.value(request.outboxAt)})`,
        `${x.name(A.outboxSeq)} = ${x.value(request.append[request.append.length - 1]!.seq)}`,
      );
    }
    const { expect } = request;
    const conditions: string[] = [];
    if ('absent' in expect) conditions.push(`attribute_not_exists(${x.name(KEY)})`);
    else {
      conditions.push(
        `${x.name(A.seq)} = ${x.value(expect.seq)}`,
        `${x.name(A.status)} = ${x.value(expect.status)}`,
        `${x.name(A.lastSeen)} <= ${x.value(expect.lastSeenAtMost)}`,
      );
      if (expect.deviceType !== undefined) conditions.push(`${x.name(A.deviceType)} = ${x.value(expect.deviceType)}`);
      if (expect.policy) conditions.push(policyEquals(x, expect.policy));
      if (expect.notMutedAfter !== undefined) {
        const mute = x.name(A.mutedUntil);
        conditions.push(`(attribute_not_exists(${mute}) OR ${mute} <= ${x.value(expect.notMutedAfter)})`);
      }
      if (expect.skipHorizonAtMost !== undefined) {
        const horizon = x.name(A.skipHorizon);
        conditions.push(`(attribute_not_exists(${horizon}) OR ${horizon} <= ${x.value(expect.skipHorizonAtMost)})`);
      }
    }
    if (room !== undefined) {
      const outbox = x.name(A.outbox);
      conditions.push(`(attribute_not_exists(${outbox}) OR size(${outbox}) <= ${x.value(room)})`);
    }
    const update = `SET ${sets.join(', ')}${removes.length > 0 ? ` REMOVE ${removes.join(', ')}` : ''}`;
    const input = x.input(this.tableName, request.deviceId, update, conditions.join(' AND '));
    return this.conditionalWrite(request.deviceId, { ...input, ReturnValues: 'ALL_NEW' }, (item) => ({
      applied: true,
      after: toState(item!),
    }));
  }

  /** Moves the outbox as read to the next spill item and lists it, in one transaction of two updates (so that the
   * functions need no permission beyond `UpdateItem`): the spill item's, unconditional (its number was never listed,
   * and whoever else writes it read the same outbox), and the device item's, conditional on its outbox and spill
   * counter being as read. */
  async spill(deviceId: string, read: OutboxView): Promise<SpillOutcome> {
    const n = read.outboxSpills?.to ?? 0;
    const last = read.outbox[read.outbox.length - 1]!.seq;
    const x = new Expression();
    const obSeq = x.name(A.outboxSeq);
    const outbox = x.name(A.outbox);
    const to = x.name(A.spillTo);
    const from = x.name(A.spillFrom);
    const lastValue = x.value(last);
    const update = `REMOVE ${outbox}, ${obSeq} SET ${to} = ${x.value(n + 1)}, ${from} = if_not_exists(${from}, ${x.value(n)})`;
    const condition = [
      `(${obSeq} = ${lastValue} OR (attribute_not_exists(${obSeq}) AND ${x.name(A.seq)} = ${lastValue}))`,
      `size(${outbox}) = ${x.value(read.outbox.length)}`,
      n === 0 ? `attribute_not_exists(${to})` : `${to} = ${x.value(n)}`,
    ].join(' AND ');
    const deviceUpdate = {
      TableName: this.tableName,
      Key: { [KEY]: deviceId },
      UpdateExpression: update,
      ConditionExpression: condition,
      ExpressionAttributeNames: x.names,
      ExpressionAttributeValues: x.values,
    };
    try {
      const out = await this.doc.send(
        new TransactWriteCommand({
          ReturnConsumedCapacity: 'TOTAL',
          TransactItems: [
            {
              Update: {
                TableName: this.tableName,
                Key: { [KEY]: spillKey(deviceId, n) },
                // A cleared spill item of an earlier life of the device may still wait for TTL under this key.
                UpdateExpression: 'SET #e = :e, #l = :l REMOVE #x',
                ExpressionAttributeNames: { '#e': SPILL.events, '#l': SPILL.lastSeq, '#x': A.expiresAt },
                ExpressionAttributeValues: { ':e': read.outbox.map((event) => JSON.stringify(event)), ':l': last },
              },
            },
            { Update: { ...deviceUpdate, ReturnValuesOnConditionCheckFailure: 'ALL_OLD' } },
          ],
        }),
      );
      return { spilled: true, units: (out.ConsumedCapacity ?? []).reduce((n, c) => n + (c.CapacityUnits ?? 0), 0) };
    } catch (error) {
      if (!(error instanceof TransactionCanceledException)) throw error;
      // The device item's condition failed (or a concurrent write conflicted): the caller decides again from it.
      const reason = error.CancellationReasons?.[1];
      const item =
        reason?.Code === 'ConditionalCheckFailed' && reason.Item && this.conditionFailureReturnsItem
          ? unmarshallItem(reason.Item)
          : await this.rawGet(deviceId);
      return {
        spilled: false,
        current: item && isDevice(item) ? toState(item) : undefined,
        units: 2 * failedWriteUnits(item),
      };
    }
  }

  async park(request: ParkRequest): Promise<TouchOutcome> {
    const x = new Expression();
    const { expect } = request;
    const update = `SET ${x.name(A.deadline)} = ${x.value(request.deadline)}`;
    const conditions = [unchanged(x, expect)];
    if (expect.mutedUntil !== undefined) conditions.push(`${x.name(A.mutedUntil)} = ${x.value(expect.mutedUntil)}`);
    const input = x.input(this.tableName, request.deviceId, update, conditions.join(' AND '));
    return this.conditionalWrite(request.deviceId, { ...input, ReturnValues: 'ALL_OLD' }, (item) => ({
      applied: true,
      before: toState(item!),
    }));
  }

  async update(request: AdminUpdate): Promise<CommitOutcome> {
    const x = new Expression();
    const sets: string[] = [];
    const removes: string[] = [];
    if (request.override === null) removes.push(x.name(A.override));
    else if (request.override) sets.push(`${x.name(A.override)} = ${x.value(request.override)}`);
    if (request.policy) {
      sets.push(
        `${x.name(A.timeoutMs)} = ${x.value(request.policy.timeoutMs)}`,
        `${x.name(A.precisionMs)} = ${x.value(request.policy.precisionMs)}`,
      );
    }
    if (request.mutedUntil === null) removes.push(x.name(A.mutedUntil));
    else if (request.mutedUntil !== undefined) sets.push(`${x.name(A.mutedUntil)} = ${x.value(request.mutedUntil)}`);
    for (const [attribute, value] of [
      [A.deadline, request.deadline],
      [A.skipHorizon, request.skipHorizon],
      [A.expiresAt, request.expiresAt === undefined ? undefined : ttlSeconds(request.expiresAt)],
    ] as const) {
      if (value !== undefined) sets.push(`${x.name(attribute)} = ${x.value(value)}`);
    }
    const { expect } = request;
    const condition = unchanged(x, expect);
    const update = [
      sets.length > 0 ? `SET ${sets.join(', ')}` : '',
      removes.length > 0 ? `REMOVE ${removes.join(', ')}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    const input = x.input(this.tableName, request.deviceId, update, condition);
    return this.conditionalWrite(request.deviceId, { ...input, ReturnValues: 'ALL_NEW' }, (item) => ({
      applied: true,
      after: toState(item!),
    }));
  }

  async retire(request: RetireRequest): Promise<CommitOutcome> {
    const x = new Expression();
    const { expect } = request;
    const removes = [
      A.shard,
      A.deadline,
      A.offlineShard,
      A.offlineKey,
      A.override,
      A.mutedUntil,
      A.transitions,
      A.flapping,
      A.skipHorizon,
      A.parentOffline,
    ].map((a) => x.name(a));
    // The outbox stays: events committed before the decommission are history and still go out (I4).
    const update =
      `SET ${x.name(A.status)} = ${x.value(STATUS.retired)}, ${x.name(A.lastSeen)} = ${x.value(request.lastSeen)}, ` +
      `${x.name(A.expiresAt)} = ${x.value(ttlSeconds(request.expiresAt))} REMOVE ${removes.join(', ')}`;
    const condition = [
      `${x.name(A.seq)} = ${x.value(expect.seq)}`,
      `${x.name(A.status)} = ${x.value(expect.status)}`,
      `${x.name(A.deviceType)} = ${x.value(expect.deviceType)}`,
    ].join(' AND ');
    const input = x.input(this.tableName, request.deviceId, update, condition);
    return this.conditionalWrite(request.deviceId, { ...input, ReturnValues: 'ALL_NEW' }, (item) => ({
      applied: true,
      after: toState(item!),
    }));
  }

  async register(request: RegisterRequest): Promise<CommitOutcome> {
    const x = new Expression();
    const sets = [
      [A.deviceType, request.deviceType],
      [A.timeoutMs, request.policy.timeoutMs],
      [A.precisionMs, request.policy.precisionMs],
      [A.lastSeen, request.lastSeen],
      [A.status, STATUS.registered],
      [A.since, request.since],
      [A.seq, request.seq],
    ].map(([attribute, value]) => `${x.name(attribute as string)} = ${x.value(value)}`);
    // No expiry: a registration lasts until the device's first message (then the housekeeping TTL, as for every
    // device) or its decommission. A tombstone's outbox, if any, stays to be published.
    const update = `SET ${sets.join(', ')} REMOVE ${x.name(A.expiresAt)}`;
    const { expect } = request;
    const condition =
      'absent' in expect
        ? `attribute_not_exists(${x.name(KEY)})`
        : `${x.name(A.seq)} = ${x.value(expect.seq)} AND ${x.name(A.status)} = ${x.value(expect.status)}`;
    const input = x.input(this.tableName, request.deviceId, update, condition);
    return this.conditionalWrite(request.deviceId, { ...input, ReturnValues: 'ALL_NEW' }, (item) => ({
      applied: true,
      after: toState(item!),
    }));
  }

  async queryOffline(partition: string, limit: number, before?: string, tags?: Tags): Promise<Page<OfflineEntry>> {
    const filters = Object.entries(tags ?? {});
    const names: Record<string, string> = { '#p': A.offlineShard, ...(before ? { '#k': A.offlineKey } : {}) };
    const values: Record<string, unknown> = { ':p': partition, ...(before ? { ':before': before } : {}) };
    if (filters.length > 0) names['#tags'] = A.tags;
    filters.forEach(([name, value], i) => {
      names[`#t${i}`] = name;
      values[`:t${i}`] = value;
    });
    const query = {
      TableName: this.tableName,
      IndexName: OFFLINE_INDEX.name,
      KeyConditionExpression: before ? '#p = :p AND #k < :before' : '#p = :p',
      ...(filters.length > 0 ? { FilterExpression: filters.map((_, i) => `#tags.#t${i} = :t${i}`).join(' AND ') } : {}),
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
      ScanIndexForward: false,
    };
    // A filter applies after `Limit`: read on until `limit` entries match or the partition ends.
    const found: Item[] = [];
    let out: QueryCommandOutput | undefined;
    do {
      out = await this.doc.send(
        new QueryCommand({
          ...query,
          Limit: limit - found.length,
          ...(out?.LastEvaluatedKey ? { ExclusiveStartKey: out.LastEvaluatedKey } : {}),
        }),
      );
      found.push(...(out.Items ?? []));
    } while (filters.length > 0 && found.length < limit && out.LastEvaluatedKey);
    return {
      items: found.map((item) => ({
        deviceId: item[KEY] as string,
        deviceType: item[A.deviceType] as string,
        since: Number(item[A.since]),
        lastSeen: Number(item[A.lastSeen]),
        timeoutMs: Number(item[A.timeoutMs]),
        precisionMs: Number(item[A.precisionMs] ?? 0),
        ...(item[A.mutedUntil] !== undefined ? { mutedUntil: Number(item[A.mutedUntil]) } : {}),
        ...(item[A.tags] !== undefined ? { tags: item[A.tags] as Tags } : {}),
        key: item[A.offlineKey] as string,
      })),
      // The caller resumes by sort key, which is unique: the last item's key is the whole cursor.
      ...(out.LastEvaluatedKey && found.length > 0 ? { next: found[found.length - 1]![A.offlineKey] as string } : {}),
    };
  }

  /** Counted from the indexes, so the counts cannot drift from the devices: offline = a `Select: COUNT` of every
   * offline-index partition of each type; online = every deadline-index shard read with only `deviceType` and the
   * status (a flapping offline device waits there to settle) and counted by type here. Partitions are read in
   * parallel (bounded), each paged to its end. Eventually consistent, like any index read: a transition committed a
   * moment ago may not be counted yet. */
  async counts(deviceTypes: string[]): Promise<Record<string, TypeCounts>> {
    const totals = new Map<string, TypeCounts>(deviceTypes.map((type) => [type, { online: 0, offline: 0 }]));
    const offline = deviceTypes.flatMap((type) =>
      offlinePartitions(type).map((partition) => async () => {
        // Awaited first: `x += await y` would read x before the await and lose the other partitions' counts.
        const count = await this.countPartition(OFFLINE_INDEX, partition);
        totals.get(type)!.offline += count;
      }),
    );
    const online = Array.from({ length: this.shardCount }, (_, shard) => async () => {
      await this.countPartition(DEADLINE_INDEX, String(shard), (deviceType, status) => {
        const counts = deviceType === undefined ? undefined : totals.get(deviceType);
        if (counts && status === STATUS.online) counts.online++;
      });
    });
    await mapLimit([...offline, ...online], COUNT_CONCURRENCY, (task) => task());
    return Object.fromEntries(totals);
  }

  /** Reads one index partition to its end. With `onEntry` it reads only each entry's `deviceType` and status
   * (through the low-level client, so a million entries are not unmarshalled); without, only the count. */
  private async countPartition(
    index: { name: string; partitionKey: string },
    partition: string,
    onEntry?: (deviceType: string | undefined, status: string | undefined) => void,
  ): Promise<number> {
    let count = 0;
    let start: Record<string, AttributeValue> | undefined;
    do {
      const out = await this.client.send(
        new RawQueryCommand({
          TableName: this.tableName,
          IndexName: index.name,
          KeyConditionExpression: '#p = :p',
          ExpressionAttributeNames: {
            '#p': index.partitionKey,
            ...(onEntry ? { '#t': A.deviceType, '#s': A.status } : {}),
          },
          ExpressionAttributeValues: { ':p': { S: partition } },
          ...(onEntry ? { ProjectionExpression: '#t, #s' } : { Select: 'COUNT' }),
          ...(this.countPageLimit ? { Limit: this.countPageLimit } : {}),
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      count += out.Count ?? 0;
      if (onEntry) for (const item of out.Items ?? []) onEntry(item[A.deviceType]?.S, item[A.status]?.S);
      start = out.LastEvaluatedKey;
    } while (start);
    return count;
  }

  async rearm(deviceId: string, policy: Policy, cutoff: number): Promise<TouchOutcome> {
    const x = new Expression();
    const window = policy.timeoutMs + policy.precisionMs;
    const update = `SET ${x.name(A.deadline)} = ${x.name(A.lastSeen)} + ${x.value(window)}`;
    const condition = [
      `${x.name(A.status)} = ${x.value(STATUS.online)}`,
      `${x.name(A.lastSeen)} > ${x.value(cutoff - window)}`,
      policyEquals(x, policy),
      `attribute_not_exists(${x.name(A.flapping)})`,
    ].join(' AND ');
    const input = x.input(this.tableName, deviceId, update, condition);
    return this.conditionalWrite(deviceId, { ...input, ReturnValues: 'ALL_OLD' }, (item) => ({
      applied: true,
      before: toState(item!),
    }));
  }

  async clearOutbox(deviceId: string, seq: number, spills?: { from: number; to: number }): Promise<boolean> {
    if (spills) return this.clearSpilled(deviceId, seq, spills);
    const x = new Expression();
    const obSeq = x.name(A.outboxSeq);
    const update = `REMOVE ${x.name(A.outbox)}, ${x.name(A.outboxShard)}, ${x.name(A.outboxAt)}, ${obSeq}`;
    // Items whose outbox was written before `obSeq` existed: their newest event is at the item's seq, or a later
    // transition appended one (and set `obSeq`).
    const seqValue = x.value(seq);
    const spillTo = x.name(A.spillTo);
    const condition =
      `(${obSeq} = ${seqValue} OR (attribute_not_exists(${obSeq}) AND ${x.name(A.seq)} = ${seqValue})) ` +
      `AND attribute_exists(${x.name(A.outbox)}) ` +
      `AND (attribute_not_exists(${spillTo}) OR ${x.name(A.spillFrom)} = ${spillTo})`;
    try {
      await this.doc.send(
        new UpdateCommand({
          ...x.input(this.tableName, deviceId, update, condition),
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return true;
    } catch (error) {
      // An event was appended since (the caller publishes it too), or someone else cleared it, or spills are pending.
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const item = this.conditionFailureReturnsItem ? unmarshallItem(error.Item) : await this.rawGet(deviceId);
      const current = item && isDevice(item) ? toState(item) : undefined;
      if (!current || !pendingSpills(current)) return false;
      // The caller did not say which spills it published (it read them through `get`): the ones holding nothing
      // after `seq`; a listed one already gone was published too.
      const { from, to } = current.outboxSpills!;
      const loaded = await this.readSpills(deviceId, from, Math.min(to, from + SPILLS_PER_READ));
      const published = loaded.findIndex((events) => events.some((event) => event.seq > seq));
      const through = published === -1 ? loaded.length : published;
      return through > 0 && this.clearSpilled(deviceId, seq, { from, to: from + through });
    }
  }

  /** Clears spill items `[from, to)`, published, then unlists them: with the outbox and the index keys when nothing
   * after `seq` is left (the outbox's newest event is `seq`, or it is empty, and no other spill is listed), else
   * alone. */
  private async clearSpilled(deviceId: string, seq: number, spills: { from: number; to: number }): Promise<boolean> {
    await this.emptySpills(deviceId, spills.from, spills.to);
    const x = new Expression();
    const obSeq = x.name(A.outboxSeq);
    const outbox = x.name(A.outbox);
    const from = x.name(A.spillFrom);
    const fromValue = x.value(spills.from);
    const advance = `SET ${from} = ${x.value(spills.to)}`;
    const all = `${advance} REMOVE ${outbox}, ${obSeq}, ${x.name(A.outboxShard)}, ${x.name(A.outboxAt)}`;
    const everything = [
      `${from} = ${fromValue}`,
      `${x.name(A.spillTo)} = ${x.value(spills.to)}`,
      `(${obSeq} = ${x.value(seq)} OR attribute_not_exists(${outbox}))`,
    ].join(' AND ');
    try {
      await this.doc.send(
        new UpdateCommand({
          ...x.input(this.tableName, deviceId, all, everything),
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return true;
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const item = this.conditionFailureReturnsItem ? unmarshallItem(error.Item) : await this.rawGet(deviceId);
      // Something after `seq` is left: unlist the cleared spills alone, unless another relay did.
      if (!item || Number(item[A.spillFrom]) !== spills.from) return false;
    }
    const y = new Expression();
    const partial = `SET ${y.name(A.spillFrom)} = ${y.value(spills.to)}`;
    try {
      await this.doc.send(
        new UpdateCommand(
          y.input(this.tableName, deviceId, partial, `${y.name(A.spillFrom)} = ${y.value(spills.from)}`),
        ),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
    return false;
  }

  /** Empties spill items `[from, to)` and hands them to TTL (an `UpdateItem`, like every write of the functions;
   * one of 1 KB costs what a delete does). An emptied spill reads as one already gone: published. */
  private async emptySpills(deviceId: string, from: number, to: number): Promise<void> {
    const expired = Math.floor(Date.now() / 1000); // TTL reads epoch seconds: due now
    const numbers = Array.from({ length: to - from }, (_, i) => from + i);
    await mapLimit(numbers, SPILL_CONCURRENCY, (n) =>
      this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [KEY]: spillKey(deviceId, n) },
          UpdateExpression: 'REMOVE #e, #l SET #x = :x',
          ExpressionAttributeNames: { '#e': SPILL.events, '#l': SPILL.lastSeq, '#x': A.expiresAt },
          ExpressionAttributeValues: { ':x': expired },
        }),
      ),
    );
  }

  /** The events of spill items `[from, to)`, one list per spill (empty for one already cleared), strongly
   * consistent: a spill just written must not pass for one published. `GetItem`s, which the functions may do. */
  private async readSpills(deviceId: string, from: number, to: number): Promise<DeviceEvent[][]> {
    const numbers = Array.from({ length: to - from }, (_, i) => from + i);
    return mapLimit(numbers, SPILL_CONCURRENCY, async (n) => {
      const out = await this.doc.send(
        new GetCommand({ TableName: this.tableName, Key: { [KEY]: spillKey(deviceId, n) }, ConsistentRead: true }),
      );
      const events = out.Item?.[SPILL.events] as string[] | undefined;
      return (events ?? []).map((json) => JSON.parse(json) as DeviceEvent);
    });
  }

  async get(deviceId: string): Promise<DeviceState | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { [KEY]: deviceId }, ConsistentRead: true }),
    );
    if (!out.Item || !isDevice(out.Item)) return undefined;
    const state = toState(out.Item);
    if (pendingSpills(state)) {
      const spills = state.outboxSpills!;
      const loadedTo = Math.min(spills.to, spills.from + SPILLS_PER_READ);
      spills.loaded = await this.readSpills(deviceId, spills.from, loadedTo);
      spills.loadedTo = loadedTo;
    }
    return state;
  }

  async queryExpired(shard: string, cutoff: number, limit: number, cursor?: string): Promise<Page<ExpiredEntry>> {
    const page = await this.queryIndex(DEADLINE_INDEX, shard, cutoff, limit, cursor);
    return {
      ...page,
      items: page.items.map((item) => ({
        deviceId: item[KEY] as string,
        deadline: item[A.deadline] as number,
        timeoutMs: item[A.timeoutMs] as number,
        precisionMs: item[A.precisionMs] as number,
        flapping: item[A.flapping] !== undefined,
      })),
    };
  }

  async queryOutbox(shard: string, committedBefore: number, limit: number, cursor?: string): Promise<Page<string>> {
    const page = await this.queryIndex(OUTBOX_INDEX, shard, committedBefore, limit, cursor);
    return { ...page, items: page.items.map((item) => item[KEY] as string) };
  }

  /** One page of an index's partition `shard`, sort key up to `upTo`, oldest first. */
  private async queryIndex(
    index: { name: string; partitionKey: string; sortKey: string },
    shard: string,
    upTo: number,
    limit: number,
    cursor?: string,
  ): Promise<Page<Item>> {
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: index.name,
        KeyConditionExpression: '#pk = :pk AND #sk <= :upTo',
        ExpressionAttributeNames: { '#pk': index.partitionKey, '#sk': index.sortKey },
        ExpressionAttributeValues: { ':pk': shard, ':upTo': upTo },
        Limit: limit,
        ...(cursor ? { ExclusiveStartKey: decodeCursor(cursor) } : {}),
      }),
    );
    return { items: out.Items ?? [], ...(out.LastEvaluatedKey ? { next: encodeCursor(out.LastEvaluatedKey) } : {}) };
  }

  private async conditionalWrite<T extends TouchOutcome | CommitOutcome>(
    deviceId: string,
    input: UpdateCommandInput,
    onApplied: (item: Item | undefined) => T,
  ): Promise<T> {
    try {
      const out = await this.doc.send(new UpdateCommand({ ...input, ReturnValuesOnConditionCheckFailure: 'ALL_OLD' }));
      return { ...onApplied(out.Attributes), units: out.ConsumedCapacity?.CapacityUnits };
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const item = this.conditionFailureReturnsItem ? unmarshallItem(error.Item) : await this.rawGet(deviceId);
      return {
        applied: false,
        current: item && isDevice(item) ? toState(item) : undefined,
        units: failedWriteUnits(item),
      } as T;
    }
  }

  private async rawGet(deviceId: string): Promise<Item | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { [KEY]: deviceId }, ConsistentRead: true }),
    );
    return out.Item;
  }
}

/** The item is still at this seq and status with this effective policy: nothing an operator or sweep decision was
 * taken from has changed. */
function unchanged(x: Expression, expect: { seq: number; status: Status; policy: Policy }): string {
  return `${x.name(A.seq)} = ${x.value(expect.seq)} AND ${x.name(A.status)} = ${x.value(expect.status)} AND ${policyEquals(x, expect.policy)}`;
}

/** The stored policy is the type policy the touch assumes: the given one, or the one given for the stored type. One
 * term per device type, which `MAX_DEVICE_TYPES` bounds to stay within DynamoDB's expression limits. */
function typePolicyEquals(x: Expression, request: Pick<TouchRequest, 'typePolicy' | 'typePolicies'>): string {
  if (!request.typePolicies) return `(${policyEquals(x, request.typePolicy)})`;
  const type = x.name(A.deviceType);
  const terms = Object.entries(request.typePolicies).map(
    ([name, policy]) => `(${type} = ${x.value(name)} AND ${policyEquals(x, policy)})`,
  );
  // DynamoDB refuses redundant parentheses, so one term goes bare.
  return terms.length === 1 ? terms[0]! : `(${terms.join(' OR ')})`;
}

/** DynamoDB TTL reads epoch seconds (a value in ms lies thousands of years ahead, and the item is never deleted);
 * the core speaks ms everywhere else. */
function ttlSeconds(epochMs: number): number {
  return Math.ceil(epochMs / 1000);
}

function policyEquals(x: Expression, policy: Policy): string {
  return `${x.name(A.timeoutMs)} = ${x.value(policy.timeoutMs)} AND ${x.name(A.precisionMs)} = ${x.value(policy.precisionMs)}`;
}

/** A failed conditional write is billed like a write of the item (1 unit per started KB), but the exception does
 * not report it: estimate from the item's JSON size, which is close to DynamoDB's item size for these items. */
function failedWriteUnits(item: Item | undefined): number {
  return Math.max(1, Math.ceil(Buffer.byteLength(JSON.stringify(item ?? {})) / 1024));
}

function isDevice(item: Item): boolean {
  return typeof item[A.status] === 'string';
}

export function toState(item: Item): DeviceState {
  const override = item[A.override] as Policy | undefined;
  return {
    deviceId: item[KEY] as string,
    deviceType: item[A.deviceType] as string,
    timeoutMs: Number(item[A.timeoutMs]),
    precisionMs: Number(item[A.precisionMs] ?? 0),
    ...(override
      ? { override: { timeoutMs: Number(override.timeoutMs), precisionMs: Number(override.precisionMs ?? 0) } }
      : {}),
    lastSeen: Number(item[A.lastSeen]),
    status: item[A.status] as Status,
    since: Number(item[A.since]),
    seq: Number(item[A.seq] ?? 0),
    ...(item[A.shard] !== undefined ? { shard: item[A.shard] as string } : {}),
    ...(item[A.deadline] !== undefined ? { deadline: Number(item[A.deadline]) } : {}),
    ...(item[A.mutedUntil] !== undefined ? { mutedUntil: Number(item[A.mutedUntil]) } : {}),
    ...(item[A.skipHorizon] !== undefined ? { skipHorizon: Number(item[A.skipHorizon]) } : {}),
    ...(item[A.transitions] !== undefined ? { transitions: (item[A.transitions] as unknown[]).map(Number) } : {}),
    ...(item[A.flapping] !== undefined ? { flapping: toFlapping(item[A.flapping] as Record<string, unknown>) } : {}),
    ...(item[A.tags] !== undefined ? { tags: item[A.tags] as Tags } : {}),
    ...(item[A.parentOffline] !== undefined ? { parentOffline: item[A.parentOffline] as string } : {}),
    outbox: ((item[A.outbox] as string[] | undefined) ?? []).map((json) => JSON.parse(json) as DeviceEvent),
    ...(item[A.spillTo] !== undefined ? { outboxSpills: toSpills(item) } : {}),
  };
}

function toSpills(item: Item): OutboxSpills {
  const to = Number(item[A.spillTo]);
  return { from: Number(item[A.spillFrom] ?? to), to };
}

function toFlapping(raw: Record<string, unknown>): Flapping {
  return { since: Number(raw.since), windowMs: Number(raw.windowMs) };
}

/** The exception carries the raw attribute-value map; the document client only unmarshalls successful output. */
function unmarshallItem(raw: unknown): Item | undefined {
  if (!raw) return undefined;
  return unmarshall(raw as Record<string, AttributeValue>);
}

function encodeCursor(key: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

function decodeCursor(cursor: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Record<string, unknown>;
}
