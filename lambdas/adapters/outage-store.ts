// The mass-outage incidents (outage.ts) as one control item of the device table, `#outages`, written only by the
// dispatcher's evaluation (once per incident change, never per transition) and read by the publishers.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Incident, OutageStore } from '../core/outage.js';
import { OUTAGES_KEY } from '../core/table-schema.js';
import { VersionedItem } from './versioned-item.js';

export class DynamoOutageStore implements OutageStore {
  private readonly item: VersionedItem<Incident[]>;

  constructor(client: DynamoDBClient, tableName: string) {
    this.item = new VersionedItem(client, tableName, OUTAGES_KEY, []);
  }

  async read(): Promise<{ incidents: Incident[]; version: number }> {
    const { value, version } = await this.item.read();
    return { incidents: value, version };
  }

  write(incidents: Incident[], version: number): Promise<boolean> {
    return this.item.write(incidents, version);
  }
}
