/**
 * The project's error hierarchy. Every error the engine raises is a
 * {@link PatcherError} with a stable string `code`; a foreign error is wrapped
 * once, at the boundary where it enters, and passed on unchanged after that.
 *
 * Messages name the field or object that is wrong and what was expected. They
 * never contain a credential: callers pass paths and names, never values.
 */
export class PatcherError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The configuration file or an invoke payload is invalid. */
export class ConfigError extends PatcherError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CONFIG_INVALID', message, options);
  }
}

/** A credential source could not be read or does not hold a valid docker config. */
export class SourceError extends PatcherError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('SOURCE_INVALID', message, options);
  }
}

/** A cluster could not be reached or authenticated against. */
export class ClusterAccessError extends PatcherError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CLUSTER_ACCESS', message, options);
  }
}

/** The run stopped early (deadline reached or interrupted); the report says what was left. */
export class DeadlineError extends PatcherError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DEADLINE', message, options);
  }
}

/**
 * A Kubernetes API call failed. `status` is the HTTP status (0 when no response
 * arrived) and `reason` the Status reason (`NotFound`, `Conflict`, ...).
 */
export class KubeApiError extends PatcherError {
  readonly status: number;
  readonly reason: string;
  readonly retryAfterSeconds: number | undefined;

  constructor(
    message: string,
    details: { status: number; reason: string; retryAfterSeconds?: number | undefined },
    options?: { cause?: unknown },
  ) {
    super(`KUBE_${details.reason ? details.reason.toUpperCase() : details.status}`, message, options);
    this.status = details.status;
    this.reason = details.reason;
    this.retryAfterSeconds = details.retryAfterSeconds;
  }
}

/** Returns a message that is safe to log for any thrown value. */
export function describeError(error: unknown): string {
  if (error instanceof PatcherError) return `${error.code}: ${error.message}`;
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}
