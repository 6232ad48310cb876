// The maintenance windows (maintenance.ts) as one control item of the device table, `#maintenance`: one item, so the
// sweep reads them all with one strongly consistent read per job; at most MAX_WINDOWS of a few hundred bytes each.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { MaintenanceStore, MaintenanceWindow } from '../core/maintenance.js';
import { MAINTENANCE_KEY } from '../core/table-schema.js';
import { VersionedItem } from './versioned-item.js';

export class DynamoMaintenanceStore implements MaintenanceStore {
  private readonly item: VersionedItem<MaintenanceWindow[]>;

  constructor(client: DynamoDBClient, tableName: string) {
    this.item = new VersionedItem(client, tableName, MAINTENANCE_KEY, []);
  }

  async read(): Promise<{ windows: MaintenanceWindow[]; version: number }> {
    const { value, version } = await this.item.read();
    return { windows: value, version };
  }

  write(windows: MaintenanceWindow[], version: number): Promise<boolean> {
    return this.item.write(windows, version);
  }
}
