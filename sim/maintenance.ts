// Maintenance windows in the local runs, where there is no EventBridge Scheduler: a scenario's windows are opened
// through the API core (POST /maintenance, as `npx offline-detector maintenance add --endpoint … --table …` does),
// their one-time schedules wait in the device table (lambdas/adapters/table-schedules.ts), and the runtime fires the
// due ones at the dispatcher at their times: the live runtime by the wall clock (also the windows the CLI adds), the
// simulator by its virtual clock.
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { TableWindowSchedules } from '../lambdas/adapters/table-schedules.js';
import { apiDepsFromEnv } from '../lambdas/api.js';
import { type ApiDeps, handleApi } from '../lambdas/core/api.js';
import { ENV, type Env, requireString } from '../lambdas/core/config.js';
import type { MaintenanceWindow, Selector, WindowEdge } from '../lambdas/core/maintenance.js';
import type { Fleet, PlannedWindow } from './fleet.js';
import type { Truth } from './truth.js';

/** What EventBridge Scheduler delivers to the dispatcher at a window's edge. */
export type WindowEdgeEvent = { maintenance: WindowEdge };

export class LocalMaintenance {
  private readonly schedules: TableWindowSchedules;
  private readonly api: ApiDeps;

  constructor(
    env: Env,
    dynamodb: DynamoDBClient,
    private readonly now: () => number,
  ) {
    this.schedules = new TableWindowSchedules(dynamodb, requireString(env, ENV.tableName));
    const deps = apiDepsFromEnv(env, { dynamodb });
    this.api = { ...deps, now, maintenance: { ...deps.maintenance!, schedules: this.schedules } };
  }

  /** POST /maintenance: a window from now until `until` (epoch ms). */
  private async open(selector: Selector, until: number, reason: string): Promise<MaintenanceWindow> {
    const response = await handleApi(
      { method: 'POST', path: '/maintenance', query: {}, body: JSON.stringify({ selector, until, reason }) },
      this.api,
    );
    if (response.status !== 201)
      throw new Error(`POST /maintenance: ${response.status} ${JSON.stringify(response.body)}`);
    return response.body as MaintenanceWindow;
  }

  /** Opens a scenario's window now, for as long as it plans, and tells the judge which devices it covers (by the
   * scenario's selector, not the API's answer). */
  async openPlanned(
    planned: PlannedWindow,
    fleet: Fleet,
    truth: Truth,
  ): Promise<{ from: number; until: number; devices: number }> {
    const window = await this.open(planned.selector, this.now() + planned.to - planned.from, planned.group);
    const devices = fleet.group(planned.selector);
    truth.maintenance({ from: window.from, until: window.until!, devices });
    return { from: window.from, until: window.until!, devices: devices.size };
  }

  /** Hands the schedules due by `now` to the dispatcher, oldest first, as EventBridge Scheduler would invoke it. */
  async fireDue(now: number, dispatch: (event: WindowEdgeEvent) => Promise<unknown>): Promise<WindowEdge[]> {
    const due = await this.schedules.takeDue(now);
    for (const edge of due) await dispatch({ maintenance: edge });
    return due;
  }
}
