#!/usr/bin/env bash
# Deploys the OfflineDetector stack into LocalStack with cdklocal (LocalStack running: `docker compose up -d --wait`).
# The context below makes the end-to-end test quick: a 30 s device type, a 5 s sweep tick, few shards, an SQS source,
# and resources that are destroyed with the stack. Extra arguments go to `cdklocal deploy` (e.g. -c kinesis=on-demand).
set -euo pipefail
cd "$(dirname "$0")/../.."

export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://localhost:4566}"
# cdklocal recognises S3 requests by a `.s3.` host; this name resolves to 127.0.0.1.
export AWS_ENDPOINT_URL_S3="${AWS_ENDPOINT_URL_S3:-http://s3.localhost.localstack.cloud:4566}"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_REGION:-us-east-1}"
export AWS_ENVAR_ALLOWLIST=AWS_REGION,AWS_DEFAULT_REGION,AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY
export CDK_DISABLE_CLI_TELEMETRY=true

context=(
  -c stackName=OfflineDetector
  -c removalPolicy=destroy
  -c 'deviceTypes={"e2e":{"timeoutMs":30000,"precisionMs":0,"heartbeatMs":5000}}'
  -c defaultDeviceType=e2e
  -c sweepTickSeconds=5
  -c watermarkToleranceMs=15000
  -c shardCount=4
)
outputs=.local/localstack/outputs.json
mkdir -p "$(dirname "$outputs")"

npx cdklocal bootstrap --no-notices "${context[@]}"
npx cdklocal deploy OfflineDetector --no-notices --require-approval never "${context[@]}" --outputs-file "$outputs" "$@"
echo "Stack outputs in $outputs"
