// A maintenance window's schedules where there is no EventBridge Scheduler (the local runtime of `npm start` and
// `npm run local`, and the CLI pointed at it): kept in a control item of the device table, `#local-schedules`, and
// fired by the runtime, which takes the due ones (`takeDue`) and invokes the dispatcher with each, at the same times
// EventBridge Scheduler would.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { type MaintenanceWindow, type WindowEdge, type WindowSchedules, windowEdges } from '../core/maintenance.js';
import { LOCAL_SCHEDULES_KEY } from '../core/table-schema.js';
import { VersionedItem } from './versioned-item.js';

type Scheduled = { at: number; edge: WindowEdge };

const MAX_ATTEMPTS = 5;

export class TableWindowSchedules implements WindowSchedules {
  private readonly item: VersionedItem<Scheduled[]>;

  constructor(client: DynamoDBClient, tableName: string) {
    this.item = new VersionedItem(client, tableName, LOCAL_SCHEDULES_KEY, []);
  }

  async create(window: MaintenanceWindow, now: number): Promise<void> {
    await this.change((schedules) => [...schedules, ...windowEdges(window, now)]);
  }

  async remove(windowId: string): Promise<void> {
    await this.change((schedules) => schedules.filter((s) => s.edge.windowId !== windowId));
  }

  /** The edges due by `now`, taken off the list (a one-time schedule deletes itself once it fired), oldest first. */
  async takeDue(now: number): Promise<WindowEdge[]> {
    let due: Scheduled[] = [];
    await this.change((schedules) => {
      due = schedules.filter((s) => s.at <= now).sort((a, b) => a.at - b.at);
      return due.length > 0 ? schedules.filter((s) => s.at > now) : undefined;
    });
    return due.map((s) => s.edge);
  }

  private async change(decide: (schedules: Scheduled[]) => Scheduled[] | undefined): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const { value, version } = await this.item.read();
      const next = decide(value);
      if (next === undefined || (await this.item.write(next, version))) return;
    }
    throw new Error('local schedules kept changing');
  }
}
