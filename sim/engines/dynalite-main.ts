// dynalite and its front (dynalite.ts) as a child process of the local demo, started by engines.ts, so that the
// engine has a core of its own as DynamoDB Local's JVM does: prints its endpoint as the first line of stdout, stops on
// SIGTERM or when the parent's end of stdin closes (the parent died). Ctrl-C is the parent's to handle: it stops the
// engine after its own shutdown.
import { startDynalite } from './dynalite.js';

const engine = await startDynalite();
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await engine.stop();
  process.exit(0);
};
process.on('SIGINT', () => {});
process.once('SIGTERM', stop);
process.stdin.once('close', stop);
process.stdin.resume();
process.stdout.write(`${engine.endpoint}\n`);
