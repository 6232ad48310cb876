// Every handler bundles the way the construct bundles it (esbuild, ESM, the createRequire banner) and the bundle,
// imported, exports `handler`. Importing must need no AWS call and no configuration.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { ESM_BANNER, HANDLER_ENTRIES, LAMBDAS_DIR } from '../../lib/function-factory.js';

const outDir = mkdtempSync(path.join(tmpdir(), 'od-bundles-'));
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

describe('handler bundles', () => {
  it.each(Object.entries(HANDLER_ENTRIES))('%s (%s) builds and exports handler', async (name, entry) => {
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    process.env.AWS_REGION ??= 'us-east-1';
    const outfile = path.join(outDir, name, 'index.mjs');
    const result = await build({
      entryPoints: [path.join(LAMBDAS_DIR, entry)],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node22',
      mainFields: ['module', 'main'],
      banner: { js: ESM_BANNER },
      minify: true,
      logLevel: 'silent',
    });
    expect(result.errors).toEqual([]);
    const mod = (await import(pathToFileURL(outfile).href)) as { handler?: unknown };
    expect(typeof mod.handler).toBe('function');
  });
});
