/**
 * A whole run: which clusters and mappings a request covers, then each
 * cluster reconciled concurrently up to a limit. One cluster failing never
 * stops or slows the others; every cluster gets its own report. Shared by the
 * CLI and the Lambda, which differ only in how they connect to clusters.
 */
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import pLimit from 'p-limit';
import type { ClusterConfig, Config, MappingConfig } from './config.ts';
import { ConfigError, describeError } from './errors.ts';
import type { RunRequest } from './events.ts';
import { KubeClient } from './kube.ts';
import type { KubeConnection } from './kube-http.ts';
import { reconcileCluster } from './reconcile.ts';
import { buildReport, type ClusterReport } from './report.ts';
import { SourceCache } from './sources.ts';

export type RunDeps = {
  /** A connection to a cluster (local context, or EKS with a fresh token). */
  readonly connect: (cluster: ClusterConfig) => Promise<KubeConnection>;
  readonly secretsManager?: ((region: string | undefined) => SecretsManagerClient) | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((cluster: string, done: number, total: number) => void) | undefined;
  readonly sleep?: ((ms: number) => Promise<void>) | undefined;
};

/**
 * Whether a Secrets Manager id from an event (name or ARN) names the source
 * `secretId`. A full ARN ends in "-" and 6 random characters that a name and a
 * partial ARN lack; two full ARNs must be equal (a secret deleted and made
 * again under its name has a new one).
 */
export function sameSecret(sourceId: string, eventId: string): boolean {
  if (sourceId === eventId) return true;
  const arn = (id: string) => /^(arn:[^:]+:secretsmanager:[^:]*:\d*:secret:)(.+)$/.exec(id);
  const stripped = (name: string) => name.replace(/-[A-Za-z0-9]{6}$/, '');
  const [a, b] = [arn(sourceId), arn(eventId)];
  if (a && b) return a[1] === b[1] && (stripped(a[2]!) === b[2] || stripped(b[2]!) === a[2]);
  if (a) return stripped(a[2]!) === eventId;
  if (b) return stripped(b[2]!) === sourceId;
  return false;
}

export type RunScope = {
  readonly clusters: readonly ClusterConfig[];
  readonly mappings: readonly MappingConfig[];
  readonly full: boolean;
};

/** The clusters and mappings a request covers. Unknown names are a ConfigError. */
export function scope(config: Config, request: RunRequest): RunScope {
  const unknown = (kind: string, names: readonly string[] | undefined, known: readonly string[]) => {
    const missing = (names ?? []).filter((n) => !known.includes(n));
    if (missing.length)
      throw new ConfigError(
        `payload.${kind}: unknown ${kind} ${missing.map((n) => `"${n}"`).join(', ')} (configured: ${known.join(', ')})`,
      );
  };
  unknown(
    'clusters',
    request.clusters,
    config.clusters.map((c) => c.name),
  );
  unknown(
    'mappings',
    request.mappings,
    config.mappings.map((m) => m.name),
  );
  let mappings = config.mappings.filter((m) => !request.mappings || request.mappings.includes(m.name));
  if (request.secretIds) {
    const ids = request.secretIds;
    mappings = mappings.filter(
      (m) =>
        'secretsManager' in m.source &&
        ids.some((id) =>
          sameSecret((m.source as { secretsManager: { secretId: string } }).secretsManager.secretId, id),
        ),
    );
  }
  const clusters = config.clusters.filter(
    (c) =>
      (!request.clusters || request.clusters.includes(c.name)) &&
      mappings.some((m) => !m.clusters || m.clusters.includes(c.name)),
  );
  return { clusters, mappings, full: !request.mappings && !request.secretIds && !request.namespaces };
}

export async function run(config: Config, request: RunRequest, deps: RunDeps): Promise<ClusterReport[]> {
  const { clusters, mappings, full } = scope(config, request);
  const sources = new SourceCache();
  const limit = pLimit(config.settings.clusterConcurrency);
  return Promise.all(
    clusters.map((cluster) =>
      limit(async (): Promise<ClusterReport> => {
        const startedAt = Date.now();
        const inCluster = (m: MappingConfig) => !m.clusters || m.clusters.includes(cluster.name);
        const forCluster = mappings.filter(inCluster);
        let client: KubeClient;
        try {
          client = new KubeClient(await deps.connect(cluster), {
            retry: { maxRetries: config.settings.maxRetries },
            pageSize: config.settings.pageSize,
            signal: deps.signal,
            ...(deps.sleep ? { sleep: deps.sleep } : {}),
          });
        } catch (error) {
          return buildReport({
            cluster: cluster.name,
            dryRun: request.dryRun,
            startedAt,
            finishedAt: Date.now(),
            requests: { total: 0, retries: 0, byVerb: { list: 0, get: 0, create: 0, patch: 0, delete: 0 } },
            mappings: forCluster,
            actions: [],
            errors: [describeError(error)],
          });
        }
        return reconcileCluster({
          cluster: cluster.name,
          client,
          mappings: config.mappings.filter(inCluster),
          onlyMappings: full ? undefined : new Set(forCluster.map((m) => m.name)),
          // Retired names are cleaned up by full runs only: a partial run must not prune outside its scope.
          retiredSecretNames: full ? config.retiredSecretNames : [],
          settings: config.settings,
          loadContent: (m) => sources.load(m.source, { secretsManager: deps.secretsManager, kube: client }),
          dryRun: request.dryRun,
          onlyNamespaces: request.namespaces ? new Set(request.namespaces) : undefined,
          signal: deps.signal,
          onProgress: deps.onProgress
            ? (done, total) => deps.onProgress?.(cluster.name, done, total)
            : undefined,
        });
      }),
    ),
  );
}
