/**
 * lib/observe.ts: when one list fails, the others are not left retrying in
 * the background after the failure is reported.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { KubeClient } from '../lib/kube.ts';
import { keepAliveAgent } from '../lib/kube-http.ts';
import { observe } from '../lib/observe.ts';
import type { DesiredMapping } from '../lib/plan.ts';

const mapping: DesiredMapping = {
  name: 'regcred',
  secretName: 'regcred',
  namespaces: { include: [], exclude: [], excludeSystem: true },
  serviceAccounts: ['default'],
  onConflict: 'skip',
  prune: true,
  content: undefined,
};

const list = (kind: string) => JSON.stringify({ kind, apiVersion: 'v1', metadata: {}, items: [] });

describe('observe', () => {
  const seen: { path: string; at: number }[] = [];
  let server: ReturnType<typeof createServer>;
  let url: string;

  before(async () => {
    let secretAttempts = 0;
    server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0] ?? '';
      seen.push({ path, at: Date.now() });
      res.setHeader('content-type', 'application/json');
      if (path === '/api/v1/namespaces') {
        res
          .writeHead(403)
          .end(JSON.stringify({ kind: 'Status', code: 403, reason: 'Forbidden', message: 'no' }));
      } else if (path === '/api/v1/secrets' && ++secretAttempts < 3) {
        res.writeHead(503).end('{}');
      } else {
        res.end(list(path === '/api/v1/secrets' ? 'SecretList' : 'ServiceAccountList'));
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('fails with the first failure only once every other list has ended', async () => {
    const client = new KubeClient(
      { server: url, agent: keepAliveAgent(url), credentials: async () => ({}) },
      { retry: { baseDelayMs: 100, maxDelayMs: 100 }, random: () => 1 },
    );
    await assert.rejects(observe(client, [mapping], []), /list namespaces: 403 Forbidden/);
    const failedAt = Date.now();
    const secretLists = seen.filter((s) => s.path === '/api/v1/secrets');
    assert.equal(secretLists.length, 3, 'the secrets list retried to its end before the failure came out');
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(
      seen.filter((s) => s.at > failedAt),
      [],
      'nothing of the run is still going after it failed',
    );
  });
});
