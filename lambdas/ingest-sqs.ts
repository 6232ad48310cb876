// Placeholder until the ingest-sqs handler lands (issue 2).
export const handler = async (): Promise<void> => {
  throw new Error('ingest-sqs handler not implemented yet');
};
