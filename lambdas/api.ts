// Operator API Lambda, behind a Function URL with IAM (SigV4) auth: device status, offline list, stats, policy
// overrides, mute, decommission. Routing and validation live in core/api.ts; this maps the Function URL event.
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { Context, LambdaFunctionURLEvent, LambdaFunctionURLResult } from 'aws-lambda';
import { DynamoDeviceStore } from './adapters/device-store.js';
import { DynamoSightingLog } from './adapters/shard-log.js';
import type { AdminDeps } from './core/admin.js';
import { type ApiRequest, handleApi, loadApiConfig, MAX_BODY_BYTES } from './core/api.js';
import { notingAdminStore } from './core/batched.js';
import { type Env, loadBatchedEngine } from './core/config.js';
import { type AwsClients, awsClients, logger, once } from './runtime.js';

export function apiDepsFromEnv(env: Env, clients: Pick<AwsClients, 'dynamodb'> = awsClients()): AdminDeps {
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
  };
}

export function toApiRequest(event: LambdaFunctionURLEvent): ApiRequest {
  const raw = event.body ?? undefined;
  // A base64 body is only decoded when it could be within the limit; the core refuses the rest by size.
  const body =
    raw !== undefined && event.isBase64Encoded && raw.length <= (MAX_BODY_BYTES * 4) / 3 + 4
      ? Buffer.from(raw, 'base64').toString('utf8')
      : raw;
  return {
    method: event.requestContext.http.method,
    path: event.rawPath,
    query: event.queryStringParameters ?? {},
    ...(body !== undefined ? { body } : {}),
  };
}

export function apiHandler(deps: () => AdminDeps) {
  return middy<LambdaFunctionURLEvent, LambdaFunctionURLResult, Error, Context>()
    .use(injectLambdaContext(logger))
    .handler(async (event) => {
      const response = await handleApi(toApiRequest(event), deps());
      if (response.status >= 400) logger.warn('request refused', { status: response.status, body: response.body });
      else if (event.requestContext.http.method !== 'GET') {
        // Operator changes are rare and worth an audit line: who (the IAM caller) did what to which device.
        logger.info('operator change', {
          method: event.requestContext.http.method,
          path: event.rawPath,
          caller: (event.requestContext as { authorizer?: { iam?: { userArn?: string } } }).authorizer?.iam?.userArn,
        });
      }
      return {
        statusCode: response.status,
        headers: { 'content-type': 'application/json' },
        ...(response.body !== undefined ? { body: JSON.stringify(response.body) } : {}),
      };
    });
}

export const handler = apiHandler(once(() => apiDepsFromEnv(process.env)));
