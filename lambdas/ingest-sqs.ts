// SQS ingest Lambda: device messages from the ingest queue into device state.
import { ingestDepsFromEnv, sqsIngestHandler } from './ingest-handler.js';
import { once } from './runtime.js';

export const handler = sqsIngestHandler(once(() => ingestDepsFromEnv(process.env)));
