/**
 * `npm run bench -- [--namespaces 100,1000,3000] [--clusters 3] [--fanout-namespaces 300] [--latency-ms 20] [--json]`
 *
 * The engine on the local control plane, as the restricted identity infra/
 * defines, with figures rather than assertions. For each namespace count, on
 * a fresh cluster:
 * - the first run from empty (wall time, API requests by verb),
 * - a no-op run right after,
 * - the write floor: the same creates and patches from a bare loop through
 *   the same client at the same concurrency (scripts/bench-child.ts), so the
 *   engine's overhead is a ratio measured on the same machine in the same run,
 * - the engine's peak RSS (each run is its own process).
 * Once: the Lambda bundle's size and cold import time, and one run over
 * several clusters against one run over a single cluster, each API server
 * behind a proxy that adds `--latency-ms` to every request (the clusters'
 * API servers share this machine's cores; real ones are remote and apart).
 *
 * Progress goes to stderr. Without --json a table and the targets follow;
 * with --json the last stdout line is one JSON object (see BENCHMARKS.md).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { build } from 'esbuild';
import { parseConfig } from '../lib/config.ts';
import {
  applyRbac,
  createNamespaces,
  credentialFile,
  PATCHER_GROUP,
  tempDir,
} from '../test/integration/fixture.ts';
import { type Rig, startRig, type TestCluster } from '../test/rig/cluster.ts';
import { type FaultProxy, startFaultProxy } from '../test/rig/fault-proxy.ts';
import type { ChildResult, EngineJob, FloorJob } from './bench-child.ts';
import { BUILD_OPTIONS, bundle } from './bundle.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const run = promisify(execFile);

export const TARGETS = {
  noopRequestsPerMappingPerCluster: 5,
  convergeOverFloorAt1000: 1.5,
  peakRssMBAt3000: 200,
  bundleBytes: 2_000_000,
  coldImportMs: 300,
} as const;

const { values } = parseArgs({
  options: {
    namespaces: { type: 'string', default: '100,1000,3000' },
    clusters: { type: 'string', default: '3' },
    'fanout-namespaces': { type: 'string', default: '300' },
    'latency-ms': { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
  },
  strict: true,
});

function positiveInts(flag: string, text: string, min: number): number[] {
  const out = text.split(',').map((part) => Number(part.trim()));
  if (out.some((n) => !Number.isInteger(n) || n < min)) {
    console.error(`--${flag}: expected integers ≥ ${min} separated by commas, got "${text}"`);
    process.exit(2);
  }
  return out;
}

const counts = positiveInts('namespaces', values.namespaces, 1);
const [fanoutClusters = 0] = positiveInts('clusters', values.clusters, 0);
const [fanoutNamespaces = 1] = positiveInts('fanout-namespaces', values['fanout-namespaces'], 1);
const [latencyMs = 0] = positiveInts('latency-ms', values['latency-ms'], 0);
const say = (text: string) => process.stderr.write(`${text}\n`);
const secs = (s: number) => `${s.toFixed(2)} s`;

const work = mkdtempSync(path.join(tmpdir(), 'ipsp-bench-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const childBundle = path.join(work, 'bench-child.mjs');
await build({
  ...BUILD_OPTIONS,
  entryPoints: [path.join(ROOT, 'scripts', 'bench-child.ts')],
  outfile: childBundle,
});

/** Runs one job of scripts/bench-child.ts (bundled) in a fresh process; its progress passes through. */
async function child(job: EngineJob | FloorJob): Promise<ChildResult> {
  const promise = run(process.execPath, [childBundle, JSON.stringify(job)], {
    cwd: ROOT,
    maxBuffer: 256 * 1024 * 1024,
  });
  promise.child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  const { stdout } = await promise;
  const last = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as ChildResult;
}

/** Creates `prefix-0..n-1` as admin, with progress, and waits for their `default` accounts. */
async function createMany(cluster: TestCluster, prefix: string, n: number): Promise<string[]> {
  const names = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
  let shown = Date.now();
  await createNamespaces(
    cluster,
    names.map((name) => ({ name })),
    {
      timeoutMs: 600_000,
      onProgress: (created, total) => {
        if (Date.now() - shown < 2000) return;
        shown = Date.now();
        say(`    ${cluster.name}: created ${created}/${total} namespaces`);
      },
    },
  );
  return names;
}

function mapping(secretName: string, file: string, include: string) {
  return { secretName, source: { file }, namespaces: { include: [include] } };
}

type ClusterSetup = { cluster: TestCluster; kubeconfig: string };

/** Mints the patcher identity on each cluster and grants it the RBAC of `mappings`. */
async function setUp(rig: Rig, mappings: readonly unknown[]): Promise<ClusterSetup[]> {
  const out: ClusterSetup[] = [];
  for (const cluster of rig.clusters) {
    const identity = cluster.mintIdentity({ username: 'patcher', groups: [PATCHER_GROUP] });
    const clusters = [{ name: cluster.name, kube: { kubeconfig: identity.kubeconfigPath } }];
    await applyRbac(cluster, parseConfig({ clusters, mappings }, 'bench'));
    out.push({ cluster, kubeconfig: identity.kubeconfigPath });
  }
  return out;
}

function engineJob(setups: readonly ClusterSetup[], mappings: readonly unknown[]): EngineJob {
  return {
    mode: 'engine',
    config: {
      clusters: setups.map((s) => ({ name: s.cluster.name, kube: { kubeconfig: s.kubeconfig } })),
      mappings,
    },
  };
}

type Phase = { seconds: number; cpuSeconds: number; requests: number; byVerb: Record<string, number> };
type Result = {
  namespaces: number;
  converge: Phase & { converged: boolean };
  noop: Phase;
  floor: Phase;
  /** converge.seconds / floor.seconds */
  overFloor: number;
  /** The engine's peak RSS over both runs, and its process before the work (Node and the loaded code). */
  peakRssMB: number;
  baselineRssMB: number;
};

async function measureScale(n: number): Promise<Result> {
  say(`${n} namespaces: starting a cluster`);
  const rig = await startRig({ clusters: 1 });
  try {
    const names = await createMany(rig.clusters[0]!, 'bench', n);
    const cred = credentialFile(tempDir(), 'bench');
    const engineMapping = mapping('regcred', cred.path, 'bench-*');
    // The floor writes its own secret name; the identity may write both.
    const [setup] = await setUp(rig, [engineMapping, mapping('bench-floor', cred.path, 'bench-*')]);
    const job = engineJob([setup!], [engineMapping]);

    say(`${n} namespaces: first run`);
    const converge = await child(job);
    say(`${n} namespaces: no-op run`);
    const noop = await child(job);
    say(`${n} namespaces: write floor`);
    const floor = await child({
      mode: 'floor',
      kubeconfig: setup!.kubeconfig,
      secretName: 'bench-floor',
      serviceAccount: 'default',
      namespaces: names,
      concurrency: parseConfig({ mappings: [engineMapping] }, 'bench').settings.concurrency,
    });
    const phase = (r: ChildResult): Phase => ({
      seconds: r.seconds,
      cpuSeconds: r.cpuSeconds,
      requests: r.requests,
      byVerb: r.byVerb,
    });
    const result: Result = {
      namespaces: n,
      converge: { ...phase(converge), converged: converge.reports?.every((r) => r.converged) ?? false },
      noop: phase(noop),
      floor: phase(floor),
      overFloor: converge.seconds / floor.seconds,
      peakRssMB: Math.max(converge.peakRssMB, noop.peakRssMB),
      baselineRssMB: converge.baselineRssMB,
    };
    say(
      `${n} namespaces: first run ${secs(converge.seconds)} (${converge.requests} requests), ` +
        `floor ${secs(floor.seconds)} (${floor.requests}), no-op ${secs(noop.seconds)} (${noop.requests}), ` +
        `peak ${result.peakRssMB.toFixed(0)} MB`,
    );
    return result;
  } finally {
    await rig.stop();
  }
}

type Fanout = {
  clusters: number;
  namespacesPerCluster: number;
  /** Added to every request by a proxy in front of each API server, as the round trip to a remote control plane. */
  latencyMs: number;
  /** Wall time, and the engine's own CPU time (the API servers share this machine's cores). */
  single: { seconds: number; cpuSeconds: number };
  fanout: { seconds: number; cpuSeconds: number; perCluster: Record<string, number> };
  /** fanout.seconds / single.seconds */
  ratio: number;
};

async function measureFanout(k: number, n: number, latency: number): Promise<Fanout> {
  say(`fan-out: starting ${k} clusters of ${n} namespaces, ${latency} ms added to each request`);
  const rig = await startRig({ clusters: k });
  const proxies: FaultProxy[] = [];
  try {
    await Promise.all(rig.clusters.map((cluster) => createMany(cluster, 'fan', n)));
    const cred = credentialFile(tempDir(), 'fanout');
    const single = mapping('fan-single', cred.path, 'fan-*');
    const all = mapping('fan-all', cred.path, 'fan-*');
    const setups = await setUp(rig, [single, all]);
    if (latency > 0) {
      for (const { cluster, kubeconfig } of setups) {
        const proxy = await startFaultProxy(cluster);
        proxy.setHook(() => new Promise((resolve) => setTimeout(() => resolve(undefined), latency)));
        proxy.route(kubeconfig);
        proxies.push(proxy);
      }
    }
    say('fan-out: one cluster');
    const one = await child(engineJob(setups.slice(0, 1), [single]));
    say(`fan-out: ${k} clusters in one run`);
    const many = await child(engineJob(setups, [all]));
    const perCluster = Object.fromEntries((many.reports ?? []).map((r) => [r.cluster, r.durationMs / 1000]));
    say(`fan-out: one cluster ${secs(one.seconds)}, ${k} clusters ${secs(many.seconds)}`);
    return {
      clusters: k,
      namespacesPerCluster: n,
      latencyMs: latency,
      single: { seconds: one.seconds, cpuSeconds: one.cpuSeconds },
      fanout: { seconds: many.seconds, cpuSeconds: many.cpuSeconds, perCluster },
      ratio: many.seconds / one.seconds,
    };
  } finally {
    await Promise.all(proxies.map((proxy) => proxy.close()));
    await rig.stop();
  }
}

/** Bundle size, and the median over five fresh processes of importing it. */
async function measureBundle(): Promise<{ bytes: number; coldImportMs: number }> {
  say('bundle: building');
  const built = await bundle({ outdir: path.join(work, 'bundle') });
  const script =
    'const t = performance.now(); await import(process.argv[1]); process.stdout.write(String(performance.now() - t));';
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script, built.bundle], {
      env: { PATH: process.env.PATH ?? '', AWS_REGION: 'us-east-1' },
    });
    times.push(Number(stdout));
  }
  times.sort((a, b) => a - b);
  const coldImportMs = times[2]!;
  say(`bundle: ${built.bytes} bytes, cold import ${coldImportMs.toFixed(0)} ms`);
  return { bytes: built.bytes, coldImportMs };
}

type Verdict = { target: string; figure: string; met: boolean };

function verdicts(results: readonly Result[], built: { bytes: number; coldImportMs: number }): Verdict[] {
  const out: Verdict[] = [];
  for (const r of results) {
    // One mapping on one cluster.
    out.push({
      target: `no-op ≤ ${TARGETS.noopRequestsPerMappingPerCluster} requests per mapping per cluster (${r.namespaces} ns)`,
      figure: `${r.noop.requests}`,
      met: r.noop.requests <= TARGETS.noopRequestsPerMappingPerCluster,
    });
  }
  const at1000 = results.find((r) => r.namespaces === 1000);
  if (at1000) {
    out.push({
      target: `first run ≤ ${TARGETS.convergeOverFloorAt1000}× the write floor (1000 ns)`,
      figure: `${at1000.overFloor.toFixed(2)}×`,
      met: at1000.overFloor <= TARGETS.convergeOverFloorAt1000,
    });
  }
  const at3000 = results.find((r) => r.namespaces === 3000);
  if (at3000) {
    out.push({
      target: `peak memory ≤ ${TARGETS.peakRssMBAt3000} MB (3000 ns)`,
      figure: `${at3000.peakRssMB.toFixed(0)} MB`,
      met: at3000.peakRssMB <= TARGETS.peakRssMBAt3000,
    });
  }
  out.push({
    target: `bundle ≤ ${TARGETS.bundleBytes} bytes`,
    figure: `${built.bytes}`,
    met: built.bytes <= TARGETS.bundleBytes,
  });
  out.push({
    target: `cold import ≤ ${TARGETS.coldImportMs} ms`,
    figure: `${built.coldImportMs.toFixed(0)} ms`,
    met: built.coldImportMs <= TARGETS.coldImportMs,
  });
  return out;
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')).join('\n');
}

const verbs = (byVerb: Record<string, number>) =>
  Object.entries(byVerb)
    .filter(([, n]) => n > 0)
    .map(([verb, n]) => `${verb} ${n}`)
    .join(', ');

const built = await measureBundle();
const results: Result[] = [];
for (const n of counts) results.push(await measureScale(n));
const fanout =
  fanoutClusters > 0 ? await measureFanout(fanoutClusters, fanoutNamespaces, latencyMs) : undefined;
const checks = verdicts(results, built);

const extras = { bundle: { bytes: built.bytes }, coldImportMs: built.coldImportMs, fanout, targets: checks };
if (values.json) {
  const output =
    results.length === 1
      ? { ...results[0], ...extras }
      : { results: results.map((r) => ({ ...r, ...extras })) };
  process.stdout.write(`${JSON.stringify(output)}\n`);
} else {
  const lines = [
    '',
    table([
      [
        'namespaces',
        'first run',
        'requests',
        'write floor',
        'vs floor',
        'no-op',
        'no-op requests',
        'peak RSS',
      ],
      ...results.map((r) => [
        String(r.namespaces),
        secs(r.converge.seconds),
        `${r.converge.requests} (${verbs(r.converge.byVerb)})`,
        secs(r.floor.seconds),
        `${r.overFloor.toFixed(2)}×`,
        secs(r.noop.seconds),
        `${r.noop.requests} (${verbs(r.noop.byVerb)})`,
        `${r.peakRssMB.toFixed(0)} MB (${r.baselineRssMB.toFixed(0)} before work)`,
      ]),
    ]),
    '',
    `bundle: ${built.bytes} bytes; cold import ${built.coldImportMs.toFixed(0)} ms`,
    fanout
      ? `fan-out (${fanout.latencyMs} ms per request): ${fanout.clusters} clusters × ${fanout.namespacesPerCluster} namespaces in ${secs(fanout.fanout.seconds)} ` +
        `(engine CPU ${secs(fanout.fanout.cpuSeconds)}), one cluster in ${secs(fanout.single.seconds)} ` +
        `(engine CPU ${secs(fanout.single.cpuSeconds)}): ${fanout.ratio.toFixed(2)}× the wall time`
      : '',
    '',
    table([['target', 'figure', ''], ...checks.map((c) => [c.target, c.figure, c.met ? 'met' : 'MISSED'])]),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
