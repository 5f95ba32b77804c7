/**
 * An HTTPS proxy in front of a test cluster's API server that lets a fault
 * test decide, per request, what happens: answer with a fault (a 429 with
 * Retry-After, a 500, ...) instead of forwarding, or run something first (as
 * admin: another writer getting there first, a namespace deleted) and then
 * forward. It presents the cluster's own serving certificate, so a kubeconfig
 * only needs its server changed (`route`). Every request is logged (method,
 * path, attempt, times, status), never its body: bodies carry credentials.
 *
 *   const proxy = await startFaultProxy(cluster);
 *   proxy.route(patcher.identityKubeconfig);
 *   proxy.setHook(({ method, attempt }) => (method === 'POST' && attempt === 1 ? { status: 429, retryAfterSeconds: 1 } : undefined));
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Agent, createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { parse, stringify } from 'yaml';

export type ProxyRequest = {
  readonly method: string;
  /** Path and query, as sent. */
  readonly path: string;
  /** 1 for the first request with this method and path since the log was cleared, then 2, ... */
  readonly attempt: number;
};

/** An answer the proxy gives instead of forwarding. */
export type Fault = {
  readonly status: number;
  readonly retryAfterSeconds?: number;
  readonly message?: string;
};

/**
 * Decides a request's fate: a fault to answer with, or undefined to forward
 * it. The proxy awaits the hook first, so a hook can change the cluster
 * before the request reaches it.
 */
export type FaultHook = (request: ProxyRequest) => Fault | undefined | Promise<Fault | undefined>;

export type ProxyLogEntry = ProxyRequest & {
  readonly receivedAt: number;
  readonly answeredAt: number;
  readonly status: number;
  /** True when the proxy answered with a fault instead of forwarding. */
  readonly injected: boolean;
  readonly retryAfterSeconds?: number | undefined;
};

export type FaultProxy = {
  readonly url: string;
  /** Answered requests, in the order they were answered. */
  readonly log: readonly ProxyLogEntry[];
  /** Errors thrown by hooks (the request was answered 500); a test should expect none. */
  readonly hookErrors: readonly unknown[];
  setHook(hook: FaultHook | undefined): void;
  clearLog(): void;
  /** Points every cluster of a kubeconfig file at this proxy (same CA, same credentials). */
  route(kubeconfigPath: string): void;
  close(): Promise<void>;
};

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

function endToEnd(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name)));
}

function statusBody(status: number, message: string): string {
  const reason = status === 429 ? 'TooManyRequests' : status >= 500 ? 'InternalError' : 'BadRequest';
  return JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    status: 'Failure',
    message,
    reason,
    code: status,
  });
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Starts a proxy for `target` on a free loopback port. */
export async function startFaultProxy(target: {
  readonly server: string;
  readonly caCertPem: string;
  readonly tls: { readonly certPath: string; readonly keyPath: string };
}): Promise<FaultProxy> {
  const upstream = new URL(target.server);
  const agent = new Agent({ ca: target.caCertPem, keepAlive: true });
  const log: ProxyLogEntry[] = [];
  const hookErrors: unknown[] = [];
  let attempts = new Map<string, number>();
  let hook: FaultHook | undefined;

  const answer = async (req: IncomingMessage, res: ServerResponse) => {
    const receivedAt = Date.now();
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const key = `${method} ${path}`;
    const attempt = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, attempt);
    const seen: ProxyRequest = { method, path, attempt };
    const body = await readBody(req);
    const record = (status: number, injected: boolean, retryAfterSeconds?: number) =>
      log.push({ ...seen, receivedAt, answeredAt: Date.now(), status, injected, retryAfterSeconds });

    let fault: Fault | undefined;
    try {
      fault = await hook?.(seen);
    } catch (error) {
      hookErrors.push(error);
      fault = { status: 500, message: 'fault proxy: the test hook failed' };
    }
    if (fault) {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (fault.retryAfterSeconds !== undefined) headers['retry-after'] = String(fault.retryAfterSeconds);
      res.writeHead(fault.status, headers);
      res.end(statusBody(fault.status, fault.message ?? 'injected by the fault proxy'));
      record(fault.status, true, fault.retryAfterSeconds);
      return;
    }

    const headers = { ...endToEnd(req.headers), host: upstream.host };
    if (body.length > 0) headers['content-length'] = String(body.length);
    const forwarded = request(
      { hostname: upstream.hostname, port: upstream.port, method, path, headers, agent },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, endToEnd(upstreamRes.headers));
        upstreamRes.pipe(res);
        upstreamRes.on('end', () => record(upstreamRes.statusCode ?? 502, false));
      },
    );
    forwarded.on('error', () => {
      // The API server is down or went away: close the connection as it would have.
      res.destroy();
      record(0, false);
    });
    forwarded.end(body);
  };

  const server = createServer(
    { cert: readFileSync(target.tls.certPath), key: readFileSync(target.tls.keyPath) },
    (req, res) => {
      answer(req, res).catch(() => res.destroy());
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    log,
    hookErrors,
    setHook: (next) => {
      hook = next;
    },
    clearLog: () => {
      log.length = 0;
      hookErrors.length = 0;
      attempts = new Map();
    },
    route(kubeconfigPath) {
      const doc = parse(readFileSync(kubeconfigPath, 'utf8')) as {
        clusters?: { cluster?: { server?: string } }[];
      };
      for (const entry of doc.clusters ?? []) if (entry.cluster) entry.cluster.server = url;
      writeFileSync(kubeconfigPath, stringify(doc), { mode: 0o600 });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
