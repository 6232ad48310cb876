#!/usr/bin/env node
// `npx offline-detector …`: the operator CLI. Installed from npm it runs the compiled CLI (dist/bin/cli.js) on plain
// Node with the production dependencies only; in a checkout, where bin/cli.ts sits beside this file, it runs the
// TypeScript source through tsx (a devDependency), so the CLI needs no build there.
import { existsSync } from 'node:fs';

const source = new URL('./cli.ts', import.meta.url);
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import('../dist/bin/cli.js');
}
