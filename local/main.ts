// Entry of `npm start`, `npm run local` and `npm run simulate`. The first import sets the handlers' environment
// before any module that loads a handler is evaluated (sim/handler-env.ts).
import '../sim/handler-env.js';
import { main } from './cli.js';

process.exitCode = await main(process.argv.slice(2));
