import type { IConstruct } from 'constructs';

/** A prop the construct refuses at synth. The message starts with the construct's path, so that an app with several
 * detectors learns which one is misconfigured. (aws-cdk-lib's own ValidationError is internal to the library and
 * keeps the path out of its message.) */
export class ValidationError extends Error {
  /** The path of the construct whose props were refused. */
  readonly constructPath: string;

  constructor(scope: IConstruct, message: string, options?: ErrorOptions) {
    super(`${scope.node.path}: ${message}`, options);
    this.name = 'ValidationError';
    this.constructPath = scope.node.path;
  }
}
