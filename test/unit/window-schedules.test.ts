// The EventBridge Scheduler adapter against the SDK contract: the calls it makes and their inputs (no emulator runs
// Scheduler here; test/localstack/window-schedules.test.ts runs it against an endpoint given by AWS_ENDPOINT_URL).
import {
  ConflictException,
  CreateScheduleCommand,
  DeleteScheduleCommand,
  ResourceNotFoundException,
  SchedulerClient,
} from '@aws-sdk/client-scheduler';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { atExpression, EventBridgeWindowSchedules } from '../../lambdas/adapters/window-schedules.js';
import type { MaintenanceWindow } from '../../lambdas/core/maintenance.js';

const scheduler = mockClient(SchedulerClient);
const options = {
  groupName: 'od-maintenance',
  targetArn: 'arn:aws:lambda:eu-west-1:123456789012:function:od-dispatch',
  roleArn: 'arn:aws:iam::123456789012:role/od-scheduler',
};
const NOW = Date.parse('2026-12-01T12:00:00.000Z');
const window = (from: number, until?: number): MaintenanceWindow => ({
  id: 'w-1',
  selector: { all: true },
  from,
  ...(until !== undefined ? { until } : {}),
  reason: '',
  createdAt: NOW,
  state: from > NOW ? 'scheduled' : 'active',
});

beforeEach(() => scheduler.reset());

describe('EventBridgeWindowSchedules', () => {
  it('creates one-time schedules at the start and the end that invoke the dispatcher and delete themselves', async () => {
    const schedules = new EventBridgeWindowSchedules(new SchedulerClient({}), options);
    await schedules.create(window(NOW + 3_600_000, NOW + 7_200_000 + 1), NOW);
    const calls = scheduler.commandCalls(CreateScheduleCommand).map((call) => call.args[0].input);
    expect(calls).toEqual([
      expect.objectContaining({
        Name: 'maintenance-w-1-start',
        GroupName: 'od-maintenance',
        ScheduleExpression: 'at(2026-12-01T13:00:00)',
        ScheduleExpressionTimezone: 'UTC',
        FlexibleTimeWindow: { Mode: 'OFF' },
        ActionAfterCompletion: 'DELETE',
        Target: expect.objectContaining({
          Arn: options.targetArn,
          RoleArn: options.roleArn,
          Input: JSON.stringify({ maintenance: { windowId: 'w-1', edge: 'start' } }),
        }),
      }),
      expect.objectContaining({
        Name: 'maintenance-w-1-end',
        // Rounded up: never before the window's end.
        ScheduleExpression: 'at(2026-12-01T14:00:01)',
        Target: expect.objectContaining({ Input: JSON.stringify({ maintenance: { windowId: 'w-1', edge: 'end' } }) }),
      }),
    ]);
  });

  it('a window already started needs no start schedule, an open-ended one no end schedule', async () => {
    const schedules = new EventBridgeWindowSchedules(new SchedulerClient({}), options);
    await schedules.create(window(NOW), NOW);
    expect(scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(0);
  });

  it('a schedule that exists already (a retried request) is fine; other errors fail the call', async () => {
    const schedules = new EventBridgeWindowSchedules(new SchedulerClient({}), options);
    scheduler
      .on(CreateScheduleCommand)
      .rejects(new ConflictException({ Message: 'exists', message: 'exists', $metadata: {} }));
    await expect(schedules.create(window(NOW + 1_000, NOW + 2_000), NOW)).resolves.toBeUndefined();
    scheduler.on(CreateScheduleCommand).rejects(new Error('throttled'));
    await expect(schedules.create(window(NOW + 1_000, NOW + 2_000), NOW)).rejects.toThrow('throttled');
  });

  it('removes both schedules; ones that fired (and deleted themselves) or never existed are fine', async () => {
    const schedules = new EventBridgeWindowSchedules(new SchedulerClient({}), options);
    scheduler
      .on(DeleteScheduleCommand, { Name: 'maintenance-w-1-start' })
      .rejects(new ResourceNotFoundException({ Message: 'gone', message: 'gone', $metadata: {} }));
    await schedules.remove('w-1');
    expect(scheduler.commandCalls(DeleteScheduleCommand).map((call) => call.args[0].input)).toEqual([
      { Name: 'maintenance-w-1-start', GroupName: 'od-maintenance' },
      { Name: 'maintenance-w-1-end', GroupName: 'od-maintenance' },
    ]);
    scheduler.on(DeleteScheduleCommand).rejects(new Error('access denied'));
    await expect(schedules.remove('w-1')).rejects.toThrow('access denied');
  });

  it('at() is UTC to the second', () => {
    expect(atExpression(Date.parse('2027-01-02T03:04:05.000Z'))).toBe('at(2027-01-02T03:04:05)');
    expect(atExpression(Date.parse('2027-01-02T03:04:05.001Z'))).toBe('at(2027-01-02T03:04:06)');
  });
});
