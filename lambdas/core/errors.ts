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

/** Why an operator API request was refused; each maps to an HTTP status (API_ERROR_STATUS). */
export type ApiErrorCode =
  | 'no-route'
  | 'method-not-allowed'
  | 'read-only'
  | 'body-too-large'
  | 'bad-json'
  | 'unknown-field'
  | 'missing-field'
  | 'bad-device-id'
  | 'bad-duration'
  | 'bad-time'
  | 'bad-query'
  | 'bad-cursor'
  | 'bad-selector'
  | 'unknown-device-type'
  | 'not-found'
  | 'conflict';

export const API_ERROR_STATUS: Record<ApiErrorCode, number> = {
  'no-route': 404,
  'method-not-allowed': 405,
  'read-only': 403,
  'body-too-large': 413,
  'bad-json': 400,
  'unknown-field': 400,
  'missing-field': 400,
  'bad-device-id': 400,
  'bad-duration': 400,
  'bad-time': 400,
  'bad-selector': 400,
  'bad-query': 400,
  'bad-cursor': 400,
  'unknown-device-type': 400,
  'not-found': 404,
  conflict: 409,
};

/** A refused operator request: nothing was changed. */
export class ApiError extends Error {
  constructor(
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get status(): number {
    return API_ERROR_STATUS[this.code];
  }
}
