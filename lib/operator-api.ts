// The operator API (docs/design.md §8.1): two Lambda Function URLs with IAM (SigV4) auth over one handler, a read one
// (GET routes only, on a role that cannot write) and an admin one (every route).
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';
import type { ApiAccess } from '../lambdas/core/api.js';
import { ENV } from '../lambdas/core/contracts.js';
import { CONTROL_KEY_PREFIX, DEADLINE_INDEX, MAINTENANCE_KEY, OFFLINE_INDEX } from '../lambdas/core/table-schema.js';
import type { DeviceTables } from './device-tables.js';
import type { FunctionFactory } from './function-factory.js';
import type { MaintenanceSchedules } from './maintenance-schedules.js';

export interface OperatorApiProps {
  readonly tables: DeviceTables;
  readonly functions: FunctionFactory;
  /** Reserved concurrency of each function. @default unreserved */
  readonly reservedConcurrency?: number;
  /** How long GET /stats answers from the counts it read last. */
  readonly statsCacheSeconds: number;
  /** Where the admin function schedules maintenance windows' edges. */
  readonly maintenance: MaintenanceSchedules;
}

/** DynamoDB actions on device items: decommission is an update to a tombstone, never a delete; listing and stats
 * query the indexes (grantIndexQuery). */
const TABLE_ACTIONS: Record<ApiAccess, readonly string[]> = {
  admin: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
  read: ['dynamodb:GetItem'],
};

/** Every action that reads or writes items by key: what the API roles are denied on control items. */
const ITEM_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:ConditionCheckItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
];

export class OperatorApi extends Construct {
  /** Every route: status, offline list, stats, override, mute, decommission. */
  readonly adminFunction: nodejs.NodejsFunction;
  /** Its Function URL; callers need `lambda:InvokeFunctionUrl` on `adminFunction` (grantAdmin). */
  readonly adminUrl: lambda.FunctionUrl;
  /** GET routes only, on a role without any write. */
  readonly readFunction: nodejs.NodejsFunction;
  /** Its Function URL; callers need `lambda:InvokeFunctionUrl` on `readFunction` (grantRead). */
  readonly readUrl: lambda.FunctionUrl;

  constructor(scope: Construct, id: string, props: OperatorApiProps) {
    super(scope, id);
    // What both functions read besides what every handler reads.
    const environment = { [ENV.statsCacheSeconds]: String(props.statsCacheSeconds) };
    const admin = this.createApiFunction(props, 'ApiFunction', 'admin', {
      ...environment,
      ...props.maintenance.environment,
    });
    props.maintenance.grantManage(admin.fn);
    this.adminFunction = admin.fn;
    this.adminUrl = admin.url;
    const read = this.createApiFunction(props, 'ApiReadFunction', 'read', environment);
    this.readFunction = read.fn;
    this.readUrl = read.url;
  }

  /** Lets a principal call the read URL: status, offline list, stats. */
  grantRead(grantee: iam.IGrantable): iam.Grant {
    return this.readFunction.grantInvokeUrl(grantee);
  }

  /** Lets a principal call the admin URL: every route, overrides, mutes and decommissions included. */
  grantAdmin(grantee: iam.IGrantable): iam.Grant {
    return this.adminFunction.grantInvokeUrl(grantee);
  }

  private createApiFunction(
    props: OperatorApiProps,
    id: string,
    access: ApiAccess,
    environment: Record<string, string>,
  ): { fn: nodejs.NodejsFunction; url: lambda.FunctionUrl } {
    const fn = props.functions.create(this, id, 'api', {
      description:
        access === 'admin'
          ? 'offline-detector: operator API, admin (status, offline list, stats, override, mute, decommission)'
          : 'offline-detector: operator API, read only (status, offline list, stats)',
      environment: { ...environment, [ENV.apiAccess]: access },
      reservedConcurrentExecutions: props.reservedConcurrency,
    });
    props.tables.grantItems(fn, TABLE_ACTIONS[access]);
    // Notes for the batched engine's sweep, left by changes: the read function makes none.
    if (access === 'admin') props.tables.grantShardItems(fn, ['dynamodb:PutItem']);
    // The offline listing and the offline counts read byOffline; the online counts read byDeadline.
    props.tables.grantIndexQuery(fn, [DEADLINE_INDEX.name, OFFLINE_INDEX.name]);
    // Device items and the maintenance windows only: no operator call reads or writes the watermarks, the probe key
    // or spilled outboxes.
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.DENY,
        actions: ITEM_ACTIONS,
        resources: [props.tables.table.tableArn],
        conditions: {
          'ForAnyValue:StringLike': { 'dynamodb:LeadingKeys': [`${CONTROL_KEY_PREFIX}*`] },
          'ForAnyValue:StringNotEquals': { 'dynamodb:LeadingKeys': [MAINTENANCE_KEY] },
        },
      }),
    );
    // Never open: every call is SigV4-signed by a principal granted lambda:InvokeFunctionUrl.
    return { fn, url: fn.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.AWS_IAM }) };
  }
}
