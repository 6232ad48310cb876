// Kinesis ingest Lambda: device messages from the ingest stream into device state.
import { ingestDepsFromEnv, kinesisIngestHandler } from './ingest-handler.js';
import { once } from './runtime.js';

export const handler = kinesisIngestHandler(once(() => ingestDepsFromEnv(process.env)));
