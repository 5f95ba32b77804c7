/**
 * One cluster's run: load each mapping's source, observe, plan, apply (unless
 * dry run), report. A failure of one mapping's source stops that mapping only;
 * a failure to observe stops the cluster; nothing here throws for either.
 */
import { apply } from './apply.ts';
import type { MappingConfig, Settings } from './config.ts';
import { describeError } from './errors.ts';
import type { KubeClient } from './kube.ts';
import { observe, observeAllAccountsIn } from './observe.ts';
import {
  type Action,
  type DesiredContent,
  type DesiredMapping,
  desiredMapping,
  plan,
  pruneCandidates,
} from './plan.ts';
import { buildReport, type ClusterReport } from './report.ts';

export type ClusterRun = {
  readonly cluster: string;
  readonly client: KubeClient;
  readonly mappings: readonly MappingConfig[];
  readonly retiredSecretNames: readonly string[];
  readonly settings: Pick<Settings, 'concurrency' | 'maxRetries'>;
  /** Loads a mapping's content; throws SourceError when the source is unusable. */
  readonly loadContent: (mapping: MappingConfig) => Promise<DesiredContent>;
  readonly dryRun: boolean;
  readonly onlyNamespaces?: ReadonlySet<string> | undefined;
  /** Mapping names this run acts for; the cluster's other mappings only inform the plan. */
  readonly onlyMappings?: ReadonlySet<string> | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((done: number, total: number) => void) | undefined;
  readonly now?: () => number;
};

export async function reconcileCluster(run: ClusterRun): Promise<ClusterReport> {
  const now = run.now ?? Date.now;
  const startedAt = now();
  const mappingErrors = new Map<string, string>();
  const desired: DesiredMapping[] = await Promise.all(
    run.mappings.map(async (m) => {
      let content: DesiredContent | undefined;
      try {
        if (!run.onlyMappings || run.onlyMappings.has(m.name)) content = await run.loadContent(m);
      } catch (error) {
        mappingErrors.set(m.name, `${describeError(error)}; nothing written for this mapping`);
      }
      return desiredMapping(m, content);
    }),
  );

  const errors: string[] = [];
  let actions: Action[] = [];
  let results: Awaited<ReturnType<typeof apply>> | undefined;
  try {
    const input = {
      mappings: desired,
      retiredSecretNames: run.retiredSecretNames,
      onlyNamespaces: run.onlyNamespaces,
      onlyMappings: run.onlyMappings,
    };
    let observed = await observe(run.client, desired, run.retiredSecretNames);
    observed = await observeAllAccountsIn(run.client, observed, pruneCandidates({ ...input, observed }));
    actions = plan({ ...input, observed });
    if (!run.dryRun) {
      results = await apply(run.client, actions, {
        concurrency: run.settings.concurrency,
        maxConflicts: run.settings.maxRetries,
        mappings: new Map(desired.map((m) => [m.name, m])),
        signal: run.signal,
        onProgress: run.onProgress,
      });
    }
  } catch (error) {
    errors.push(describeError(error));
  }
  return buildReport({
    cluster: run.cluster,
    dryRun: run.dryRun,
    startedAt,
    finishedAt: now(),
    requests: run.client.stats,
    mappings: run.mappings.filter((m) => !run.onlyMappings || run.onlyMappings.has(m.name)),
    actions,
    results,
    errors,
    mappingErrors,
  });
}
