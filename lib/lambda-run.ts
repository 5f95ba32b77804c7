/**
 * What the Lambda adds around a {@link run}: a deadline that stops new work
 * before the invocation runs out of time, the way clusters are reached from
 * Lambda (EKS only), the per-cluster fan-out to asynchronous invokes, the
 * per-cluster metrics and log summaries, and the verdict that fails the
 * invocation when a cluster did not converge. Pure or boundary-injected, so
 * the handler in functions/ stays wiring only.
 */
import { InvokeCommand, type InvokeCommandOutput } from '@aws-sdk/client-lambda';
import pLimit from 'p-limit';
import type { ClusterConfig, Config, EksClusterConfig } from './config.ts';
import { ClusterAccessError, DeadlineError, describeError, PatcherError } from './errors.ts';
import { type ClusterPayload, type RunRequest, Trigger, toClusterPayload } from './events.ts';
import type { KubeConnection } from './kube-http.ts';
import { type ClusterReport, COUNTED, type CountName, clusterFailed } from './report.ts';
import { scope } from './run.ts';

// ---------------------------------------------------------------------------
// Deadline

/** Default time kept in reserve before the Lambda timeout: stop starting writes this early. */
export const DEFAULT_DEADLINE_MARGIN_MS = 60_000;

/** An abort signal tied to the invocation's deadline; `dispose` clears its timer. */
export type Deadline = {
  readonly signal: AbortSignal;
  /** Milliseconds from now at which the signal fires. */
  readonly firesInMs: number;
  readonly dispose: () => void;
};

/** Timer functions, injectable for tests. */
export type Timers = {
  readonly setTimeout: (callback: () => void, ms: number) => unknown;
  readonly clearTimeout: (handle: unknown) => void;
};

const realTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/**
 * A signal that fires `marginMs` before the invocation's remaining time runs
 * out, so the engine stops starting writes while there is still time to
 * finish, report and publish metrics. The margin is capped at a quarter of
 * the remaining time: with a short function timeout (or a large margin) the
 * run still gets most of its time instead of being stopped at once.
 *
 * @example deadlineSignal(900_000, 60_000).firesInMs // 840000
 * @example deadlineSignal(40_000, 60_000).firesInMs // 30000 (margin capped at 10000)
 */
export function deadlineSignal(remainingMs: number, marginMs: number, timers: Timers = realTimers): Deadline {
  const controller = new AbortController();
  const remaining = Math.max(0, remainingMs);
  const margin = Math.min(Math.max(0, marginMs), Math.floor(remaining / 4));
  const firesInMs = remaining - margin;
  const handle = timers.setTimeout(() => {
    controller.abort(new DeadlineError(`stopped ${margin} ms before the invocation's deadline`));
  }, firesInMs);
  // A pending timer must not keep a local process alive; in Lambda it is cleared by dispose().
  (handle as { unref?: () => void } | undefined)?.unref?.();
  return { signal: controller.signal, firesInMs, dispose: () => timers.clearTimeout(handle) };
}

// ---------------------------------------------------------------------------
// Reaching clusters from Lambda

/**
 * The `connect` the engine uses in Lambda: EKS clusters through `connectEks`;
 * `kube:` clusters (kubeconfig contexts, meant for the CLI) are refused with a
 * clear error. Once `signal` has fired, clusters that have not started yet are
 * not started at all, and their reports say so.
 */
export function lambdaConnect(
  connectEks: (cluster: EksClusterConfig) => Promise<KubeConnection>,
  signal?: AbortSignal | undefined,
): (cluster: ClusterConfig) => Promise<KubeConnection> {
  return async (cluster) => {
    if (signal?.aborted) {
      throw new DeadlineError(`cluster "${cluster.name}": not started, the invocation's deadline is near`);
    }
    if (!('eks' in cluster)) {
      throw new ClusterAccessError(
        `clusters[name="${cluster.name}"]: a kube (kubeconfig) cluster cannot be reached from Lambda; ` +
          'configure it with eks: { name, region }',
      );
    }
    return connectEks(cluster);
  };
}

// ---------------------------------------------------------------------------
// Verdict

/** Re-exported: the verdict lives with the report. */
export { clusterFailed };

/** Error code of {@link failureOf}. */
export const CLUSTERS_FAILED = 'CLUSTERS_FAILED';

/**
 * The error that fails the invocation when any cluster failed (so Lambda's
 * Errors metric and alarms see it), naming each failed cluster and why;
 * undefined when every cluster is fine. Call it after every report was logged.
 *
 * @example failureOf(reports)?.message
 *   // '1 of 2 clusters failed: staging (CLUSTER_ACCESS: cluster "staging": DescribeCluster ...)'
 */
export function failureOf(reports: readonly ClusterReport[]): PatcherError | undefined {
  const failed = reports.filter(clusterFailed);
  if (failed.length === 0) return undefined;
  const reasons = failed.map((r) => `${r.cluster} (${failureReason(r)})`);
  return new PatcherError(
    CLUSTERS_FAILED,
    `${failed.length} of ${reports.length} cluster${reports.length === 1 ? '' : 's'} failed: ${reasons.join('; ')}`,
  );
}

function failureReason(report: ClusterReport): string {
  const totals = countTotals(report);
  const parts = [
    ...report.errors.slice(0, 2),
    ...(report.errors.length > 2 ? [`${report.errors.length - 2} more errors`] : []),
    totals.errors > 0 ? `${totals.errors} namespace error${totals.errors === 1 ? '' : 's'}` : '',
    totals.conflicts > 0 ? `${totals.conflicts} conflict${totals.conflicts === 1 ? '' : 's'}` : '',
    report.notDone > 0 ? `${report.notDone} writes not started` : '',
  ].filter(Boolean);
  return parts.join(', ') || 'not converged';
}

// ---------------------------------------------------------------------------
// Metrics and log lines

/** The per-cluster metrics, their names in CloudWatch and their units. */
export const CLUSTER_METRICS = {
  Created: 'Count',
  Updated: 'Count',
  Adopted: 'Count',
  Pruned: 'Count',
  ReferencesAdded: 'Count',
  ReferencesRemoved: 'Count',
  Conflicts: 'Count',
  Errors: 'Count',
  NotDone: 'Count',
  DurationMs: 'Milliseconds',
  ApiRequests: 'Count',
} as const;
/** A per-cluster metric name. */
export type ClusterMetric = keyof typeof CLUSTER_METRICS;

type Totals = Record<CountName, number>;

function countTotals(report: ClusterReport): Totals {
  const totals = Object.fromEntries(Object.values(COUNTED).map((name) => [name, 0])) as Totals;
  for (const mapping of report.mappings) {
    for (const name of Object.values(COUNTED)) totals[name] += mapping.counts[name];
  }
  return totals;
}

/**
 * A cluster report's metric values. `Errors` counts namespace errors plus
 * cluster-wide errors (unreachable cluster, unusable source).
 */
export function clusterMetrics(report: ClusterReport): Record<ClusterMetric, number> {
  const t = countTotals(report);
  return {
    Created: t.created,
    Updated: t.updated,
    Adopted: t.adopted,
    Pruned: t.pruned,
    ReferencesAdded: t.referencesAdded,
    ReferencesRemoved: t.referencesRemoved,
    Conflicts: t.conflicts,
    Errors: t.errors + report.errors.length,
    NotDone: report.notDone,
    DurationMs: report.durationMs,
    ApiRequests: report.requests.total,
  };
}

/** A request's log fields: the trigger, the filters and the secret ids; never the event itself. */
export function requestLogEntry(request: RunRequest): Record<string, unknown> {
  return {
    trigger: request.trigger,
    dryRun: request.dryRun,
    ...(request.clusters ? { clusters: request.clusters } : {}),
    ...(request.mappings ? { mappings: request.mappings } : {}),
    ...(request.namespaces ? { namespaces: request.namespaces } : {}),
    ...(request.secretIds ? { secretIds: request.secretIds } : {}),
  };
}

/** How many conflicts and namespace errors a log line lists before it only counts. */
const LISTED = 20;

/**
 * One structured log line's worth of a cluster report: the verdict, the
 * totals, each mapping's non-zero counts, and the errors and conflicts with
 * their namespaces (the first {@link LISTED}). Reports hold no credential, so
 * neither does this; the full list of writes stays in the return value.
 */
export function clusterLogEntry(report: ClusterReport): Record<string, unknown> {
  const problems = (kind: 'errors' | 'conflicts') => {
    const all = report.mappings.flatMap((m) =>
      m[kind].map((n) => `${m.mapping}${n.namespace ? ` ${n.namespace}` : ''}: ${n.reason}`),
    );
    return all.length > LISTED ? [...all.slice(0, LISTED), `… ${all.length - LISTED} more`] : all;
  };
  return {
    cluster: report.cluster,
    dryRun: report.dryRun,
    converged: report.converged,
    failed: clusterFailed(report),
    durationMs: report.durationMs,
    apiRequests: report.requests.total,
    apiRetries: report.requests.retries,
    totals: clusterMetrics(report),
    mappings: report.mappings.map((m) => ({
      mapping: m.mapping,
      secretName: m.secretName,
      counts: Object.fromEntries(Object.entries(m.counts).filter(([, n]) => n > 0)),
      ...(Object.keys(m.skipped).length > 0 ? { skipped: m.skipped } : {}),
    })),
    ...(report.errors.length > 0 ? { clusterErrors: report.errors } : {}),
    ...(problems('errors').length > 0 ? { namespaceErrors: problems('errors') } : {}),
    ...(problems('conflicts').length > 0 ? { conflicts: problems('conflicts') } : {}),
    ...(report.notDone > 0 ? { notDone: report.notDone } : {}),
    ...(report.dryRun ? { plannedWrites: report.writes.length } : {}),
  };
}

// ---------------------------------------------------------------------------
// Fan-out

/** Whether a request is one the fan-out splits per cluster: the automatic triggers only. */
export function fansOut(request: RunRequest): boolean {
  // A manual invoke wants its reports back; a cluster invoke is already the split.
  return request.trigger === Trigger.schedule || request.trigger === Trigger.secretChange;
}

/** The Lambda client surface the fan-out needs (a `LambdaClient` fits). */
export type LambdaInvoker = {
  readonly send: (
    command: InvokeCommand,
  ) => Promise<Pick<InvokeCommandOutput, 'StatusCode' | 'FunctionError'>>;
};

/** What the fan-out did for one cluster. */
export type FanOutResult = {
  readonly cluster: string;
  readonly invoked: boolean;
  readonly error?: string;
};

/** Error code of a fan-out in which some invokes failed. */
export const FAN_OUT_FAILED = 'FAN_OUT_FAILED';

/** Asynchronous invokes sent in parallel. */
const INVOKE_CONCURRENCY = 10;

/**
 * Splits `request` into one asynchronous invoke (`InvocationType: Event`) of
 * `functionName` per cluster it covers, each with the payload
 * {@link toClusterPayload} builds, so every cluster gets its own time and
 * memory budget. One failed invoke never stops the others; the results say
 * which ones were sent. Each invoked run reports, logs and alarms on its own.
 */
export async function fanOut(options: {
  readonly config: Config;
  readonly request: RunRequest;
  readonly lambda: LambdaInvoker;
  readonly functionName: string;
}): Promise<FanOutResult[]> {
  const { clusters } = scope(options.config, options.request);
  const limit = pLimit(INVOKE_CONCURRENCY);
  const encoder = new TextEncoder();
  return Promise.all(
    clusters.map((cluster) =>
      limit(async (): Promise<FanOutResult> => {
        const payload: ClusterPayload = toClusterPayload(options.request, cluster.name);
        try {
          const out = await options.lambda.send(
            new InvokeCommand({
              FunctionName: options.functionName,
              InvocationType: 'Event',
              Payload: encoder.encode(JSON.stringify(payload)),
            }),
          );
          if (out.StatusCode !== 202) {
            return {
              cluster: cluster.name,
              invoked: false,
              error: `Invoke returned status ${out.StatusCode}`,
            };
          }
          return { cluster: cluster.name, invoked: true };
        } catch (error) {
          return { cluster: cluster.name, invoked: false, error: describeError(error) };
        }
      }),
    ),
  );
}

/** The error that fails a fan-out invocation when an invoke could not be sent; undefined when all were. */
export function fanOutFailure(results: readonly FanOutResult[]): PatcherError | undefined {
  const failed = results.filter((r) => !r.invoked);
  if (failed.length === 0) return undefined;
  return new PatcherError(
    FAN_OUT_FAILED,
    `${failed.length} of ${results.length} cluster invokes failed: ${failed
      .map((r) => `${r.cluster} (${r.error})`)
      .join('; ')}`,
  );
}
