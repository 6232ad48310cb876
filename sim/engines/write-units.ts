// What the local runs and the simulator meter: DynamoDB's consumed units, counted on the client.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KEY } from '../../lambdas/core/table-schema.js';

/** DynamoDB write units as billed, counted on the client: every write asks for its consumed capacity, and a failed
 * conditional write (billed, not reported) counts 1 unit per started KB, our items being under 1 KB. */
export class WriteUnits {
  device = 0;
  control = 0;
  /** Writes to the batched engine's shard table (logs, states). */
  shards = 0;
  /** GetItem and BatchGetItem calls, control items left out: the reads the fleet's messages and transitions cost. */
  reads = 0;
  /** Read units of every read (Get, BatchGet, Query), as billed. */
  readUnits = 0;

  constructor(private readonly shardTableName?: string) {}

  attach(client: DynamoDBClient): void {
    const writes = new Set(['UpdateItemCommand', 'PutItemCommand', 'DeleteItemCommand', 'TransactWriteItemsCommand']);
    const readCommands = new Set(['GetItemCommand', 'BatchGetItemCommand', 'QueryCommand']);
    const unitsOf = (consumed: unknown) =>
      [consumed ?? []].flat().reduce((n: number, c) => n + ((c as { CapacityUnits?: number }).CapacityUnits ?? 0), 0);
    // Control items (watermarks, the probe key) start with '#'; the key may be marshalled or not yet, by the
    // document client.
    const isControl = (input: { Key?: Record<string, unknown> }) => {
      const pk = input.Key?.[KEY] as string | { S?: string } | undefined;
      return (typeof pk === 'string' ? pk : pk?.S)?.startsWith('#') ?? false;
    };
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const name = context.commandName ?? '';
        if (readCommands.has(name)) {
          if (name !== 'QueryCommand' && !isControl(args.input as { Key?: Record<string, unknown> })) this.reads++;
          (args.input as { ReturnConsumedCapacity?: string }).ReturnConsumedCapacity ??= 'TOTAL';
          const out = await next(args);
          this.readUnits += unitsOf((out.output as { ConsumedCapacity?: unknown }).ConsumedCapacity);
          return out;
        }
        if (!writes.has(name)) return next(args);
        const input = args.input as {
          ReturnConsumedCapacity?: string;
          Key?: Record<string, unknown>;
          TableName?: string;
        };
        input.ReturnConsumedCapacity ??= 'TOTAL';
        if (this.shardTableName !== undefined && input.TableName === this.shardTableName) {
          const out = await next(args);
          this.shards += unitsOf((out.output as { ConsumedCapacity?: unknown }).ConsumedCapacity) || 1;
          return out;
        }
        const control = isControl(input);
        const add = (units: number) => {
          if (control) this.control += units;
          else this.device += units;
        };
        try {
          const out = await next(args);
          const consumed = (out.output as { ConsumedCapacity?: { CapacityUnits?: number } }).ConsumedCapacity;
          add(consumed?.CapacityUnits ?? 1);
          return out;
        } catch (error) {
          if ((error as { name?: string }).name === 'ConditionalCheckFailedException') add(1);
          throw error;
        }
      },
      { step: 'initialize', name: 'countWriteUnits' },
    );
  }
}
