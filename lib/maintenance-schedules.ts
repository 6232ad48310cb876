// Maintenance windows' schedules (docs/design.md §8.9): the schedule group the admin API creates each window's
// one-time start and end schedules in, and the role EventBridge Scheduler assumes to invoke the dispatcher with them.
import { Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import { Construct } from 'constructs';
import { ENV } from '../lambdas/core/contracts.js';

export interface MaintenanceSchedulesProps {
  /** What the schedules invoke: the dispatcher, which moves a window along at its edges. */
  readonly target: lambda.IFunction;
}

export class MaintenanceSchedules extends Construct {
  readonly scheduleGroup: scheduler.ScheduleGroup;
  /** Assumed by EventBridge Scheduler for this group's schedules only; may invoke the target and nothing else. */
  readonly schedulerRole: iam.Role;
  /** What the admin API needs to create schedules here. */
  readonly environment: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: MaintenanceSchedulesProps) {
    super(scope, id);
    const stack = Stack.of(this);
    this.scheduleGroup = new scheduler.ScheduleGroup(this, 'Group');
    this.schedulerRole = new iam.Role(this, 'SchedulerRole', {
      description: 'offline-detector: EventBridge Scheduler invokes the dispatcher at maintenance windows edges',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        // Scheduler names the schedule group as the source: only this group's schedules may use the role.
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account, 'aws:SourceArn': this.scheduleGroup.scheduleGroupArn },
        },
      }),
    });
    props.target.grantInvoke(this.schedulerRole);
    this.environment = {
      [ENV.maintenanceScheduleGroup]: this.scheduleGroup.scheduleGroupName,
      [ENV.maintenanceTargetArn]: props.target.functionArn,
      [ENV.maintenanceSchedulerRoleArn]: this.schedulerRole.roleArn,
    };
    const policy = this.schedulerRole.node.tryFindChild('DefaultPolicy')?.node.defaultChild;
    if (policy) {
      const targetId = stack.getLogicalId(props.target.node.defaultChild as lambda.CfnFunction);
      Validations.of(policy).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${targetId}.Arn>:*]`,
        reason: 'Scheduler may invoke the dispatch function and its versions/aliases: one function, nothing else.',
      });
    }
  }

  /** Lets the admin API create and delete schedules in this group (and no other), handing them this role only. */
  grantManage(fn: lambda.IFunction): void {
    iam.Grant.addToPrincipal({
      grantee: fn,
      actions: ['scheduler:CreateSchedule', 'scheduler:DeleteSchedule'],
      resourceArns: [this.scheduleArns()],
    });
    iam.Grant.addToPrincipal({
      grantee: fn,
      actions: ['iam:PassRole'],
      resourceArns: [this.schedulerRole.roleArn],
      conditions: { StringEquals: { 'iam:PassedToService': 'scheduler.amazonaws.com' } },
    });
    const policy = fn.role?.node.tryFindChild('DefaultPolicy')?.node.defaultChild;
    if (policy) {
      Validations.of(policy).acknowledge({
        id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:<AWS::Region>:<AWS::AccountId>:schedule/${this.scheduleGroup.scheduleGroupName}/*]`,
        reason:
          "A maintenance window's schedules are named by its id at run time: every schedule of the detector's own " +
          'group, and only create and delete.',
      });
    }
  }

  /** Every schedule of the group: a window's are named by its id at run time. */
  private scheduleArns(): string {
    return Stack.of(this).formatArn({
      service: 'scheduler',
      resource: 'schedule',
      resourceName: `${this.scheduleGroup.scheduleGroupName}/*`,
    });
  }
}
