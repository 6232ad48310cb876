// `npx cdk synth` of the app (cdk.json) works offline and without AWS credentials, bundling every handler.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const outDir = mkdtempSync(path.join(tmpdir(), 'od-cdk-out-'));
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

describe('cdk synth', () => {
  // ≈5 s on an idle machine; generous limits because CI may run it beside the other suites.
  it('synthesizes the app with no credentials and no network', { timeout: 120_000 }, () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      AWS_EC2_METADATA_DISABLED: 'true',
      CDK_DISABLE_CLI_TELEMETRY: 'true',
    };
    for (const name of Object.keys(env)) {
      if (/^AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN|PROFILE|ENDPOINT_URL)/.test(name)) delete env[name];
    }
    const cdk = path.join(root, 'node_modules', '.bin', 'cdk');
    const run = spawnSync(cdk, ['synth', '-q', '--no-notices', '--no-version-reporting', '-o', outDir], {
      cwd: root,
      env,
      encoding: 'utf8',
      timeout: 110_000,
    });
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);

    const template = JSON.parse(readFileSync(path.join(outDir, 'OfflineDetector.template.json'), 'utf8')) as {
      Resources: Record<
        string,
        { Type: string; Properties: { Code?: unknown; Environment?: { Variables: Record<string, string> } } }
      >;
    };
    const fns = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Function');
    expect(fns.length).toBeGreaterThanOrEqual(3);
    // cdk.json's context reached the functions.
    expect(JSON.parse(fns[0]!.Properties.Environment!.Variables.DEVICE_TYPES!)).toHaveProperty('tracker');
    const assets = JSON.parse(readFileSync(path.join(outDir, 'OfflineDetector.assets.json'), 'utf8')) as {
      files: Record<string, { source: { path: string } }>;
    };
    const bundles = Object.values(assets.files).filter((f) => f.source.path.startsWith('asset.'));
    // One bundle per handler: the read and admin API functions run the same one.
    expect(bundles).toHaveLength(new Set(fns.map((f) => JSON.stringify(f.Properties.Code))).size);
    expect(bundles.length).toBeGreaterThanOrEqual(3);
    for (const b of bundles) expect(existsSync(path.join(outDir, b.source.path, 'index.mjs'))).toBe(true);
  });
});
