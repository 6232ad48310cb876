/** A configuration value that cannot be used. Thrown at cold start so a bad deployment fails loudly, once. */
export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`${setting}: ${message}`);
    this.name = 'ConfigError';
  }
}
