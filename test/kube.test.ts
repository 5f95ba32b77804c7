import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { kubeConnection } from '../lib/clusters.ts';
import { ClusterAccessError, KubeApiError } from '../lib/errors.ts';
import { KubeClient, type RetryPolicy, toKubeApiError } from '../lib/kube.ts';
import { HttpStatusError, type KubeConnection, keepAliveAgent } from '../lib/kube-http.ts';

// A credential-looking value that must never reach an error message.
const LEAK = 'eyJhdXRocyI6eyJyZWdpc3RyeSI6e319fQ-hunter2';

function httpError(code: number, body: string | undefined, headers: Record<string, string>): HttpStatusError {
  return new HttpStatusError(code, headers, body ?? '');
}

function status(code: number, reason: string, message: string): string {
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message });
}

describe('toKubeApiError', () => {
  const refused = new TypeError('fetch failed', {
    cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' }),
  });
  const cases: {
    name: string;
    error: unknown;
    status: number;
    reason: string;
    retryAfterSeconds?: number;
    message: string;
  }[] = [
    {
      name: 'maps 409 with its Status reason and message',
      error: httpError(409, status(409, 'AlreadyExists', 'secrets "regcred" already exists'), {}),
      status: 409,
      reason: 'AlreadyExists',
      message: 'create secret team-a/regcred: 409 AlreadyExists: secrets "regcred" already exists',
    },
    {
      name: 'maps 404 without a body to NotFound',
      error: httpError(404, undefined, {}),
      status: 404,
      reason: 'NotFound',
      message: 'create secret team-a/regcred: 404 NotFound',
    },
    {
      name: 'maps 429 and reads Retry-After in seconds',
      error: httpError(429, 'Too many requests', { 'retry-after': '7' }),
      status: 429,
      reason: 'TooManyRequests',
      retryAfterSeconds: 7,
      message: 'create secret team-a/regcred: 429 TooManyRequests',
    },
    {
      name: 'maps 503 with a non-JSON body to ServiceUnavailable, without Retry-After',
      error: httpError(503, 'upstream connect error', {}),
      status: 503,
      reason: 'ServiceUnavailable',
      message: 'create secret team-a/regcred: 503 ServiceUnavailable',
    },
    {
      name: 'ignores a Retry-After given as an HTTP date',
      error: httpError(503, undefined, {
        'retry-after': 'Wed, 21 Oct 2015 07:28:00 GMT',
      }),
      status: 503,
      reason: 'ServiceUnavailable',
      message: 'create secret team-a/regcred: 503 ServiceUnavailable',
    },
    {
      name: 'reads the reason and message of a Status body',
      error: httpError(403, status(403, 'Forbidden', 'cannot create secrets'), {}),
      status: 403,
      reason: 'Forbidden',
      message: 'create secret team-a/regcred: 403 Forbidden: cannot create secrets',
    },
    {
      name: 'names an unknown status by its code',
      error: httpError(418, undefined, {}),
      status: 418,
      reason: 'Status418',
      message: 'create secret team-a/regcred: 418 error',
    },
    {
      name: 'maps a connection error (cause.code) to status 0, Unreachable',
      error: refused,
      status: 0,
      reason: 'Unreachable',
      message: 'create secret team-a/regcred: no response (ECONNREFUSED)',
    },
    {
      name: 'maps an error with its own code to status 0',
      error: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      status: 0,
      reason: 'Unreachable',
      message: 'create secret team-a/regcred: no response (ECONNRESET)',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const mapped = toKubeApiError(c.error, 'create secret team-a/regcred');
      assert.ok(mapped instanceof KubeApiError);
      assert.equal(mapped.status, c.status);
      assert.equal(mapped.reason, c.reason);
      assert.equal(mapped.retryAfterSeconds, c.retryAfterSeconds);
      assert.equal(mapped.message, c.message);
      assert.equal(mapped.cause, c.error);
    });
  }

  it('returns a KubeApiError unchanged', () => {
    const error = new KubeApiError('get secret a/b: 404 NotFound', { status: 404, reason: 'NotFound' });
    assert.equal(toKubeApiError(error, 'other'), error);
  });

  it('never puts the body into the message, only the Status reason and message', () => {
    const body = JSON.stringify({
      kind: 'Status',
      code: 422,
      reason: 'Invalid',
      message:
        'Secret "regcred" is invalid: data[.dockerconfigjson]: Invalid value: "<secret contents redacted>"',
      details: { causes: [{ field: 'data[.dockerconfigjson]', message: LEAK }] },
      echoedRequest: { data: { '.dockerconfigjson': LEAK } },
    });
    const source = httpError(422, body, {
      'content-type': 'application/json',
    });
    const mapped = toKubeApiError(source, 'update secret team-a/regcred');
    assert.ok(!mapped.message.includes(LEAK));
    assert.doesNotMatch(mapped.message, /HTTP-Code|Body:|Headers:|content-type/);
    assert.equal(
      mapped.message,
      'update secret team-a/regcred: 422 Invalid: Secret "regcred" is invalid: data[.dockerconfigjson]: Invalid value: "<secret contents redacted>"',
    );
  });
});

// ---------------------------------------------------------------------------
// The retry loop, against a real HTTP server on 127.0.0.1.

type Reply = { status: number; headers?: Record<string, string>; body?: unknown };

const namespaceList = (names: string[], cont?: string) => ({
  kind: 'NamespaceList',
  apiVersion: 'v1',
  metadata: { resourceVersion: '100', ...(cont ? { continue: cont } : {}) },
  items: names.map((name) => ({ metadata: { name, labels: { team: name } }, status: { phase: 'Active' } })),
});

const tooMany = (retryAfter: string): Reply => ({
  status: 429,
  headers: { 'retry-after': retryAfter },
  body: status(429, 'TooManyRequests', 'slow down'),
});

describe('KubeClient retries', () => {
  let server: Server;
  let port: number;
  let replies: Reply[];
  let seen: IncomingMessage[];

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      seen.push(req);
      const reply = replies.shift() ?? { status: 500, body: status(500, 'InternalError', 'no reply queued') };
      res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
      res.end(typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body ?? {}));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
  });

  beforeEach(() => {
    replies = [];
    seen = [];
  });

  function connection(server: string): KubeConnection {
    return {
      server,
      agent: keepAliveAgent(server),
      credentials: async () => ({ headers: { Authorization: 'Bearer test-token' } }),
    };
  }

  function client(retry: Partial<RetryPolicy> = {}, random = () => 0.5) {
    const sleeps: number[] = [];
    const kube = new KubeClient(connection(`http://127.0.0.1:${port}`), {
      retry,
      random,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    return { kube, sleeps };
  }

  it('honours Retry-After on 429 and succeeds on the third attempt', async () => {
    replies = [tooMany('2'), tooMany('2'), { status: 200, body: namespaceList(['team-a', 'team-b']) }];
    const { kube, sleeps } = client();
    const namespaces = await kube.listNamespaces();
    assert.deepEqual(
      namespaces.map((ns) => ns.name),
      ['team-a', 'team-b'],
    );
    assert.deepEqual(namespaces[0], {
      name: 'team-a',
      labels: { team: 'team-a' },
      annotations: {},
      terminating: false,
    });
    assert.deepEqual(sleeps, [2000, 2000]);
    assert.equal(kube.stats.retries, 2);
    assert.equal(kube.stats.byVerb.list, 3);
    assert.equal(kube.stats.total, 3);
    assert.equal(seen.length, 3);
    assert.equal(seen[0]?.headers.authorization, 'Bearer test-token');
  });

  it('throws the 429 as a KubeApiError after maxRetries', async () => {
    replies = [tooMany('1'), tooMany('1'), tooMany('1'), { status: 200, body: namespaceList(['late']) }];
    const { kube, sleeps } = client({ maxRetries: 2 });
    await assert.rejects(kube.listNamespaces(), (error: unknown) => {
      assert.ok(error instanceof KubeApiError);
      assert.equal(error.status, 429);
      assert.equal(error.reason, 'TooManyRequests');
      assert.equal(error.retryAfterSeconds, 1);
      return true;
    });
    assert.deepEqual(sleeps, [1000, 1000]);
    assert.equal(kube.stats.retries, 2);
    assert.equal(kube.stats.byVerb.list, 3);
    assert.equal(seen.length, 3);
  });

  it('does not retry 403', async () => {
    replies = [{ status: 403, body: status(403, 'Forbidden', 'namespaces is forbidden') }];
    const { kube, sleeps } = client();
    await assert.rejects(kube.listNamespaces(), (error: unknown) => {
      assert.ok(error instanceof KubeApiError);
      assert.equal(error.status, 403);
      assert.equal(error.reason, 'Forbidden');
      return true;
    });
    assert.deepEqual(sleeps, []);
    assert.equal(kube.stats.retries, 0);
    assert.equal(kube.stats.byVerb.list, 1);
  });

  it('backs off exponentially with jitter on 5xx without Retry-After', async () => {
    replies = [
      { status: 503, body: status(503, 'ServiceUnavailable', 'etcd') },
      { status: 500, body: status(500, 'InternalError', 'boom') },
      { status: 200, body: namespaceList(['team-a']) },
    ];
    const { kube, sleeps } = client({ baseDelayMs: 200 }, () => 0.5);
    await kube.listNamespaces();
    // Half the exponential delay plus a random half: 200 → 150, 400 → 300.
    assert.deepEqual(sleeps, [150, 300]);
  });

  it('caps a long Retry-After', async () => {
    replies = [tooMany('3600'), { status: 200, body: namespaceList([]) }];
    const { kube, sleeps } = client({ maxRetryAfterMs: 30_000 });
    await kube.listNamespaces();
    assert.deepEqual(sleeps, [30_000]);
  });

  it('follows continue tokens, counting one list per page', async () => {
    replies = [
      { status: 200, body: namespaceList(['a', 'b'], 'page-2') },
      { status: 200, body: namespaceList(['c']) },
    ];
    const { kube } = client();
    const namespaces = await kube.listNamespaces();
    assert.deepEqual(
      namespaces.map((ns) => ns.name),
      ['a', 'b', 'c'],
    );
    assert.equal(kube.stats.byVerb.list, 2);
    assert.match(seen[1]?.url ?? '', /continue=page-2/);
  });

  it('lists a whole collection in one request by default, and pages when a page size is set', async () => {
    replies = [{ status: 200, body: namespaceList(['a', 'b']) }];
    await client().kube.listNamespaces();
    assert.doesNotMatch(seen[0]?.url ?? '', /limit=/);

    replies = [{ status: 200, body: namespaceList(['a', 'b']) }];
    const paged = new KubeClient(connection(`http://127.0.0.1:${port}`), { pageSize: 2 });
    await paged.listSecretsNamed('regcred');
    assert.match(seen[1]?.url ?? '', /limit=2/);
  });

  it('reads a missing secret as undefined, without retrying', async () => {
    replies = [{ status: 404, body: status(404, 'NotFound', 'secrets "regcred" not found') }];
    const { kube, sleeps } = client();
    assert.equal(await kube.readSecret('team-a', 'regcred'), undefined);
    assert.deepEqual(sleeps, []);
    assert.equal(kube.stats.byVerb.get, 1);
  });

  it('retries a refused connection, then reports it as Unreachable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const sleeps: number[] = [];
    const kube = new KubeClient(connection(`http://127.0.0.1:${closedPort}`), {
      retry: { maxRetries: 1 },
      random: () => 0,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    await assert.rejects(kube.listNamespaces(), (error: unknown) => {
      assert.ok(error instanceof KubeApiError);
      assert.equal(error.status, 0);
      assert.equal(error.reason, 'Unreachable');
      assert.match(error.message, /^list namespaces: no response \(ECONNREFUSED\)$/);
      return true;
    });
    assert.deepEqual(sleeps, [100]);
    assert.equal(kube.stats.byVerb.list, 2);
  });

  it('stops a hung read when its signal fires, without retrying it', async () => {
    const hung = createServer(() => {});
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    const controller = new AbortController();
    const kube = new KubeClient(connection(`http://127.0.0.1:${(hung.address() as AddressInfo).port}`), {
      signal: controller.signal,
    });
    try {
      setTimeout(() => controller.abort(new Error('the deadline is near')), 50);
      await assert.rejects(kube.listNamespaces(), (error: unknown) => {
        assert.ok(error instanceof KubeApiError);
        assert.equal(error.reason, 'Aborted');
        assert.equal(error.message, 'list namespaces: abandoned: the deadline is near');
        return true;
      });
      assert.equal(kube.stats.byVerb.list, 1);
      await assert.rejects(kube.readSecret('team-a', 'regcred'), /abandoned: the deadline is near/);
    } finally {
      hung.closeAllConnections();
      await new Promise<void>((resolve) => hung.close(() => resolve()));
    }
  });

  it('cuts a retry pause short when the signal fires, and lets writes through', async () => {
    replies = [tooMany('30'), { status: 201, body: { metadata: { name: 'regcred', namespace: 'team-a' } } }];
    const controller = new AbortController();
    const kube = new KubeClient(connection(`http://127.0.0.1:${port}`), { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('the deadline is near')), 50);
    const started = Date.now();
    await assert.rejects(kube.listNamespaces(), /abandoned: the deadline is near/);
    assert.ok(Date.now() - started < 5000, 'did not wait out the 30 s Retry-After');
    assert.equal(kube.stats.byVerb.list, 1, 'the retry after the pause was not sent');
    const created = await kube.createSecret('team-a', {
      name: 'regcred',
      labels: {},
      annotations: {},
      type: 'kubernetes.io/dockerconfigjson',
      data: {},
    });
    assert.equal(created.name, 'regcred');
  });

  it('does not retry a local failure that is not a connection error', async () => {
    replies = [{ status: 200, body: namespaceList(['team-a']) }];
    const sleeps: number[] = [];
    const failing: KubeConnection = {
      ...connection(`http://127.0.0.1:${port}`),
      credentials: async () => {
        throw new Error('exec plugin failed');
      },
    };
    const kube = new KubeClient(failing, {
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    await assert.rejects(kube.listNamespaces());
    assert.equal(seen.length, 0);
    assert.deepEqual(sleeps, []);
    assert.equal(kube.stats.byVerb.list, 1);
  });
});

describe('kubeConnection', () => {
  function kubeConfig(server: string, user: Record<string, string>, skipTLSVerify = false): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'test', server, skipTLSVerify }],
      users: [{ name: 'tester', ...user }],
      contexts: [{ name: 'test', cluster: 'test', user: 'tester' }],
      currentContext: 'test',
    });
    return kc;
  }

  it("sends the kubeconfig's token, asked for on every request", async () => {
    const kc = kubeConfig('https://10.0.0.1:6443', { token: 'kubeconfig-token' });
    const connection = await kubeConnection(kc);
    assert.equal(connection.server, 'https://10.0.0.1:6443');
    assert.deepEqual((await connection.credentials()).headers, { Authorization: 'Bearer kubeconfig-token' });
    Object.assign(kc.getCurrentUser()!, { token: 'renewed-token' });
    assert.deepEqual((await connection.credentials()).headers, { Authorization: 'Bearer renewed-token' });
  });

  it('refuses plain http unless the kubeconfig skips TLS verification, as client-node does', async () => {
    await assert.rejects(kubeConnection(kubeConfig('http://127.0.0.1:1', { token: 't' })), /HTTP protocol/);
    const insecure = await kubeConnection(kubeConfig('http://127.0.0.1:1', { token: 't' }, true));
    assert.equal(insecure.server, 'http://127.0.0.1:1');
  });

  it('fails clearly without a current context', async () => {
    await assert.rejects(kubeConnection(new KubeConfig()), ClusterAccessError);
  });
});
