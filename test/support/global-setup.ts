// Starts the embedded engines once per test run (or uses AWS_ENDPOINT_URL, e.g. LocalStack) and hands
// their endpoints to the test files through vitest's provide/inject.
import type { TestProject } from 'vitest/node';
import { type Endpoints, startEngines } from '../../sim/engines/engines.js';

declare module 'vitest' {
  export interface ProvidedContext {
    endpoints: Endpoints;
  }
}

export default async function setup(project: TestProject) {
  const external = process.env.AWS_ENDPOINT_URL;
  if (external) {
    project.provide('endpoints', { dynamodb: external, sqs: external, sns: external, kinesis: external });
    return;
  }
  const engines = await startEngines({ kinesis: process.env.OD_TEST_KINESIS !== 'false' });
  project.provide('endpoints', engines.endpoints);
  return () => engines.stop();
}
