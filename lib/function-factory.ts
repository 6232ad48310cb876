// Every function of the detector is built here, one way: the handler's bundle, its own role and log group, the
// memory and timeout of the contract, the environment every handler reads, and the cdk-nag acknowledgement every
// function needs.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, type RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import {
  type Deployment,
  EMITTED,
  type FunctionName,
  functionSpec,
  METRICS_NAMESPACE,
} from '../lambdas/core/contracts.js';

export const LAMBDAS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'lambdas');
const PROJECT_ROOT = path.resolve(LAMBDAS_DIR, '..');

/** Lets CommonJS dependencies that call `require` (some AWS packages do) run inside the ESM bundle. */
export const ESM_BANNER = "import { createRequire } from 'module'; const require = createRequire(import.meta.url);";

/** The handler file of each function, in lambdas/ (each exports `handler`). */
export const HANDLER_ENTRIES = {
  ingestSqs: 'ingest-sqs.ts',
  ingestKinesis: 'ingest-kinesis.ts',
  dispatch: 'dispatch.ts',
  sweep: 'sweep.ts',
  api: 'api.ts',
} as const satisfies Record<FunctionName, string>;

/** The installed package's handlers, bundled by `npm run build` (scripts/build.ts) into dist/handlers/<name>/,
 * beside dist/lib: found only when this file runs from the built package, which then deploys them as they are (no
 * esbuild, no Docker on the consumer's side). From a checkout the handlers are bundled from lambdas/ at synth. */
function prebuiltHandler(entry: string): { code: lambda.Code; handler: string } | undefined {
  const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'handlers', path.basename(entry, '.ts'));
  return existsSync(path.join(dir, 'index.mjs'))
    ? { code: lambda.Code.fromAsset(dir), handler: 'index.handler' }
    : undefined;
}

export interface FunctionFactoryProps {
  /** What the functions' memory and timeouts depend on (functionSpec). */
  readonly deployment: Deployment;
  /** The variables every handler reads. */
  readonly environment: Readonly<Record<string, string>>;
  readonly logRetention: logs.RetentionDays;
  /** Of the log groups. */
  readonly removalPolicy: RemovalPolicy;
}

/** What one function adds to what the factory gives every function. */
export interface DetectorFunctionOptions {
  readonly description: string;
  /** Its own variables, besides those every handler reads. */
  readonly environment?: Readonly<Record<string, string>>;
  /** @default unreserved */
  readonly reservedConcurrentExecutions?: number;
}

export class FunctionFactory {
  /** The log group of every function created, in order. */
  readonly logGroups: logs.LogGroup[] = [];

  constructor(private readonly props: FunctionFactoryProps) {}

  /** The timeout a function deploys with, for what is sized from it (a queue's visibility timeout). */
  timeout(name: FunctionName): Duration {
    return Duration.seconds(functionSpec(name, this.props.deployment).timeoutSeconds);
  }

  /** The handler of `name`, as construct `id` in `scope`, with its log group `<id>Logs` and role `<id>Role` beside it. */
  create(scope: Construct, id: string, name: FunctionName, options: DetectorFunctionOptions): nodejs.NodejsFunction {
    const spec = functionSpec(name, this.props.deployment);
    const entry = HANDLER_ENTRIES[name];
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: this.props.logRetention,
      removalPolicy: this.props.removalPolicy,
    });
    this.logGroups.push(logGroup);
    // An own role whose only log permissions are this function's log group, instead of the managed
    // AWSLambdaBasicExecutionRole (logs:* on every log group).
    const role = new iam.Role(scope, `${id}Role`, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    logGroup.grantWrite(role);
    const fn = new nodejs.NodejsFunction(scope, id, {
      entry: path.join(LAMBDAS_DIR, entry),
      handler: 'handler',
      ...prebuiltHandler(entry),
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      timeout: Duration.seconds(spec.timeoutSeconds),
      memorySize: spec.memoryMb,
      description: options.description,
      environment: {
        ...this.props.environment,
        ...options.environment,
        POWERTOOLS_SERVICE_NAME: spec.service,
        // Only where metrics are emitted (the operator API emits none).
        ...(EMITTED[spec.service].length > 0 ? { POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE } : {}),
        NODE_OPTIONS: '--enable-source-maps',
      },
      ...(options.reservedConcurrentExecutions !== undefined
        ? { reservedConcurrentExecutions: options.reservedConcurrentExecutions }
        : {}),
      role,
      logGroup,
      bundling: {
        format: nodejs.OutputFormat.ESM,
        target: 'node22',
        platform: 'node',
        mainFields: ['module', 'main'],
        banner: ESM_BANNER,
        minify: true,
        sourceMap: true,
        // Ship the SDK versions the tests ran against rather than whatever the runtime happens to carry.
        bundleAwsSDK: true,
        forceDockerBundling: false,
      },
    });
    Validations.of(fn.node.defaultChild as lambda.CfnFunction).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'nodejs22.x is the runtime the project is built and tested for; a runtime upgrade is a deliberate, tested ' +
        'change, not an automatic one.',
    });
    return fn;
  }
}
