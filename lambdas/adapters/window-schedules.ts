// A maintenance window's start and end as one-time EventBridge Scheduler schedules in the detector's schedule group,
// each invoking the dispatch function with `{"maintenance": {"windowId", "edge"}}` (maintenance.ts `WindowEdge`) and
// deleting itself once it has fired.
import {
  ConflictException,
  CreateScheduleCommand,
  DeleteScheduleCommand,
  ResourceNotFoundException,
  type SchedulerClient,
} from '@aws-sdk/client-scheduler';
import { type MaintenanceWindow, type WindowEdge, type WindowSchedules, windowEdges } from '../core/maintenance.js';

export interface WindowSchedulesOptions {
  groupName: string;
  /** The function the schedules invoke (the dispatcher). */
  targetArn: string;
  /** The role EventBridge Scheduler assumes to invoke it. */
  roleArn: string;
}

const EDGES = ['start', 'end'] as const;

export class EventBridgeWindowSchedules implements WindowSchedules {
  constructor(
    private readonly scheduler: SchedulerClient,
    private readonly options: WindowSchedulesOptions,
  ) {}

  async create(window: MaintenanceWindow, now: number): Promise<void> {
    for (const { at, edge } of windowEdges(window, now)) {
      try {
        await this.scheduler.send(
          new CreateScheduleCommand({
            Name: scheduleName(window.id, edge.edge),
            GroupName: this.options.groupName,
            ScheduleExpression: atExpression(at),
            ScheduleExpressionTimezone: 'UTC',
            FlexibleTimeWindow: { Mode: 'OFF' },
            ActionAfterCompletion: 'DELETE',
            Description: `maintenance window ${window.id}: ${edge.edge}`,
            Target: {
              Arn: this.options.targetArn,
              RoleArn: this.options.roleArn,
              Input: JSON.stringify({ maintenance: edge }),
              RetryPolicy: { MaximumRetryAttempts: 10, MaximumEventAgeInSeconds: 86_400 },
            },
          }),
        );
      } catch (error) {
        // A retried request that created it already.
        if (!(error instanceof ConflictException)) throw error;
      }
    }
  }

  async remove(windowId: string): Promise<void> {
    for (const edge of EDGES) {
      try {
        await this.scheduler.send(
          new DeleteScheduleCommand({ Name: scheduleName(windowId, edge), GroupName: this.options.groupName }),
        );
      } catch (error) {
        // Never created (a start in the past, no end), or fired and deleted itself.
        if (!(error instanceof ResourceNotFoundException)) throw error;
      }
    }
  }
}

export function scheduleName(windowId: string, edge: WindowEdge['edge']): string {
  return `maintenance-${windowId}-${edge}`;
}

/** `at(yyyy-mm-ddThh:mm:ss)` in UTC, rounded up to the second: a schedule never fires before its time. */
export function atExpression(epochMs: number): string {
  return `at(${new Date(Math.ceil(epochMs / 1000) * 1000).toISOString().slice(0, 19)})`;
}
