// Placeholder until the ingest-kinesis handler lands (issue 2).
export const handler = async (): Promise<void> => {
  throw new Error('ingest-kinesis handler not implemented yet');
};
