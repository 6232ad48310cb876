import type { RunConsole } from './console.js';
import type { Scenario } from './fleet-model.js';
import type { RunReport } from './report.js';

export async function runVirtual(_options: {
  scenario: Scenario;
  durationMs: number;
  seed: number;
  console: RunConsole;
  signal: AbortSignal;
}): Promise<RunReport> {
  throw new Error('not yet');
}
