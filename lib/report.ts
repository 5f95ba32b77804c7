/**
 * What a run did (or, in a dry run, would do), per cluster and mapping:
 * counts of each action, the conflicts and errors with their namespaces,
 * skip reasons, duration and API requests. Rendered as a table or JSON.
 */
import type { ActionResult } from './apply.ts';
import type { RequestStats } from './kube.ts';
import { type Action, type ActionKind, isWrite } from './plan.ts';

export const COUNTED = {
  create: 'created',
  update: 'updated',
  adopt: 'adopted',
  noop: 'unchanged',
  'sa-add': 'referencesAdded',
  'sa-remove': 'referencesRemoved',
  prune: 'pruned',
  conflict: 'conflicts',
  error: 'errors',
  skip: 'skipped',
} as const satisfies Record<ActionKind, string>;
export type CountName = (typeof COUNTED)[ActionKind];

export type NamespaceNote = { readonly namespace: string; readonly reason: string };

export type MappingReport = {
  mapping: string;
  secretName: string;
  counts: Record<CountName, number>;
  conflicts: NamespaceNote[];
  errors: NamespaceNote[];
  /** Namespaces skipped, by reason. */
  skipped: Record<string, number>;
};

/** One planned or performed write, for dry runs and JSON output. */
export type PlanEntry = {
  kind: ActionKind;
  namespace: string;
  secretName: string;
  mapping: string;
  serviceAccount?: string;
  reason: string;
  outcome?: string;
};

export type ClusterReport = {
  cluster: string;
  dryRun: boolean;
  /** True when nothing failed, nothing conflicts, and nothing was left undone. */
  converged: boolean;
  durationMs: number;
  requests: RequestStats;
  mappings: MappingReport[];
  /** Errors not tied to one namespace (cluster unreachable, source invalid, ...). */
  errors: string[];
  /** Writes not started because the run was stopped (deadline). */
  notDone: number;
  /** The writes, planned (dry run) or performed, with their reasons. */
  writes: PlanEntry[];
};

function emptyCounts(): Record<CountName, number> {
  return Object.fromEntries(Object.values(COUNTED).map((name) => [name, 0])) as Record<CountName, number>;
}

function entry(action: Action, outcome?: string): PlanEntry {
  return {
    kind: action.kind,
    namespace: action.namespace,
    secretName: action.secretName,
    mapping: action.mapping,
    ...('serviceAccount' in action ? { serviceAccount: action.serviceAccount } : {}),
    reason: action.reason,
    ...(outcome ? { outcome } : {}),
  };
}

export type ReportInput = {
  readonly cluster: string;
  readonly dryRun: boolean;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly requests: RequestStats;
  /** Mappings in configuration order, so the report lists them even when they did nothing. */
  readonly mappings: readonly { name: string; secretName: string }[];
  readonly actions: readonly Action[];
  /** Results of the writes; undefined in a dry run. */
  readonly results?: readonly ActionResult[] | undefined;
  readonly errors: readonly string[];
  readonly mappingErrors?: ReadonlyMap<string, string>;
};

export function buildReport(input: ReportInput): ClusterReport {
  const byMapping = new Map<string, MappingReport>();
  const get = (name: string, secretName: string): MappingReport => {
    let report = byMapping.get(name);
    if (!report) {
      report = { mapping: name, secretName, counts: emptyCounts(), conflicts: [], errors: [], skipped: {} };
      byMapping.set(name, report);
    }
    return report;
  };
  for (const m of input.mappings) get(m.name, m.secretName);
  for (const [name, message] of input.mappingErrors ?? []) {
    const report = byMapping.get(name);
    if (report) {
      report.errors.push({ namespace: '', reason: message });
      report.counts.errors++;
    }
  }

  const resultOf = new Map(input.results?.map((r) => [r.action, r]));
  const writes: PlanEntry[] = [];
  let notDone = 0;
  for (const action of input.actions) {
    const report = get(action.mapping, action.secretName);
    const result = resultOf.get(action);
    if (!result) {
      report.counts[COUNTED[action.kind]]++;
      if (action.kind === 'conflict')
        report.conflicts.push({ namespace: action.namespace, reason: action.reason });
      if (action.kind === 'error') report.errors.push({ namespace: action.namespace, reason: action.reason });
      if (action.kind === 'skip') report.skipped[action.reason] = (report.skipped[action.reason] ?? 0) + 1;
      if (input.dryRun && resultOf.size === 0 && isWrite(action)) writes.push(entry(action));
      continue;
    }
    writes.push(
      entry(
        action,
        result.outcome === 'done'
          ? undefined
          : `${result.outcome}${result.detail ? `: ${result.detail}` : ''}`,
      ),
    );
    switch (result.outcome) {
      case 'done':
        report.counts[COUNTED[result.kind]]++;
        break;
      case 'noop':
        report.counts.unchanged++;
        break;
      case 'conflict':
        report.counts.conflicts++;
        report.conflicts.push({ namespace: action.namespace, reason: result.detail ?? 'conflict' });
        break;
      case 'skipped':
        report.counts.skipped++;
        report.skipped[result.detail ?? 'skipped'] = (report.skipped[result.detail ?? 'skipped'] ?? 0) + 1;
        break;
      case 'failed':
        report.counts.errors++;
        report.errors.push({ namespace: action.namespace, reason: result.detail ?? 'failed' });
        break;
      case 'not-started':
        notDone++;
        break;
    }
  }
  const mappings = [...byMapping.values()];
  const trouble = mappings.some((m) => m.counts.errors > 0 || m.counts.conflicts > 0);
  return {
    cluster: input.cluster,
    dryRun: input.dryRun,
    // A dry run converged only when it would write nothing.
    converged: input.errors.length === 0 && !trouble && notDone === 0 && !(input.dryRun && writes.length > 0),
    durationMs: input.finishedAt - input.startedAt,
    requests: input.requests,
    mappings,
    errors: [...input.errors],
    notDone,
    writes,
  };
}

/**
 * Whether a cluster's report counts as a failure: not converged (errors,
 * conflicts, or writes left undone), or, in a dry run, which plans and
 * writes nothing, any error. The CLI's exit code and the Lambda's verdict.
 */
export function clusterFailed(report: ClusterReport): boolean {
  if (!report.dryRun) return !report.converged;
  return report.errors.length > 0 || report.mappings.some((m) => m.counts.errors > 0);
}

const COLUMNS: readonly [string, CountName][] = [
  ['created', 'created'],
  ['updated', 'updated'],
  ['adopted', 'adopted'],
  ['unchanged', 'unchanged'],
  ['SA refs +', 'referencesAdded'],
  ['SA refs -', 'referencesRemoved'],
  ['pruned', 'pruned'],
  ['conflicts', 'conflicts'],
  ['errors', 'errors'],
  ['skipped', 'skipped'],
];

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows
    .map((row) =>
      row.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  '),
    )
    .join('\n');
}

/** A human-readable report of several clusters. */
export function renderTable(reports: readonly ClusterReport[]): string {
  const out: string[] = [];
  for (const r of reports) {
    const verbs = Object.entries(r.requests.byVerb)
      .filter(([, n]) => n > 0)
      .map(([verb, n]) => `${verb} ${n}`)
      .join(', ');
    const state = r.dryRun ? 'dry run, nothing written' : r.converged ? 'converged' : 'NOT converged';
    out.push(
      `cluster ${r.cluster}: ${state} in ${(r.durationMs / 1000).toFixed(2)} s, ${r.requests.total} API requests (${verbs || 'none'})`,
    );
    for (const e of r.errors) out.push(`  error: ${e}`);
    if (r.mappings.length > 0) {
      const header = ['mapping', 'secret', ...COLUMNS.map(([title]) => title)];
      const rows = r.mappings.map((m) => [
        m.mapping,
        m.secretName,
        ...COLUMNS.map(([, key]) => String(m.counts[key])),
      ]);
      out.push(table([header, ...rows]).replace(/^/gm, '  '));
    }
    for (const m of r.mappings) {
      for (const c of m.conflicts)
        out.push(`  conflict ${m.mapping} ${c.namespace}/${m.secretName}: ${c.reason}`);
      for (const e of m.errors)
        out.push(`  error ${m.mapping}${e.namespace ? ` ${e.namespace}` : ''}: ${e.reason}`);
      const skipped = Object.entries(m.skipped)
        .map(([reason, n]) => `${reason} ${n}`)
        .join(', ');
      if (skipped) out.push(`  skipped ${m.mapping}: ${skipped}`);
    }
    if (r.notDone > 0)
      out.push(`  not started (deadline near, or API server unreachable): ${r.notDone} writes`);
    if (r.dryRun) {
      for (const w of r.writes) {
        out.push(
          `  would ${w.kind} ${w.namespace}/${w.secretName}${w.serviceAccount ? ` (service account ${w.serviceAccount})` : ''}: ${w.reason}`,
        );
      }
    }
  }
  return out.join('\n');
}
