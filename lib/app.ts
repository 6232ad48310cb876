// The app `npx cdk deploy` runs (cdk.json). Configure it with context: see README.md, "Deploy to AWS".
import { App } from 'aws-cdk-lib';
import { OfflineDetectorStack } from './offline-detector-stack.js';

const app = new App();
const stackName = app.node.tryGetContext('stackName') ?? 'OfflineDetector';
new OfflineDetectorStack(app, stackName, {
  // Account and region of the CLI's credentials when there are any; an environment-agnostic stack otherwise, so
  // `cdk synth` works offline with no credentials.
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  description: 'offline-detector: fleet-scale IoT device offline/online detection',
});
app.synth();
