// The maintenance windows (maintenance.ts) as one control item of the device table, `#maintenance`: the windows as
// JSON and a version that every write is conditional on. One item, so the sweep reads them all with one strongly
// consistent read per job; at most MAX_WINDOWS of a few hundred bytes each.
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { MaintenanceStore, MaintenanceWindow } from '../core/maintenance.js';
import { KEY, MAINTENANCE_KEY } from '../core/table-schema.js';

export class DynamoMaintenanceStore implements MaintenanceStore {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    private readonly tableName: string,
  ) {
    this.doc = DynamoDBDocumentClient.from(client);
  }

  async read(): Promise<{ windows: MaintenanceWindow[]; version: number }> {
    const { Item } = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { [KEY]: MAINTENANCE_KEY }, ConsistentRead: true }),
    );
    if (!Item) return { windows: [], version: 0 };
    return { windows: JSON.parse(Item.windows as string) as MaintenanceWindow[], version: Number(Item.version) };
  }

  async write(windows: MaintenanceWindow[], version: number): Promise<boolean> {
    try {
      // An update, not a put: the roles that write control items have UpdateItem only.
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [KEY]: MAINTENANCE_KEY },
          UpdateExpression: 'SET #w = :w, #v = :next',
          ConditionExpression: version === 0 ? 'attribute_not_exists(#v)' : '#v = :v',
          ExpressionAttributeNames: { '#w': 'windows', '#v': 'version' },
          ExpressionAttributeValues: {
            ':w': JSON.stringify(windows),
            ':next': version + 1,
            ...(version === 0 ? {} : { ':v': version }),
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
