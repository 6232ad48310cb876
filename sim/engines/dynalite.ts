// DynamoDB on plain Node, for `npm start` on a machine without Java: dynalite (an implementation of the DynamoDB API
// on an in-memory LevelDB) behind a small HTTP front on 127.0.0.1 that makes up for what dynalite lacks and the
// detector uses:
// - ReturnValuesOnConditionCheckFailure: ALL_OLD. dynalite answers a failed condition without the item; the front
//   reads it and adds it to the error, as DynamoDB does (the adapters decide again from it).
// - TransactWriteItems, which dynalite does not implement: the front applies each Put, Update, Delete and
//   ConditionCheck in turn with its own condition, and on any failure puts back every item it changed and answers
//   TransactionCanceledException with one reason per item (with the old item on ALL_OLD).
// Writes to one item run one at a time (a transaction holds all its items), so that no other write comes between a
// failed condition and the read of the item, or between the steps of a transaction; writes to other items and reads
// run alongside. A read may see a transaction half applied, which the
// local demo tolerates (the production path is DynamoDB's). Not made up for, since nothing here uses them: TTL
// deletion (DynamoDB Local does not delete either), transactional reads, streams. Tests and benchmarks keep DynamoDB
// Local; test/local/dynalite.test.ts runs the device store's contract through this front.
import { Agent, createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';

type AttributeMap = Record<string, unknown>;
type Json = Record<string, unknown>;
interface Answer {
  status: number;
  body: Json;
}

const PREFIX = 'DynamoDB_20120810.';
const WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem', 'TransactWriteItems']);
const ERROR_PREFIX = 'com.amazonaws.dynamodb.v20120810#';

const createDynalite = createRequire(import.meta.url)('dynalite') as (options: {
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
}) => Server;

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
}

/** Starts dynalite in this process and the front before it; `endpoint` is the front's. */
export async function startDynalite(): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const engine = createDynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  // Idle keep-alive connections stay open (Node closes them after 5 s by default): a request sent on a connection
  // the server is just closing fails with a reset.
  engine.keepAliveTimeout = 0;
  const enginePort = await listen(engine);
  const front = new DynaliteFront(enginePort);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      front
        .handle(req.headers, Buffer.concat(chunks))
        .then(({ status, headers, body }) => {
          res.writeHead(status, headers);
          res.end(body);
        })
        .catch((error: unknown) => {
          const body = JSON.stringify({ __type: `${ERROR_PREFIX}InternalServerError`, message: String(error) });
          res.writeHead(500, { 'content-type': 'application/x-amz-json-1.0' });
          res.end(body);
        });
    });
  });
  server.keepAliveTimeout = 0;
  const port = await listen(server);
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: async () => {
      await close(server);
      front.agent.destroy();
      await close(engine);
    },
  };
}

class DynaliteFront {
  readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  /** Per item (table and key): the tail of the queue of writes to it. */
  private readonly locks = new Map<string, Promise<void>>();
  private readonly keySchemas = new Map<string, string[]>();

  constructor(private readonly enginePort: number) {}

  async handle(
    headers: IncomingHttpHeaders,
    body: Buffer,
  ): Promise<{ status: number; headers: Record<string, string>; body: Buffer | string }> {
    const target = String(headers['x-amz-target'] ?? '');
    const operation = target.startsWith(PREFIX) ? target.slice(PREFIX.length) : '';
    const auth = { authorization: String(headers.authorization ?? ''), 'x-amz-date': String(headers['x-amz-date']) };
    if (!WRITES.has(operation)) return this.forward(headers, body);
    const params = JSON.parse(body.toString('utf8')) as Json;
    const run = async () => {
      if (operation === 'TransactWriteItems') return reply(await this.transactWrite(auth, params));
      if (params.ReturnValuesOnConditionCheckFailure === 'ALL_OLD' && operation !== 'BatchWriteItem') {
        return reply(await this.writeReturningOld(auth, operation, params));
      }
      return this.forward(headers, body);
    };
    return this.holding(await this.itemsOf(auth, operation, params), run);
  }

  /** The items a write touches, as lock ids. */
  private async itemsOf(auth: Record<string, string>, operation: string, params: Json): Promise<string[]> {
    const id = async (op: Json) => {
      const key = await this.keyOf(auth, op).catch(() => undefined);
      return `${String(op.TableName)}\u0000${key ? JSON.stringify(key) : '?'}`;
    };
    if (operation === 'TransactWriteItems') {
      const items = (params.TransactItems ?? []) as Array<Record<string, Json>>;
      return Promise.all(items.map((entry) => id(Object.values(entry)[0] ?? {})));
    }
    if (operation === 'BatchWriteItem') {
      const tables = Object.entries((params.RequestItems ?? {}) as Record<string, Array<Record<string, Json>>>);
      return Promise.all(
        tables.flatMap(([TableName, requests]) =>
          requests.map((r) => id({ TableName, ...(r.PutRequest ?? {}), ...(r.DeleteRequest ?? {}) })),
        ),
      );
    }
    return [await id(params)];
  }

  /** Runs `fn` holding the locks of `ids`, taken in order (so two writes never wait for each other's). */
  private async holding<T>(ids: string[], fn: () => Promise<T>): Promise<T> {
    const releases: Array<() => void> = [];
    for (const id of [...new Set(ids)].sort()) {
      const previous = this.locks.get(id) ?? Promise.resolve();
      let release!: () => void;
      const mine = new Promise<void>((resolve) => {
        release = resolve;
      });
      const tail = previous.then(() => mine);
      this.locks.set(id, tail);
      releases.push(() => {
        release();
        if (this.locks.get(id) === tail) this.locks.delete(id);
      });
      await previous;
    }
    try {
      return await fn();
    } finally {
      for (const release of releases) release();
    }
  }

  /** Passes a request through unchanged (dynalite checks the form of the signature, not the signature). */
  private forward(
    headers: IncomingHttpHeaders,
    body: Buffer,
  ): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: this.enginePort, method: 'POST', path: '/', headers, agent: this.agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const out: Record<string, string> = {};
            for (const [name, value] of Object.entries(res.headers)) {
              if (value !== undefined && name !== 'connection' && name !== 'keep-alive') out[name] = String(value);
            }
            resolve({ status: res.statusCode ?? 500, headers: out, body: Buffer.concat(chunks) });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  private async call(auth: Record<string, string>, operation: string, params: Json): Promise<Answer> {
    const out = await this.forward(
      { ...auth, 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': `${PREFIX}${operation}` },
      Buffer.from(JSON.stringify(params)),
    );
    const text = out.body.toString('utf8');
    return { status: out.status, body: text ? (JSON.parse(text) as Json) : {} };
  }

  /** The item as stored now, or undefined. */
  private async read(
    auth: Record<string, string>,
    table: string,
    key: AttributeMap,
  ): Promise<AttributeMap | undefined> {
    const out = await this.call(auth, 'GetItem', { TableName: table, Key: key, ConsistentRead: true });
    if (out.status !== 200) throw new Error(`GetItem on ${table} failed: ${JSON.stringify(out.body)}`);
    return out.body.Item as AttributeMap | undefined;
  }

  private async keyOf(auth: Record<string, string>, params: Json): Promise<AttributeMap> {
    if (params.Key) return params.Key as AttributeMap;
    const table = String(params.TableName);
    let names = this.keySchemas.get(table);
    if (!names) {
      const out = await this.call(auth, 'DescribeTable', { TableName: table });
      const schema = (out.body.Table as { KeySchema?: Array<{ AttributeName: string }> } | undefined)?.KeySchema;
      if (!schema) throw new Error(`DescribeTable ${table}: ${JSON.stringify(out.body)}`);
      names = schema.map((k) => k.AttributeName);
      this.keySchemas.set(table, names);
    }
    const item = (params.Item ?? {}) as AttributeMap;
    return Object.fromEntries(names.map((name) => [name, item[name]]));
  }

  private async writeReturningOld(auth: Record<string, string>, operation: string, params: Json): Promise<Answer> {
    const { ReturnValuesOnConditionCheckFailure: _, ...rest } = params;
    const out = await this.call(auth, operation, rest);
    if (!isConditionFailure(out)) return out;
    const item = await this.read(auth, String(params.TableName), await this.keyOf(auth, params));
    return { status: out.status, body: { ...out.body, ...(item ? { Item: item } : {}) } };
  }

  private async transactWrite(auth: Record<string, string>, params: Json): Promise<Answer> {
    const items = (params.TransactItems ?? []) as Array<Record<string, Json>>;
    if (items.length === 0 || items.length > 100) {
      return validation('Member must have length between 1 and 100 for TransactItems');
    }
    const steps: Step[] = [];
    const seen = new Set<string>();
    for (const entry of items) {
      const [kind, op] = Object.entries(entry)[0] ?? [];
      if (!kind || !op || !['Put', 'Update', 'Delete', 'ConditionCheck'].includes(kind)) {
        return validation('TransactItems can only contain one of ConditionCheck, Put, Update or Delete');
      }
      const table = String(op.TableName);
      const key = await this.keyOf(auth, op);
      const id = `${table}\u0000${JSON.stringify(key)}`;
      if (seen.has(id)) return validation('Transaction request cannot include multiple operations on one item');
      seen.add(id);
      steps.push({ kind, op, table, key });
    }

    const applied: Array<Step & { before: AttributeMap | undefined }> = [];
    const undo = async () => {
      for (const { table, key, before } of applied.reverse()) {
        const out = before
          ? await this.call(auth, 'PutItem', { TableName: table, Item: before })
          : await this.call(auth, 'DeleteItem', { TableName: table, Key: key });
        if (out.status !== 200) throw new Error(`undoing a transaction step failed: ${JSON.stringify(out.body)}`);
      }
    };
    const reasons: Json[] = [];
    const units = new Map<string, number>();
    let failed: Answer | undefined;
    try {
      for (const step of steps) {
        const before = await this.read(auth, step.table, step.key);
        const { ReturnValuesOnConditionCheckFailure: returnOld, ...write } = step.op;
        const out =
          step.kind === 'ConditionCheck'
            ? // A write of what is there (or a delete of nothing) under the condition: checks it, changes nothing.
              before
              ? await this.call(auth, 'PutItem', { ...write, Item: before })
              : await this.call(auth, 'DeleteItem', { ...write })
            : await this.call(auth, `${step.kind}Item`, { ...write, ReturnConsumedCapacity: 'TOTAL' });
        if (out.status === 200) {
          applied.push({ ...step, before });
          reasons.push({ Code: 'None' });
          const consumed = out.body.ConsumedCapacity as { CapacityUnits?: number } | undefined;
          // A transactional write costs twice a standard one.
          units.set(step.table, (units.get(step.table) ?? 0) + 2 * (consumed?.CapacityUnits ?? 1));
        } else if (isConditionFailure(out)) {
          reasons.push({
            Code: 'ConditionalCheckFailed',
            Message: 'The conditional request failed',
            ...(returnOld === 'ALL_OLD' && before ? { Item: before } : {}),
          });
        } else {
          failed ??= out;
          reasons.push({ Code: 'ValidationError', Message: String(out.body.message ?? out.body.Message ?? '') });
        }
      }
    } catch (error) {
      // The engine could not be reached mid-way: what was applied is put back before the error is answered.
      await undo();
      throw error;
    }
    if (failed || reasons.some((r) => r.Code !== 'None')) {
      await undo();
      if (failed) return failed;
      const codes = reasons.map((r) => r.Code).join(', ');
      return {
        status: 400,
        body: {
          __type: `${ERROR_PREFIX}TransactionCanceledException`,
          Message: `Transaction cancelled, please refer cancellation reasons for specific reasons [${codes}]`,
          CancellationReasons: reasons,
        },
      };
    }
    const total = params.ReturnConsumedCapacity === 'TOTAL' || params.ReturnConsumedCapacity === 'INDEXES';
    const consumed = [...units].map(([TableName, n]) => ({ TableName, CapacityUnits: n, WriteCapacityUnits: n }));
    return { status: 200, body: total ? { ConsumedCapacity: consumed } : {} };
  }
}

interface Step {
  kind: string;
  op: Json;
  table: string;
  key: AttributeMap;
}

function isConditionFailure(out: Answer): boolean {
  return out.status === 400 && String(out.body.__type).endsWith('#ConditionalCheckFailedException');
}

function validation(message: string): Answer {
  return { status: 400, body: { __type: `${ERROR_PREFIX}ValidationException`, message } };
}

function reply(answer: Answer): { status: number; headers: Record<string, string>; body: string } {
  return {
    status: answer.status,
    headers: { 'content-type': 'application/x-amz-json-1.0' },
    body: JSON.stringify(answer.body),
  };
}
