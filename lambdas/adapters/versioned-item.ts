// One control item of the device table holding a JSON value under a version: reads are strongly consistent, and a
// write applies only while the version is still the one read (optimistic concurrency between writers).
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { KEY } from '../core/table-schema.js';

export class VersionedItem<T> {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    private readonly tableName: string,
    private readonly key: string,
    private readonly empty: T,
  ) {
    this.doc = DynamoDBDocumentClient.from(client);
  }

  /** The value and its version; the empty value at version 0 while the item does not exist. */
  async read(): Promise<{ value: T; version: number }> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { [KEY]: this.key }, ConsistentRead: true }),
    );
    if (!Item) return { value: this.empty, version: 0 };
    return { value: JSON.parse(Item.value as string) as T, version: Number(Item.version) };
  }

  /** False when another writer changed it since `version` was read. */
  async write(value: T, version: number): Promise<boolean> {
    try {
      // An update, not a put: the roles that write control items have UpdateItem only.
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [KEY]: this.key },
          UpdateExpression: 'SET #value = :value, #version = :next',
          ConditionExpression: version === 0 ? 'attribute_not_exists(#version)' : '#version = :version',
          ExpressionAttributeNames: { '#value': 'value', '#version': 'version' },
          ExpressionAttributeValues: {
            ':value': JSON.stringify(value),
            ':next': version + 1,
            ...(version === 0 ? {} : { ':version': version }),
          },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }
}
