/**
 * `npm run bench` still runs and still measures what BENCHMARKS.md says it
 * does: a small run, checked for its JSON shape and for request counts that
 * follow from the workload (not for timings, which are figures, not tests).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

describe('npm run bench', () => {
  it('prints one JSON object last, with the figures of a first run, a no-op run, the floor and a fan-out', async () => {
    const n = 20;
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [
        'scripts/bench.ts',
        '--namespaces',
        String(n),
        '--clusters',
        '2',
        '--fanout-namespaces',
        '5',
        '--latency-ms',
        '5',
        '--json',
      ],
      { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 },
    );
    assert.match(stderr, /20 namespaces: first run/, 'progress goes to stderr');
    const lines = stdout.trim().split('\n');
    const out = JSON.parse(lines.at(-1) ?? '');

    assert.equal(out.namespaces, n);
    // One secret create and one service-account patch per namespace, after three lists.
    assert.deepEqual(out.converge.byVerb, { list: 3, get: 0, create: n, patch: n, delete: 0 });
    assert.equal(out.converge.requests, 3 + 2 * n);
    assert.equal(out.converge.converged, true);
    assert.deepEqual(out.noop.byVerb, { list: 3, get: 0, create: 0, patch: 0, delete: 0 });
    assert.equal(out.floor.requests, 1 + 2 * n);
    for (const figure of [out.converge.seconds, out.noop.seconds, out.floor.seconds, out.overFloor]) {
      assert.ok(typeof figure === 'number' && figure > 0);
    }
    assert.ok(out.peakRssMB >= out.baselineRssMB && out.baselineRssMB > 10);
    assert.ok(out.bundle.bytes > 100_000);
    assert.ok(out.coldImportMs > 0);
    assert.equal(out.fanout.clusters, 2);
    assert.equal(out.fanout.latencyMs, 5);
    assert.deepEqual(Object.keys(out.fanout.fanout.perCluster).sort(), ['cluster-0', 'cluster-1']);
    const noop = out.targets.find((t: { target: string }) => t.target.startsWith('no-op'));
    assert.equal(noop.met, true);
  });
});
