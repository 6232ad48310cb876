// Placeholder until the dispatch handler lands (issue 3); exists so the infrastructure can bundle and wire it.
export const handler = async (): Promise<void> => {
  throw new Error('dispatch handler not implemented yet');
};
