// Entry of `npm start`, `npm run local` and `npm run simulate`. The handlers' Powertools logger and metrics are
// created when their modules load, so their settings go into the environment before anything imports them: the
// handlers run as in Lambda, but their log and EMF lines would drown the run's own output.
process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
process.env.AWS_REGION ??= 'us-east-1';
// Powertools warns on every invocation that adds no metric even with metrics disabled; locally that is noise.
const warn = console.warn;
console.warn = (...args: unknown[]) => {
  if (!String(args[0]).startsWith('No application metrics')) warn(...args);
};

const { main } = await import('./cli.js');
process.exitCode = await main(process.argv.slice(2));
