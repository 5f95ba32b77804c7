/**
 * The HTTP under {@link KubeClient}: JSON requests to one API server over
 * node:http(s), on one keep-alive agent, with the credentials asked for
 * afresh on every request so that short-lived tokens renew.
 *
 * Why not the generated client of @kubernetes/client-node: the engine makes
 * eight kinds of call, and the generated client brings every model of the
 * API and its own HTTP stack (1.6 MB of the Lambda bundle, and most of its
 * memory). KubeConfig from client-node still reads kubeconfigs and runs their
 * auth plugins for the CLI (lib/clusters.ts); EKS builds a connection itself
 * (lib/eks.ts).
 *
 * Failures are thrown as {@link HttpStatusError} (a response with status ≥
 * 400) or as Node's own errors (ECONNREFUSED, ECONNRESET, ETIMEDOUT...);
 * lib/kube.ts maps both.
 */
import http from 'node:http';
import https from 'node:https';

/** Headers (and, for basic auth, `user:password`) to send with one request. */
export type Credentials = { readonly headers?: Readonly<Record<string, string>>; readonly auth?: string };

export type KubeConnection = {
  /** The API server's base URL, e.g. `https://10.0.0.1:6443`. */
  readonly server: string;
  /** Carries TLS (CA, client certificate, server name) and keeps connections alive. */
  readonly agent: http.Agent;
  /** Called before every request; may renew a token. */
  readonly credentials: () => Promise<Credentials>;
};

/** A response with status ≥ 400; `body` is the raw text (a Status object, usually). */
export class HttpStatusError extends Error {
  override readonly name = 'HttpStatusError';
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  constructor(status: number, headers: Readonly<Record<string, string>>, body: string) {
    super(`HTTP ${status}`);
    this.status = status;
    this.headers = headers;
    this.body = body;
  }
}

export type Request = {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  readonly path: string;
  readonly query?: Readonly<Record<string, string | number | undefined>>;
  readonly body?: unknown;
  /** Defaults to application/json when there is a body. */
  readonly contentType?: string;
  /** Aborts the request (the error is an AbortError carrying the signal's reason). */
  readonly signal?: AbortSignal | undefined;
};

/** No byte for this long on an open request: the socket is dropped (ETIMEDOUT), and the call may be retried. */
export const IDLE_TIMEOUT_MS = 60_000;

function url(server: string, path: string, query: Request['query']): URL {
  const out = new URL(server.replace(/\/+$/, '') + path);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== '') out.searchParams.set(key, String(value));
  }
  return out;
}

function flatHeaders(headers: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (value !== undefined) out[key] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

/** Sends one request and returns the parsed JSON body; throws HttpStatusError or a connection error. */
export async function kubeRequest<T>(connection: KubeConnection, request: Request): Promise<T> {
  const target = url(connection.server, request.path, request.query);
  const credentials = await connection.credentials();
  const payload = request.body === undefined ? undefined : Buffer.from(JSON.stringify(request.body));
  const headers: Record<string, string> = {
    accept: 'application/json',
    'user-agent': 'imagepullsecret-patcher',
    ...credentials.headers,
  };
  if (payload) {
    headers['content-type'] = request.contentType ?? 'application/json';
    headers['content-length'] = String(payload.length);
  }
  const send = target.protocol === 'http:' ? http.request : https.request;
  return new Promise<T>((resolve, reject) => {
    const req = send(
      target,
      {
        method: request.method,
        agent: connection.agent,
        headers,
        ...(credentials.auth ? { auth: credentials.auth } : {}),
        ...(request.signal ? { signal: request.signal } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status >= 400 || status < 200) {
            reject(new HttpStatusError(status, flatHeaders(res.headers), text));
            return;
          }
          try {
            resolve((text ? JSON.parse(text) : {}) as T);
          } catch (error) {
            reject(
              new Error(`${request.method} ${target.pathname}: the response is not JSON`, { cause: error }),
            );
          }
        });
      },
    );
    req.setTimeout(IDLE_TIMEOUT_MS, () => {
      req.destroy(Object.assign(new Error(`no response in ${IDLE_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** A keep-alive agent for `server` with the given TLS material. */
export function keepAliveAgent(server: string, tls: https.AgentOptions = {}): http.Agent {
  return server.startsWith('http:')
    ? new http.Agent({ keepAlive: true })
    : new https.Agent({ ...tls, keepAlive: true });
}
