// The deployment's probe key (probe.ts) as a control item of the device table: created at random by the first
// dispatch, read once per ingest container. The table is readable by the detector's functions and operators, never by
// producers, who only hold send permissions on the ingest queue or stream.
import { randomBytes } from 'node:crypto';
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { ProbeKeyStore } from '../core/probe.js';
import { KEY, PROBE_KEY_ITEM } from '../core/table-schema.js';

/** How long a container waits before it looks again for a key that did not exist yet. */
const RETRY_MISSING_MS = 10_000;

export class DynamoProbeKey implements ProbeKeyStore {
  private readonly doc: DynamoDBDocumentClient;
  private key?: Uint8Array;
  private missingAt?: number;

  constructor(
    client: DynamoDBClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {
    this.doc = DynamoDBDocumentClient.from(client);
  }

  async get(): Promise<Uint8Array | undefined> {
    if (this.key) return this.key;
    if (this.missingAt !== undefined && this.now() - this.missingAt < RETRY_MISSING_MS) return undefined;
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { [KEY]: PROBE_KEY_ITEM }, ConsistentRead: true }),
    );
    const key = Item?.key;
    if (key instanceof Uint8Array && key.length > 0) this.key = key;
    else this.missingAt = this.now();
    return this.key;
  }

  async getOrCreate(): Promise<Uint8Array> {
    const existing = await this.get();
    if (existing) return existing;
    const key = new Uint8Array(randomBytes(32));
    try {
      // An update, not a put: the dispatcher's role has UpdateItem on the table already.
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [KEY]: PROBE_KEY_ITEM },
          UpdateExpression: 'SET #key = :key',
          ConditionExpression: 'attribute_not_exists(#pk)',
          ExpressionAttributeNames: { '#pk': KEY, '#key': 'key' },
          ExpressionAttributeValues: { ':key': key },
        }),
      );
      this.key = key;
      return key;
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      // Another dispatcher created it first: use theirs.
      this.missingAt = undefined;
      const theirs = await this.get();
      if (!theirs) throw new Error('probe key exists but could not be read');
      return theirs;
    }
  }
}
