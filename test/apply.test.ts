/**
 * lib/apply.ts against an API server that does not answer: once one write
 * has spent its retries on it, the rest are left for the next run instead of
 * each spending theirs.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { apply } from '../lib/apply.ts';
import { KubeClient } from '../lib/kube.ts';
import { keepAliveAgent } from '../lib/kube-http.ts';
import type { SecretWrite } from '../lib/plan.ts';

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const create = (namespace: string): SecretWrite => ({
  kind: 'create',
  namespace,
  secretName: 'regcred',
  mapping: 'regcred',
  reason: 'missing',
  manifest: {
    name: 'regcred',
    labels: {},
    annotations: {},
    type: 'kubernetes.io/dockerconfigjson',
    data: {},
  },
});

describe('apply', () => {
  it('stops starting writes once the API server is unreachable through all retries', async () => {
    const server = `http://127.0.0.1:${await closedPort()}`;
    const client = new KubeClient(
      { server, agent: keepAliveAgent(server), credentials: async () => ({}) },
      { retry: { maxRetries: 2 }, sleep: async () => {} },
    );
    const actions = Array.from({ length: 20 }, (_, i) => create(`team-${i}`));
    const results = await apply(client, actions, { concurrency: 2, maxConflicts: 3, mappings: new Map() });

    const failed = results.filter((r) => r.outcome === 'failed');
    const notStarted = results.filter((r) => r.outcome === 'not-started');
    assert.equal(results.length, 20);
    assert.ok(
      failed.length >= 1 && failed.length <= 2,
      `only the writes in flight fail, got ${failed.length}`,
    );
    assert.equal(notStarted.length, 20 - failed.length);
    assert.match(failed[0]?.detail ?? '', /Unreachable|no response \(ECONNREFUSED\)/);
    assert.match(notStarted[0]?.detail ?? '', /^not tried: the API server stopped answering/);
    assert.equal(client.stats.byVerb.create, failed.length * 3, 'each failed write: one try and two retries');
  });
});
