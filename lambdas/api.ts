// Operator API Lambda, behind a Function URL with IAM (SigV4) auth: device status, offline list, stats, policy
// overrides, mute, decommission. Routing and validation live in core/api.ts; this maps the Function URL event. The
// same code serves the read deployment (API_ACCESS=read: GET routes only) and the admin one.
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import middy from '@middy/core';
import type { Context, LambdaFunctionURLEvent, LambdaFunctionURLResult } from 'aws-lambda';
import { DynamoDeviceStore } from './adapters/device-store.js';
import { DynamoMaintenanceStore } from './adapters/maintenance-store.js';
import { DynamoSightingLog } from './adapters/shard-log.js';
import { EventBridgeWindowSchedules } from './adapters/window-schedules.js';
import {
  type ApiDeps,
  type ApiRequest,
  handleApi,
  loadApiConfig,
  MAX_WINDOW_BODY_BYTES,
  StatsCache,
} from './core/api.js';
import { notingAdminStore } from './core/batched.js';
import { ENV, type Env, loadBatchedEngine, requireString } from './core/config.js';
import { type AwsClients, awsClients, logger, once } from './runtime.js';

export function apiDepsFromEnv(
  env: Env,
  clients: Pick<AwsClients, 'dynamodb'> & { scheduler?: SchedulerClient } = awsClients(),
): ApiDeps {
  const config = loadApiConfig(env);
  const batched = loadBatchedEngine(env);
  const store = new DynamoDeviceStore(clients.dynamodb, { tableName: config.tableName, shardCount: config.shardCount });
  return {
    // On the batched engine an operator's change also leaves a note for the sweep of the device's shard.
    store: batched
      ? notingAdminStore(
          store,
          new DynamoSightingLog(clients.dynamodb, batched.shardTableName, { retentionMs: batched.retentionMs }),
          batched.shardCount,
        )
      : store,
    ...(batched ? { engine: 'batched' as const } : {}),
    deviceTypes: config.deviceTypes,
    housekeepingTtlMs: config.housekeepingTtlMs,
    now: Date.now,
    access: config.access,
    statsCache: new StatsCache(config.statsMaxAgeMs), // one per container, as the deps are
    maintenance: {
      maintenance: new DynamoMaintenanceStore(clients.dynamodb, config.tableName),
      // The read deployment has no scheduler settings and no scheduler permissions: it lists windows only.
      ...(config.access === 'admin' && env[ENV.maintenanceScheduleGroup]
        ? { schedules: windowSchedulesFromEnv(env, clients.scheduler) }
        : {}),
    },
  };
}

function windowSchedulesFromEnv(env: Env, scheduler = new SchedulerClient({})): EventBridgeWindowSchedules {
  return new EventBridgeWindowSchedules(scheduler, {
    groupName: requireString(env, ENV.maintenanceScheduleGroup),
    targetArn: requireString(env, ENV.maintenanceTargetArn),
    roleArn: requireString(env, ENV.maintenanceSchedulerRoleArn),
  });
}

export function toApiRequest(event: LambdaFunctionURLEvent): ApiRequest {
  const raw = event.body ?? undefined;
  // A base64 body is only decoded when it could be within the limit; the core refuses the rest by size.
  const body =
    raw !== undefined && event.isBase64Encoded && raw.length <= (MAX_WINDOW_BODY_BYTES * 4) / 3 + 4
      ? Buffer.from(raw, 'base64').toString('utf8')
      : raw;
  return {
    method: event.requestContext.http.method,
    path: event.rawPath,
    query: event.queryStringParameters ?? {},
    ...(body !== undefined ? { body } : {}),
  };
}

/** Who called: the IAM identity Lambda verified the SigV4 signature of (the Function URL's authorizer context).
 * Never a header or a body field, which any caller may set to anything. */
export interface Caller {
  userArn?: string;
  callerId?: string;
  accountId?: string;
}

export function callerOf(event: LambdaFunctionURLEvent): Caller {
  const iam = (event.requestContext as { authorizer?: { iam?: Record<string, unknown> } }).authorizer?.iam;
  const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);
  const caller: Caller = {};
  const userArn = text(iam?.userArn);
  const callerId = text(iam?.callerId);
  const accountId = text(iam?.accountId);
  if (userArn) caller.userArn = userArn;
  if (callerId) caller.callerId = callerId;
  if (accountId) caller.accountId = accountId;
  return caller;
}

export function apiHandler(deps: () => ApiDeps) {
  return middy<LambdaFunctionURLEvent, LambdaFunctionURLResult, Error, Context>()
    .use(injectLambdaContext(logger))
    .handler(async (event) => {
      const response = await handleApi(toApiRequest(event), deps());
      // Every call, with its caller: an audit of who read or changed what, and who loops on GET /stats.
      const call = {
        method: event.requestContext.http.method,
        path: event.rawPath,
        status: response.status,
        caller: callerOf(event),
      };
      if (response.status >= 400) logger.warn('api call refused', { ...call, body: response.body });
      else logger.info('api call', call);
      return {
        statusCode: response.status,
        headers: { 'content-type': 'application/json' },
        ...(response.body !== undefined ? { body: JSON.stringify(response.body) } : {}),
      };
    });
}

export const handler = apiHandler(once(() => apiDepsFromEnv(process.env)));
