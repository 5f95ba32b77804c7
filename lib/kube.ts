/**
 * The engine's only door to a Kubernetes API server: exactly the calls the
 * reconciliation needs, as typed projections of the objects, with
 * - every HTTP request counted by verb (the report's request figures),
 * - 429, 5xx and connection failures retried with backoff, honouring
 *   Retry-After, a bounded number of times,
 * - failures mapped once, by status code, to {@link KubeApiError},
 * - one field manager on every write.
 *
 * Clock and sleep are injected so tests can drive the retry timing.
 */
import type { V1Namespace, V1Secret, V1ServiceAccount } from '@kubernetes/client-node';
import { KubeApiError } from './errors.ts';
import { HttpStatusError, type KubeConnection, kubeRequest, type Request } from './kube-http.ts';
import type { NamespaceInfo } from './namespaces.ts';
import { FIELD_MANAGER } from './ownership.ts';

export type { NamespaceInfo };

export type SecretInfo = {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly resourceVersion: string;
  readonly type: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** Base64 values as the API returns them. */
  readonly data: Readonly<Record<string, string>>;
};

export type ServiceAccountInfo = {
  readonly namespace: string;
  readonly name: string;
  readonly resourceVersion: string;
  readonly annotations: Readonly<Record<string, string>>;
  readonly imagePullSecrets: readonly string[];
};

/** The body of a secret we write: name, marks, type and data. */
export type SecretManifest = {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly type: string;
  readonly data: Readonly<Record<string, string>>;
};

export const VERBS = ['list', 'get', 'create', 'patch', 'delete'] as const;
export type Verb = (typeof VERBS)[number];

export type RequestStats = { total: number; retries: number; byVerb: Record<Verb, number> };

export type RetryPolicy = {
  /** Retries after the first attempt, for 429, 5xx and connection failures. */
  readonly maxRetries: number;
  /** First backoff delay; doubles each retry, with jitter, capped at `maxDelayMs`. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** Retry-After above this is capped to it (a server asking for minutes would stall the run). */
  readonly maxRetryAfterMs: number;
};

export const DEFAULT_RETRY: RetryPolicy = {
  maxRetries: 5,
  baseDelayMs: 200,
  maxDelayMs: 5000,
  maxRetryAfterMs: 30_000,
};

export type KubeClientOptions = {
  readonly retry?: Partial<RetryPolicy>;
  /** LIST `limit`; 0 or absent lists each collection in one request. */
  readonly pageSize?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
  /**
   * Stops reads (lists and gets, and their retries) when it fires, so a hung
   * read cannot outlast a deadline. Writes in flight are left to finish: the
   * caller stops starting new ones.
   */
  readonly signal?: AbortSignal | undefined;
};

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const MERGE_PATCH = 'application/merge-patch+json';

type List<T> = { items?: T[]; metadata?: { continue?: string } };

const segment = encodeURIComponent;

function strings(record: { [key: string]: string } | undefined): Record<string, string> {
  return record ? { ...record } : {};
}

function toNamespace(ns: V1Namespace): NamespaceInfo {
  return {
    name: ns.metadata?.name ?? '',
    labels: strings(ns.metadata?.labels),
    annotations: strings(ns.metadata?.annotations),
    terminating: ns.status?.phase === 'Terminating' || ns.metadata?.deletionTimestamp !== undefined,
  };
}

function toSecret(secret: V1Secret): SecretInfo {
  return {
    namespace: secret.metadata?.namespace ?? '',
    name: secret.metadata?.name ?? '',
    uid: secret.metadata?.uid ?? '',
    resourceVersion: secret.metadata?.resourceVersion ?? '',
    type: secret.type ?? 'Opaque',
    labels: strings(secret.metadata?.labels),
    annotations: strings(secret.metadata?.annotations),
    data: strings(secret.data),
  };
}

function toServiceAccount(sa: V1ServiceAccount): ServiceAccountInfo {
  return {
    namespace: sa.metadata?.namespace ?? '',
    name: sa.metadata?.name ?? '',
    resourceVersion: sa.metadata?.resourceVersion ?? '',
    annotations: strings(sa.metadata?.annotations),
    imagePullSecrets: (sa.imagePullSecrets ?? []).map((ref) => ref.name ?? ''),
  };
}

/** Reads the Status reason from an error response's body (raw text). */
function statusReason(body: string): { reason: string; message: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { reason: '', message: '' };
  }
  const status = (parsed ?? {}) as { reason?: unknown; message?: unknown };
  return {
    reason: typeof status.reason === 'string' ? status.reason : '',
    message: typeof status.message === 'string' ? status.message : '',
  };
}

const REASON_BY_STATUS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  410: 'Expired',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

/**
 * Maps anything the client throws to a KubeApiError. `what` names the call
 * (`create secret team-a/regcred`); the message never includes a request body.
 */
export function toKubeApiError(error: unknown, what: string): KubeApiError {
  if (error instanceof KubeApiError) return error;
  if (error instanceof Error && error.name === 'AbortError') {
    const reason = error.cause instanceof Error ? error.cause.message : 'aborted';
    return new KubeApiError(
      `${what}: abandoned: ${reason}`,
      { status: 0, reason: 'Aborted' },
      { cause: error },
    );
  }
  if (error instanceof HttpStatusError) {
    const status = error.status;
    const { reason, message } = statusReason(error.body);
    const retryAfter = Number.parseInt(error.headers['retry-after'] ?? '', 10);
    return new KubeApiError(
      `${what}: ${status} ${reason || REASON_BY_STATUS[status] || 'error'}${message ? `: ${message}` : ''}`,
      {
        status,
        reason: reason || REASON_BY_STATUS[status] || `Status${status}`,
        retryAfterSeconds: Number.isFinite(retryAfter) ? retryAfter : undefined,
      },
      { cause: error },
    );
  }
  const code =
    (error as { code?: unknown; cause?: { code?: unknown } }).cause?.code ??
    (error as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_ERRORS.has(code)) {
    return new KubeApiError(
      `${what}: no response (${code})`,
      { status: 0, reason: 'Unreachable' },
      { cause: error },
    );
  }
  // Not a network failure (bad kubeconfig, TLS, auth plugin): retrying would not help.
  const detail = error instanceof Error ? error.message : String(error);
  return new KubeApiError(
    `${what}: request failed: ${detail}`,
    { status: 0, reason: 'ClientError' },
    { cause: error },
  );
}

/** Connection failures worth retrying: the server restarting, a reset, a timeout. */
const CONNECTION_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

function retryable(error: KubeApiError): boolean {
  return error.reason === 'Unreachable' || error.status === 429 || error.status >= 500;
}

export function isNotFound(error: unknown): boolean {
  return error instanceof KubeApiError && error.status === 404;
}

export function isConflict(error: unknown): boolean {
  return error instanceof KubeApiError && error.status === 409;
}

/** The calls the engine makes, and the requests they cost. */
export class KubeClient {
  readonly stats: RequestStats = {
    total: 0,
    retries: 0,
    byVerb: { list: 0, get: 0, create: 0, patch: 0, delete: 0 },
  };
  readonly #connection: KubeConnection;
  readonly #retry: RetryPolicy;
  /** LIST `limit`; undefined lists each collection in one request. */
  readonly #pageSize: number | undefined;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #signal: AbortSignal | undefined;

  constructor(connection: KubeConnection, options: KubeClientOptions = {}) {
    this.#connection = connection;
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#pageSize = options.pageSize || undefined;
    this.#sleep = options.sleep ?? defaultSleep;
    this.#random = options.random ?? Math.random;
    this.#signal = options.signal;
  }

  async #call<T>(verb: Verb, what: string, request: (signal?: AbortSignal) => Promise<T>): Promise<T> {
    const signal = verb === 'list' || verb === 'get' ? this.#signal : undefined;
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) {
        const stopped = Object.assign(new Error('aborted', { cause: signal.reason }), { name: 'AbortError' });
        throw toKubeApiError(stopped, what);
      }
      this.stats.total++;
      this.stats.byVerb[verb]++;
      try {
        return await request(signal);
      } catch (thrown) {
        const error = toKubeApiError(thrown, what);
        if (!retryable(error) || attempt >= this.#retry.maxRetries) throw error;
        this.stats.retries++;
        await this.#pause(this.#delay(attempt, error), signal);
      }
    }
  }

  /** Sleeps `ms`, or less when `signal` fires (the next attempt then stops). */
  async #pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
    if (!signal) return this.#sleep(ms);
    let onAbort = () => {};
    const aborted = new Promise<void>((resolve) => {
      onAbort = resolve;
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      await Promise.race([this.#sleep(ms), aborted]);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  #delay(attempt: number, error: KubeApiError): number {
    if (error.retryAfterSeconds !== undefined) {
      return Math.min(error.retryAfterSeconds * 1000, this.#retry.maxRetryAfterMs);
    }
    const exponential = Math.min(this.#retry.baseDelayMs * 2 ** attempt, this.#retry.maxDelayMs);
    return exponential / 2 + (this.#random() * exponential) / 2;
  }

  #send<T>(verb: Verb, what: string, request: Request): Promise<T> {
    return this.#call(verb, what, (signal) => kubeRequest<T>(this.#connection, { ...request, signal }));
  }

  async #listAll<T, R>(
    what: string,
    path: string,
    fieldSelector: string | undefined,
    map: (item: T) => R,
  ): Promise<R[]> {
    const out: R[] = [];
    let cont: string | undefined;
    do {
      const query = { fieldSelector, limit: this.#pageSize, continue: cont };
      const result = await this.#send<List<T>>('list', what, { method: 'GET', path, query });
      for (const item of result.items ?? []) out.push(map(item));
      cont = result.metadata?.continue || undefined;
    } while (cont);
    return out;
  }

  listNamespaces(): Promise<NamespaceInfo[]> {
    return this.#listAll('list namespaces', '/api/v1/namespaces', undefined, toNamespace);
  }

  /** All secrets called `name`, in every namespace: the one list RBAC lets us make by name. */
  listSecretsNamed(name: string): Promise<SecretInfo[]> {
    return this.#listAll(`list secrets named ${name}`, '/api/v1/secrets', `metadata.name=${name}`, toSecret);
  }

  /** Service accounts in every namespace, or only those called `name`. */
  listServiceAccounts(name?: string): Promise<ServiceAccountInfo[]> {
    return this.#listAll(
      name ? `list service accounts named ${name}` : 'list service accounts',
      '/api/v1/serviceaccounts',
      name ? `metadata.name=${name}` : undefined,
      toServiceAccount,
    );
  }

  listNamespacedServiceAccounts(namespace: string): Promise<ServiceAccountInfo[]> {
    return this.#listAll(
      `list service accounts in ${namespace}`,
      `/api/v1/namespaces/${segment(namespace)}/serviceaccounts`,
      undefined,
      toServiceAccount,
    );
  }

  /** The secret, or undefined when it does not exist. */
  async readSecret(namespace: string, name: string): Promise<SecretInfo | undefined> {
    try {
      return toSecret(
        await this.#send<V1Secret>('get', `get secret ${namespace}/${name}`, {
          method: 'GET',
          path: `/api/v1/namespaces/${segment(namespace)}/secrets/${segment(name)}`,
        }),
      );
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async readServiceAccount(namespace: string, name: string): Promise<ServiceAccountInfo | undefined> {
    try {
      return toServiceAccount(
        await this.#send<V1ServiceAccount>('get', `get service account ${namespace}/${name}`, {
          method: 'GET',
          path: `/api/v1/namespaces/${segment(namespace)}/serviceaccounts/${segment(name)}`,
        }),
      );
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async createSecret(namespace: string, manifest: SecretManifest): Promise<SecretInfo> {
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: manifest.name,
        namespace,
        labels: { ...manifest.labels },
        annotations: { ...manifest.annotations },
      },
      type: manifest.type,
      data: { ...manifest.data },
    };
    return toSecret(
      await this.#send<V1Secret>('create', `create secret ${namespace}/${manifest.name}`, {
        method: 'POST',
        path: `/api/v1/namespaces/${segment(namespace)}/secrets`,
        query: { fieldManager: FIELD_MANAGER },
        body,
      }),
    );
  }

  /**
   * Merge-patches our labels, annotations and data into an existing secret,
   * guarded by `resourceVersion` (409 Conflict when it changed). Keys others
   * set are kept; the object, and its UID, stay the same.
   */
  async patchSecret(
    namespace: string,
    manifest: SecretManifest,
    resourceVersion: string,
  ): Promise<SecretInfo> {
    const body = {
      metadata: { resourceVersion, labels: manifest.labels, annotations: manifest.annotations },
      data: manifest.data,
    };
    return toSecret(
      await this.#send<V1Secret>('patch', `update secret ${namespace}/${manifest.name}`, {
        method: 'PATCH',
        path: `/api/v1/namespaces/${segment(namespace)}/secrets/${segment(manifest.name)}`,
        query: { fieldManager: FIELD_MANAGER },
        body,
        contentType: MERGE_PATCH,
      }),
    );
  }

  /** Deletes a secret only if it is still the object we observed (uid and resourceVersion). */
  async deleteSecret(namespace: string, name: string, uid: string, resourceVersion: string): Promise<void> {
    await this.#send('delete', `delete secret ${namespace}/${name}`, {
      method: 'DELETE',
      path: `/api/v1/namespaces/${segment(namespace)}/secrets/${segment(name)}`,
      body: { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid, resourceVersion } },
    });
  }

  /**
   * Replaces a service account's `imagePullSecrets` with `names`, guarded by
   * `resourceVersion`: the list is atomic in the API, so the caller computes
   * it from the object it read, and a 409 means someone else wrote first.
   */
  async setImagePullSecrets(
    namespace: string,
    name: string,
    names: readonly string[],
    resourceVersion: string,
  ): Promise<ServiceAccountInfo> {
    const body = { metadata: { resourceVersion }, imagePullSecrets: names.map((n) => ({ name: n })) };
    return toServiceAccount(
      await this.#send<V1ServiceAccount>('patch', `patch service account ${namespace}/${name}`, {
        method: 'PATCH',
        path: `/api/v1/namespaces/${segment(namespace)}/serviceaccounts/${segment(name)}`,
        query: { fieldManager: FIELD_MANAGER },
        body,
        contentType: MERGE_PATCH,
      }),
    );
  }
}
