/**
 * One measured workload of `npm run bench`, in a process of its own so that
 * its peak memory is the engine's alone. The benchmark runs it bundled the
 * way the Lambda is (scripts/bundle.ts BUILD_OPTIONS), so the figures are
 * those of shipped code, not of TypeScript stripped at load. Reads a job as
 * JSON from argv[2], writes progress to stderr and one JSON result line to
 * stdout.
 *
 * - `engine`: `run()` on a configuration, as the CLI runs it.
 * - `floor`: the writes a first run makes (a secret create, then a service
 *   account patch, per namespace), issued by a bare loop through the same
 *   KubeClient at the same concurrency, after one list of the accounts: the
 *   least any engine could do.
 */
import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import pLimit from 'p-limit';
import { kubeConfigFor, kubeConnection } from '../lib/clusters.ts';
import { parseConfig } from '../lib/config.ts';
import { KubeClient } from '../lib/kube.ts';
import {
  CONTENT_HASH_ANNOTATION,
  DOCKER_CONFIG_KEY,
  DOCKER_CONFIG_TYPE,
  MANAGED_LABEL,
  MAPPING_ANNOTATION,
} from '../lib/ownership.ts';
import type { ClusterReport } from '../lib/report.ts';
import { run } from '../lib/run.ts';

export type EngineJob = { readonly mode: 'engine'; readonly config: unknown };
export type FloorJob = {
  readonly mode: 'floor';
  readonly kubeconfig: string;
  readonly secretName: string;
  readonly serviceAccount: string;
  readonly namespaces: readonly string[];
  readonly concurrency: number;
};
export type ChildResult = {
  readonly seconds: number;
  readonly requests: number;
  readonly byVerb: Record<string, number>;
  /** Peak RSS of the whole process, and before the work began (Node and the loaded code). */
  readonly peakRssMB: number;
  readonly baselineRssMB: number;
  /** CPU time (user + system) this process spent on the work. */
  readonly cpuSeconds: number;
  readonly reports?: readonly ClusterReport[];
};

/**
 * Peak resident memory of this process in MB: VmHWM, which starts afresh at
 * exec. (getrusage's maxRSS does not: on Linux it keeps the high-water mark
 * of the parent the child was forked from.)
 */
function peakRssMB(): number {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]) / 1024;
  } catch {}
  return process.resourceUsage().maxRSS / 1024;
}

const progress = (text: string) => process.stderr.write(`${text}\n`);

type Work = Omit<ChildResult, 'peakRssMB' | 'baselineRssMB' | 'cpuSeconds'>;

async function engine(job: EngineJob): Promise<Work> {
  const config = parseConfig(job.config, 'bench');
  const started = performance.now();
  let last = 0;
  const reports = await run(
    config,
    { trigger: 'manual', dryRun: false },
    {
      connect: async (cluster) => {
        if (!('kube' in cluster)) throw new Error('the benchmark runs on local clusters only');
        return kubeConnection(kubeConfigFor(cluster));
      },
      onProgress: (cluster, done, total) => {
        if (done === total || performance.now() - last > 2000) {
          last = performance.now();
          progress(`    ${cluster}: ${done}/${total} actions`);
        }
      },
    },
  );
  const seconds = (performance.now() - started) / 1000;
  const byVerb: Record<string, number> = {};
  for (const report of reports) {
    for (const [verb, n] of Object.entries(report.requests.byVerb)) byVerb[verb] = (byVerb[verb] ?? 0) + n;
  }
  const requests = reports.reduce((sum, r) => sum + r.requests.total, 0);
  return { seconds, requests, byVerb, reports };
}

async function floor(job: FloorJob): Promise<Work> {
  const kc = new KubeConfig();
  kc.loadFromFile(job.kubeconfig);
  const client = new KubeClient(await kubeConnection(kc));
  const started = performance.now();
  const accounts = new Map(
    (await client.listServiceAccounts(job.serviceAccount)).map((sa) => [sa.namespace, sa]),
  );
  const data = {
    [DOCKER_CONFIG_KEY]: Buffer.from(JSON.stringify({ auths: { 'floor.example.com': {} } })).toString(
      'base64',
    ),
  };
  const limit = pLimit(job.concurrency);
  await Promise.all(
    job.namespaces.map((namespace) =>
      limit(async () => {
        await client.createSecret(namespace, {
          name: job.secretName,
          labels: { [MANAGED_LABEL]: 'true' },
          annotations: {
            [MAPPING_ANNOTATION]: job.secretName,
            [CONTENT_HASH_ANNOTATION]: '0000000000000000',
          },
          type: DOCKER_CONFIG_TYPE,
          data,
        });
        const sa = accounts.get(namespace);
        if (!sa) throw new Error(`no service account ${namespace}/${job.serviceAccount}`);
        await client.setImagePullSecrets(
          namespace,
          sa.name,
          [...sa.imagePullSecrets, job.secretName],
          sa.resourceVersion,
        );
      }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  return { seconds, requests: client.stats.total, byVerb: { ...client.stats.byVerb } };
}

if (import.meta.main) {
  const job = JSON.parse(process.argv[2] ?? '{}') as EngineJob | FloorJob;
  const baselineRssMB = peakRssMB();
  const cpu = process.cpuUsage();
  const result = job.mode === 'floor' ? await floor(job) : await engine(job);
  const { user, system } = process.cpuUsage(cpu);
  const cpuSeconds = (user + system) / 1e6;
  process.stdout.write(
    `${JSON.stringify({ ...result, peakRssMB: peakRssMB(), baselineRssMB, cpuSeconds } satisfies ChildResult)}\n`,
  );
}
