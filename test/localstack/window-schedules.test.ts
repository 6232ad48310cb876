// The EventBridge Scheduler adapter against a real Scheduler API (LocalStack, or AWS): a window's schedules are
// created in a schedule group as the adapter asks, and removed. Runs only with AWS_ENDPOINT_URL set
// (`npm run test:localstack`); test/unit/window-schedules.test.ts checks the calls without an endpoint.
import {
  CreateScheduleGroupCommand,
  DeleteScheduleGroupCommand,
  GetScheduleCommand,
  ResourceNotFoundException,
  SchedulerClient,
} from '@aws-sdk/client-scheduler';
import { describe, expect, it } from 'vitest';
import { EventBridgeWindowSchedules, scheduleName } from '../../lambdas/adapters/window-schedules.js';
import { uniqueName } from '../support/aws.js';

const endpoint = process.env.AWS_ENDPOINT_URL;

describe.skipIf(!endpoint)('EventBridgeWindowSchedules against a Scheduler endpoint', () => {
  it('creates the start and end schedules of a window in the group, and removes them', async () => {
    const client = new SchedulerClient({});
    const groupName = uniqueName('od-maintenance');
    await client.send(new CreateScheduleGroupCommand({ Name: groupName }));
    try {
      const schedules = new EventBridgeWindowSchedules(client, {
        groupName,
        targetArn: 'arn:aws:lambda:us-east-1:000000000000:function:od-dispatch',
        roleArn: 'arn:aws:iam::000000000000:role/od-scheduler',
      });
      const now = Date.now();
      const window = {
        id: 'w1',
        selector: { all: true as const },
        from: now + 86_400_000,
        until: now + 2 * 86_400_000,
        reason: 'test',
        createdAt: now,
        state: 'scheduled' as const,
      };
      await schedules.create(window, now);
      await schedules.create(window, now); // a retried request
      for (const edge of ['start', 'end'] as const) {
        const got = await client.send(new GetScheduleCommand({ Name: scheduleName('w1', edge), GroupName: groupName }));
        expect(got.ScheduleExpression).toMatch(/^at\(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\)$/);
        expect(JSON.parse(got.Target!.Input!)).toEqual({ maintenance: { windowId: 'w1', edge } });
      }
      await schedules.remove('w1');
      await schedules.remove('w1'); // gone already: fine
      await expect(
        client.send(new GetScheduleCommand({ Name: scheduleName('w1', 'start'), GroupName: groupName })),
      ).rejects.toBeInstanceOf(ResourceNotFoundException);
    } finally {
      await client.send(new DeleteScheduleGroupCommand({ Name: groupName }));
    }
  });
});
