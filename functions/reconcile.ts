/**
 * The Lambda entry point: one handler for every trigger (the EventBridge
 * schedule, Secrets Manager change events, a manual invoke, and the
 * per-cluster invokes of the fan-out). Wiring only: parse the event, load the
 * bundled configuration once per container, then either fan out or run the
 * engine, and report each cluster as a log line and EMF metrics. The
 * invocation fails, after every cluster has been reported, when any cluster
 * did not converge, so Lambda's Errors metric and alarms see it.
 *
 * Environment (read here and nowhere else):
 * - `PATCHER_CONFIG`: the patcher configuration; a relative path resolves
 *   against this module's directory (default `imagepullsecret-patcher.yaml`,
 *   the file scripts/bundle.ts copies beside the bundle).
 * - `PATCHER_FAN_OUT`: `true` to turn scheduled and secret-change runs into
 *   one asynchronous invoke per cluster (default `false`).
 * - `PATCHER_DEADLINE_MARGIN_MS`: stop starting writes this long before the
 *   Lambda timeout (default 60000; capped at a quarter of the remaining time).
 * Powertools reads its own `POWERTOOLS_*` variables.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { createAwsClients } from '../lib/aws-clients.ts';
import { type Config, type EksClusterConfig, loadConfig } from '../lib/config.ts';
import { eksConnection } from '../lib/eks.ts';
import { ConfigError, describeError } from '../lib/errors.ts';
import { parseInvocation } from '../lib/events.ts';
import type { KubeConnection } from '../lib/kube-http.ts';
import {
  CLUSTER_METRICS,
  type ClusterMetric,
  clusterFailed,
  clusterLogEntry,
  clusterMetrics,
  DEFAULT_DEADLINE_MARGIN_MS,
  deadlineSignal,
  type FanOutResult,
  failureOf,
  fanOut,
  fanOutFailure,
  fansOut,
  type LambdaInvoker,
  lambdaConnect,
  requestLogEntry,
} from '../lib/lambda-run.ts';
import type { ClusterReport } from '../lib/report.ts';
import { run } from '../lib/run.ts';

/** The handler's settings from the environment. */
export type HandlerSettings = {
  readonly configPath: string;
  readonly fanOut: boolean;
  readonly deadlineMarginMs: number;
};

/** Default `PATCHER_CONFIG`, relative to the bundle's directory. */
export const DEFAULT_CONFIG_FILE = 'imagepullsecret-patcher.yaml';

/**
 * Reads the handler's settings from `env`; a malformed value is a
 * ConfigError naming the variable (thrown at import, so the function fails
 * to initialise rather than running with a setting it did not ask for).
 */
export function settingsFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  baseDir: string,
): HandlerSettings {
  const fanOutText = env.PATCHER_FAN_OUT?.trim().toLowerCase() ?? '';
  if (!['', 'true', 'false'].includes(fanOutText)) {
    throw new ConfigError(`PATCHER_FAN_OUT: expected true or false, got "${env.PATCHER_FAN_OUT}"`);
  }
  const marginText = env.PATCHER_DEADLINE_MARGIN_MS?.trim() ?? '';
  if (marginText !== '' && !/^\d{1,9}$/.test(marginText)) {
    throw new ConfigError(
      `PATCHER_DEADLINE_MARGIN_MS: expected a whole number of milliseconds, got "${env.PATCHER_DEADLINE_MARGIN_MS}"`,
    );
  }
  return {
    configPath: path.resolve(baseDir, env.PATCHER_CONFIG?.trim() || DEFAULT_CONFIG_FILE),
    fanOut: fanOutText === 'true',
    deadlineMarginMs: marginText === '' ? DEFAULT_DEADLINE_MARGIN_MS : Number(marginText),
  };
}

/** What the handler needs from the outside world; tests pass fakes. */
export type HandlerDeps = {
  /** The configuration (the real one is loaded once per container). */
  readonly config: () => Promise<Config>;
  readonly run: typeof run;
  /** A connection to an EKS cluster, authenticated with a fresh EKS token. */
  readonly connectEks: (cluster: EksClusterConfig) => Promise<KubeConnection>;
  readonly secretsManager: (region: string | undefined) => SecretsManagerClient;
  readonly lambda: () => LambdaInvoker;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly fanOut: boolean;
  readonly deadlineMarginMs: number;
};

/** What an invocation returns. */
export type ReconcileResult =
  | { readonly ignored: string }
  | { readonly clusters: ClusterReport[] }
  | { readonly fanOut: FanOutResult[] };

/** Top-level (no cluster dimension) metrics. */
const INVOCATION_METRICS = {
  clusters: 'Clusters',
  clustersFailed: 'ClustersFailed',
  ignored: 'IgnoredEvents',
  invokes: 'FanOutInvokes',
  invokesFailed: 'FanOutInvokesFailed',
  failed: 'InvocationErrors',
} as const;

/** Memoises a load; a failure is not cached, so the next invocation tries again. */
export function once<T>(load: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= load().catch((error: unknown) => {
      pending = undefined;
      throw error;
    });
    return pending;
  };
}

/**
 * Builds the handler around `deps`: the real one is `makeHandler(realDeps)`,
 * tests pass fakes for the engine, the Lambda client and the configuration.
 */
export function makeHandler(deps: HandlerDeps) {
  const { logger, metrics } = deps;

  const publishCluster = (report: ClusterReport) => {
    const entry = clusterLogEntry(report);
    if (clusterFailed(report)) logger.error('cluster not converged', entry);
    else logger.info(report.dryRun ? 'cluster planned (dry run)' : 'cluster converged', entry);
    // A dry run's planned counts are not what happened: keep them out of the dashboards.
    if (report.dryRun) return;
    metrics.addDimension('cluster', report.cluster);
    const values = clusterMetrics(report);
    for (const [name, unit] of Object.entries(CLUSTER_METRICS)) {
      metrics.addMetric(name, unit, values[name as ClusterMetric]);
    }
    metrics.publishStoredMetrics();
  };

  const reconcile = async (event: unknown, context: Context): Promise<ReconcileResult> => {
    try {
      const request = parseInvocation(event);
      if (request.ignored !== undefined) {
        logger.info('event ignored', { ...requestLogEntry(request), reason: request.ignored });
        metrics.addMetric(INVOCATION_METRICS.ignored, MetricUnit.Count, 1);
        return { ignored: request.ignored };
      }
      const config = await deps.config();
      logger.info('run requested', requestLogEntry(request));

      if (deps.fanOut && fansOut(request)) {
        const results = await fanOut({
          config,
          request,
          lambda: deps.lambda(),
          functionName: context.functionName,
        });
        for (const result of results) {
          if (result.invoked) logger.info('cluster invoke sent', { cluster: result.cluster });
          else logger.error('cluster invoke failed', { cluster: result.cluster, error: result.error });
        }
        metrics.addMetric(
          INVOCATION_METRICS.invokes,
          MetricUnit.Count,
          results.filter((r) => r.invoked).length,
        );
        metrics.addMetric(
          INVOCATION_METRICS.invokesFailed,
          MetricUnit.Count,
          results.filter((r) => !r.invoked).length,
        );
        const failure = fanOutFailure(results);
        if (failure) throw failure;
        return { fanOut: results };
      }

      // Without a context clock (a local harness) there is no deadline but Lambda's own.
      const deadline =
        typeof context.getRemainingTimeInMillis === 'function'
          ? deadlineSignal(context.getRemainingTimeInMillis(), deps.deadlineMarginMs)
          : undefined;
      let reports: ClusterReport[];
      try {
        reports = await deps.run(config, request, {
          connect: lambdaConnect(deps.connectEks, deadline?.signal),
          secretsManager: deps.secretsManager,
          signal: deadline?.signal,
        });
      } finally {
        deadline?.dispose();
      }
      if (reports.length === 0)
        logger.info('nothing to do: no configured mapping and cluster match the request');
      for (const report of reports) publishCluster(report);
      metrics.addMetric(INVOCATION_METRICS.clusters, MetricUnit.Count, reports.length);
      metrics.addMetric(
        INVOCATION_METRICS.clustersFailed,
        MetricUnit.Count,
        reports.filter(clusterFailed).length,
      );
      const failure = failureOf(reports);
      if (failure) throw failure;
      return { clusters: reports };
    } catch (error) {
      // The one place errors are logged; the runtime records the rethrown error as the function error.
      logger.error('invocation failed', { error: describeError(error) });
      metrics.addMetric(INVOCATION_METRICS.failed, MetricUnit.Count, 1);
      throw error;
    }
  };

  return middy(reconcile)
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics, { captureColdStartMetric: true }));
}

const moduleDir = path.dirname(fileURLToPath(import.meta.url));
const settings = settingsFromEnv(process.env, moduleDir);
const aws = createAwsClients();

/** The deployed handler (`dist/reconcile.handler`). */
export const handler = makeHandler({
  config: once(() => loadConfig(settings.configPath)),
  run,
  connectEks: (cluster) => eksConnection(cluster, {}),
  secretsManager: (region) => aws.secretsManager(region),
  lambda: aws.lambda,
  logger: new Logger(),
  metrics: new Metrics(),
  fanOut: settings.fanOut,
  deadlineMarginMs: settings.deadlineMarginMs,
});
