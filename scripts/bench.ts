/**
 * `npm run bench -- [--namespaces 100,1000] [--json]`: the engine on the
 * local control plane, as the restricted identity. For each namespace count:
 * a first run from empty and a no-op run right after, with wall time and API
 * requests by verb. Figures, not assertions.
 */
import { parseArgs } from 'node:util';
import pLimit from 'p-limit';
import { adminApi, credentialFile, patcher, tempDir } from '../test/integration/fixture.ts';
import { startRig } from '../test/rig/cluster.ts';
import { waitFor } from '../test/rig/ports.ts';

const { values } = parseArgs({
  options: { namespaces: { type: 'string', default: '100,1000' }, json: { type: 'boolean', default: false } },
});
const counts = values.namespaces.split(',').map((n) => Number.parseInt(n, 10));
const log = (text: string) => process.stderr.write(`${text}\n`);
const results = [];

for (const n of counts) {
  const rig = await startRig({ clusters: 1 });
  try {
    const cluster = rig.clusters[0]!;
    const { core } = adminApi(cluster);
    log(`${n} namespaces: creating...`);
    const limit = pLimit(16);
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        limit(() => core.createNamespace({ body: { metadata: { name: `bench-${i}` } } })),
      ),
    );
    await waitFor(
      'default service accounts',
      async () => {
        const list = await core.listServiceAccountForAllNamespaces({
          fieldSelector: 'metadata.name=default',
        });
        return list.items.filter((sa) => sa.metadata?.namespace?.startsWith('bench-')).length === n;
      },
      300_000,
    );
    const cred = credentialFile(tempDir(), 'bench');
    const config = {
      mappings: [
        { secretName: 'regcred', source: { file: cred.path }, namespaces: { include: ['bench-*'] } },
      ],
    };
    const p = patcher(cluster);
    const converge = await p.reconcile(config);
    const noop = await p.reconcile(config);
    const row = {
      namespaces: n,
      converge: {
        seconds: converge.durationMs / 1000,
        requests: converge.requests.total,
        byVerb: converge.requests.byVerb,
        converged: converge.converged,
      },
      noop: { seconds: noop.durationMs / 1000, requests: noop.requests.total, byVerb: noop.requests.byVerb },
    };
    results.push(row);
    log(
      `${n} namespaces: first run ${row.converge.seconds.toFixed(2)} s, ${row.converge.requests} requests ${JSON.stringify(row.converge.byVerb)}; no-op ${row.noop.seconds.toFixed(2)} s, ${row.noop.requests} requests`,
    );
  } finally {
    await rig.stop();
  }
}
if (values.json) process.stdout.write(`${JSON.stringify(results.length === 1 ? results[0] : results)}\n`);
