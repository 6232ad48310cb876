// Imported first by the programs that run the real handlers in-process (local/main.ts, bench/run.ts,
// bench/ingest.ts), before anything imports a handler: the handlers' Powertools logger and metrics are created when
// their modules load and read these settings then. The handlers run as in Lambda, but their log and EMF lines would
// drown the run's own output.
process.env.POWERTOOLS_LOG_LEVEL ??= 'SILENT';
process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
process.env.AWS_REGION ??= 'us-east-1';
// Powertools warns on every invocation that adds no metric even with metrics disabled; locally that is noise. Its
// dev mode has it write through the global console (else its own), where this filter sees the warning.
process.env.POWERTOOLS_DEV ??= 'true';
const warn = console.warn;
console.warn = (...args: unknown[]) => {
  if (!String(args[0]).startsWith('No application metrics')) warn(...args);
};
