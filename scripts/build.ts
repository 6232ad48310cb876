// `npm run build` (also run by `npm pack` and `npm publish`): the package as published, in dist/.
// - tsc compiles the package's entries (tsconfig.build.json: lib/index.ts, lib/events.ts, bin/cli.ts) and what they
//   import to JavaScript with type declarations: dist/lib, dist/lambdas, dist/bin.
// - esbuild bundles every handler exactly as the construct's NodejsFunction bundles it from a checkout (ESM, node22,
//   minified, source map, the AWS SDK inside) into dist/handlers/<name>/index.mjs. The installed construct deploys
//   these as they are, so a consumer needs no esbuild and no Docker.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { ESM_BANNER, HANDLER_ENTRIES, LAMBDAS_DIR } from '../lib/function-factory.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const started = Date.now();

rmSync(dist, { recursive: true, force: true });

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], {
  cwd: root,
  stdio: 'inherit',
});
if (compiled.status !== 0) {
  console.error('build: tsc failed');
  process.exit(1);
}

await Promise.all(
  Object.values(HANDLER_ENTRIES).map((entry) =>
    build({
      entryPoints: [path.join(LAMBDAS_DIR, entry)],
      outfile: path.join(dist, 'handlers', path.basename(entry, '.ts'), 'index.mjs'),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node22',
      mainFields: ['module', 'main'],
      banner: { js: ESM_BANNER },
      minify: true,
      sourcemap: true,
      logLevel: 'warning',
    }),
  ),
);

console.log(
  `build: dist/ (lib, lambdas, bin; handlers: ${Object.keys(HANDLER_ENTRIES).length}) in ${Date.now() - started} ms`,
);
