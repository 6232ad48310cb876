#!/usr/bin/env node
// `npx offline-detector …`: the operator CLI (bin/cli.ts), run through tsx so the TypeScript sources need no build.
import { register } from 'tsx/esm/api';

register();
await import('./cli.ts');
