// Placeholder until the sweep handler lands (issue 3); exists so the infrastructure can bundle and wire it.
export const handler = async (): Promise<void> => {
  throw new Error('sweep handler not implemented yet');
};
