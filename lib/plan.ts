/**
 * The rules of the reconciliation, as one pure function: from what a cluster
 * has (observed) and what the mappings want (desired) to a list of actions,
 * each with its reason. No I/O happens here, so dry run is "plan and report",
 * and every rule is tested with plain tables.
 */

import type { MappingConfig, NamespaceSelection } from './config.ts';
import { isGlob, matchesAnyGlob } from './glob.ts';
import type { NamespaceInfo, SecretInfo, SecretManifest, ServiceAccountInfo } from './kube.ts';
import { isOptedOut, selectNamespace } from './namespaces.ts';
import {
  CONTENT_HASH_ANNOTATION,
  DOCKER_CONFIG_KEY,
  DOCKER_CONFIG_TYPE,
  MANAGED_LABEL,
  MAPPING_ANNOTATION,
  SOURCE_VERSION_ANNOTATION,
} from './ownership.ts';

/** The content a mapping distributes, loaded and validated from its source. */
export type DesiredContent = {
  /** The canonical `.dockerconfigjson` text. */
  readonly dockerConfigJson: string;
  readonly contentHash: string;
  /** Secrets Manager VersionId, source secret resourceVersion, or file hash. */
  readonly sourceVersion: string;
};

export type DesiredMapping = {
  readonly name: string;
  readonly secretName: string;
  readonly namespaces: NamespaceSelection;
  /** Service account names or globs; empty = patch none. */
  readonly serviceAccounts: readonly string[];
  readonly onConflict: 'skip' | 'adopt';
  readonly prune: boolean;
  /** Undefined when the source could not be loaded: the mapping then writes nothing. */
  readonly content: DesiredContent | undefined;
};

export type Observed = {
  readonly namespaces: readonly NamespaceInfo[];
  /** Secrets by secret name, then by namespace. */
  readonly secrets: ReadonlyMap<string, ReadonlyMap<string, SecretInfo>>;
  /** Service accounts by namespace (only those observed). */
  readonly serviceAccounts: ReadonlyMap<string, readonly ServiceAccountInfo[]>;
  /** True when every service account was listed, not only some names. */
  readonly allServiceAccounts: boolean;
};

export type PlanInput = {
  readonly observed: Observed;
  readonly mappings: readonly DesiredMapping[];
  /** Secret names of removed mappings: our copies of these are pruned everywhere. */
  readonly retiredSecretNames: readonly string[];
  /** Restrict the plan to these namespaces (a manual invoke's subset); undefined = all. */
  readonly onlyNamespaces?: ReadonlySet<string> | undefined;
  /**
   * Restrict the plan to these mappings (a secret-change event's subset);
   * undefined = all. The other mappings still count when deciding what is
   * selected, so a partial run never prunes a copy another mapping wants.
   */
  readonly onlyMappings?: ReadonlySet<string> | undefined;
};

export const ACTION_KINDS = [
  'create',
  'update',
  'adopt',
  'noop',
  'conflict',
  'prune',
  'skip',
  'sa-add',
  'sa-remove',
  'error',
] as const;
export type ActionKind = (typeof ACTION_KINDS)[number];

type Base = {
  readonly namespace: string;
  readonly secretName: string;
  /** The mapping the action serves; for a prune of a removed mapping, the one named on the secret. */
  readonly mapping: string;
  readonly reason: string;
};

export type SecretWrite = Base & { readonly kind: 'create'; readonly manifest: SecretManifest };
export type SecretPatch = Base & {
  readonly kind: 'update' | 'adopt';
  readonly manifest: SecretManifest;
  readonly current: SecretInfo;
};
export type Prune = Base & { readonly kind: 'prune'; readonly current: SecretInfo };
export type ServiceAccountChange = Base & {
  readonly kind: 'sa-add' | 'sa-remove';
  readonly serviceAccount: string;
  readonly current: ServiceAccountInfo;
};
export type Report = Base & { readonly kind: 'noop' | 'conflict' | 'skip' | 'error' };

export type Action = SecretWrite | SecretPatch | Prune | ServiceAccountChange | Report;

/** A configured mapping with the content its source gave (undefined when the source failed). */
export function desiredMapping(m: MappingConfig, content: DesiredContent | undefined): DesiredMapping {
  return {
    name: m.name,
    secretName: m.secretName,
    namespaces: m.namespaces,
    serviceAccounts: m.serviceAccounts,
    onConflict: m.onConflict,
    prune: m.prune,
    content,
  };
}

/** Actions that write. */
export function isWrite(action: Action): action is SecretWrite | SecretPatch | Prune | ServiceAccountChange {
  return (
    action.kind === 'create' ||
    action.kind === 'update' ||
    action.kind === 'adopt' ||
    action.kind === 'prune' ||
    action.kind === 'sa-add' ||
    action.kind === 'sa-remove'
  );
}

/** The manifest a mapping wants in every namespace it selects. */
export function desiredManifest(mapping: DesiredMapping, content: DesiredContent): SecretManifest {
  return {
    name: mapping.secretName,
    type: DOCKER_CONFIG_TYPE,
    labels: { [MANAGED_LABEL]: 'true' },
    annotations: {
      [MAPPING_ANNOTATION]: mapping.name,
      [SOURCE_VERSION_ANNOTATION]: content.sourceVersion,
      [CONTENT_HASH_ANNOTATION]: content.contentHash,
    },
    data: { [DOCKER_CONFIG_KEY]: Buffer.from(content.dockerConfigJson, 'utf8').toString('base64') },
  };
}

export function isOurs(secret: SecretInfo): boolean {
  return secret.labels[MANAGED_LABEL] === 'true';
}

/**
 * What to do with the secret in one namespace that one mapping selects, given
 * what is there now (undefined = nothing). Shared by the planner and by apply,
 * which re-decides after a conflict with a fresh read.
 */
export function decideSecret(
  mapping: DesiredMapping,
  content: DesiredContent,
  namespace: string,
  existing: SecretInfo | undefined,
): SecretWrite | SecretPatch | Report {
  const base = { namespace, secretName: mapping.secretName, mapping: mapping.name };
  const manifest = desiredManifest(mapping, content);
  if (!existing) return { ...base, kind: 'create', reason: 'missing', manifest };
  if (!isOurs(existing)) {
    if (mapping.onConflict !== 'adopt') {
      return {
        ...base,
        kind: 'conflict',
        reason: 'a secret of this name exists and is not managed by the patcher',
      };
    }
    if (existing.type !== DOCKER_CONFIG_TYPE) {
      return {
        ...base,
        kind: 'conflict',
        reason: `cannot adopt: type is ${existing.type}, not ${DOCKER_CONFIG_TYPE} (a secret's type cannot change)`,
      };
    }
    return {
      ...base,
      kind: 'adopt',
      reason: 'adopting the existing secret (onConflict: adopt)',
      manifest,
      current: existing,
    };
  }
  const wanted = manifest.data[DOCKER_CONFIG_KEY];
  if (existing.type !== DOCKER_CONFIG_TYPE) {
    return {
      ...base,
      kind: 'conflict',
      reason: `ours but of type ${existing.type}; delete it to let the patcher recreate it`,
    };
  }
  if (existing.data[DOCKER_CONFIG_KEY] !== wanted) {
    return {
      ...base,
      kind: 'update',
      reason: 'content differs from the source',
      manifest,
      current: existing,
    };
  }
  const owner = existing.annotations[MAPPING_ANNOTATION];
  if (owner !== mapping.name) {
    return {
      ...base,
      kind: 'update',
      reason: `owned by mapping "${owner ?? ''}", now ${mapping.name}`,
      manifest,
      current: existing,
    };
  }
  return { ...base, kind: 'noop', reason: 'in sync' };
}

/**
 * The service accounts of a namespace that should reference `secretName` and
 * do not yet. Opted-out accounts are left alone.
 */
export function missingReferences(
  mapping: DesiredMapping,
  namespace: string,
  accounts: readonly ServiceAccountInfo[],
): ServiceAccountChange[] {
  if (mapping.serviceAccounts.length === 0) return [];
  return accounts
    .filter(
      (sa) =>
        matchesAnyGlob(sa.name, mapping.serviceAccounts) && !isOptedOut(sa.annotations, { legacy: false }),
    )
    .filter((sa) => !sa.imagePullSecrets.includes(mapping.secretName))
    .map((sa) => ({
      kind: 'sa-add',
      namespace,
      secretName: mapping.secretName,
      mapping: mapping.name,
      serviceAccount: sa.name,
      reason: `add ${mapping.secretName} to imagePullSecrets`,
      current: sa,
    }));
}

/** Literal service-account names the mapping expects that were not observed (e.g. `default` not made yet). */
function absentAccounts(mapping: DesiredMapping, accounts: readonly ServiceAccountInfo[]): string[] {
  return mapping.serviceAccounts.filter((name) => !isGlob(name) && !accounts.some((sa) => sa.name === name));
}

/**
 * Namespaces where our secret would be pruned: the planner needs every
 * service account there (to drop references to it), which a narrow observe
 * may not have listed.
 */
export function pruneCandidates(
  input: Omit<PlanInput, 'onlyNamespaces'> & { onlyNamespaces?: ReadonlySet<string> | undefined },
): string[] {
  return [
    ...new Set(
      plan(input)
        .filter((a) => a.kind === 'prune')
        .map((a) => a.namespace),
    ),
  ];
}

/**
 * The plan. Per secret name and namespace: exactly one mapping selecting it
 * decides the secret (and adds service-account references); two mappings of
 * the same secret name selecting one namespace is an error there; none
 * selecting it means our copy, if any, is pruned (references first).
 * Terminating namespaces are skipped quietly: their deletion removes our copy.
 */
export function plan(input: PlanInput): Action[] {
  const { observed, onlyNamespaces, onlyMappings } = input;
  const active = (name: string) => !onlyMappings || onlyMappings.has(name);
  const actions: Action[] = [];
  const byName = new Map<string, DesiredMapping[]>();
  for (const mapping of input.mappings) {
    byName.set(mapping.secretName, [...(byName.get(mapping.secretName) ?? []), mapping]);
  }
  for (const retired of input.retiredSecretNames) if (!byName.has(retired)) byName.set(retired, []);

  for (const [secretName, mappings] of byName) {
    if (onlyMappings && !mappings.some((m) => active(m.name))) continue;
    const copies = observed.secrets.get(secretName) ?? new Map<string, SecretInfo>();
    for (const ns of observed.namespaces) {
      if (onlyNamespaces && !onlyNamespaces.has(ns.name)) continue;
      const existing = copies.get(ns.name);
      const accounts = observed.serviceAccounts.get(ns.name) ?? [];
      const base = { namespace: ns.name, secretName };
      const verdicts = mappings.map((m) => ({ mapping: m, verdict: selectNamespace(ns, m.namespaces) }));
      const selecting = verdicts.filter((v) => v.verdict.selected).map((v) => v.mapping);

      if (ns.terminating) {
        // Reported only where it matters: a namespace the mapping targets, or one holding a copy.
        const alive = { ...ns, terminating: false };
        for (const m of mappings.filter((m) => active(m.name))) {
          if (existing || selectNamespace(alive, m.namespaces).selected) {
            actions.push({ ...base, mapping: m.name, kind: 'skip', reason: 'terminating' });
          }
        }
        continue;
      }
      if (selecting.length > 1) {
        const names = selecting.map((m) => m.name).join(', ');
        for (const m of selecting.filter((m) => active(m.name))) {
          actions.push({
            ...base,
            mapping: m.name,
            kind: 'error',
            reason: `mappings ${names} all select this namespace for secret ${secretName}`,
          });
        }
        continue;
      }
      const chosen = selecting[0];
      if (chosen) {
        if (!active(chosen.name) || !chosen.content) continue; // the source failed: reported once per mapping, nothing written
        const decision = decideSecret(chosen, chosen.content, ns.name, existing);
        actions.push(decision);
        if (decision.kind === 'conflict') continue;
        actions.push(...missingReferences(chosen, ns.name, accounts));
        for (const name of absentAccounts(chosen, accounts)) {
          actions.push({
            ...base,
            mapping: chosen.name,
            kind: 'skip',
            reason: `service account ${name} not found (yet)`,
          });
        }
        continue;
      }
      // No mapping selects this namespace.
      for (const { mapping, verdict } of verdicts) {
        if (!verdict.selected && active(mapping.name))
          actions.push({ ...base, mapping: mapping.name, kind: 'skip', reason: verdict.reason });
      }
      if (!existing || !isOurs(existing)) continue;
      // A failed source means this secret name writes nothing this run, prunes included.
      if (mappings.some((m) => active(m.name) && !m.content)) continue;
      const owner = existing.annotations[MAPPING_ANNOTATION] ?? '';
      const ownerMapping = mappings.find((m) => m.name === owner);
      const prune = ownerMapping
        ? ownerMapping.prune
        : mappings.length === 0 || mappings.every((m) => m.prune);
      // A partial run prunes only what its own mappings own.
      if (!prune || (onlyMappings && !onlyMappings.has(owner))) continue;
      const reason = ownerMapping
        ? 'namespace no longer selected'
        : mappings.length
          ? `mapping "${owner}" removed`
          : 'secret name retired';
      for (const sa of accounts) {
        if (sa.imagePullSecrets.includes(secretName)) {
          actions.push({
            ...base,
            mapping: owner,
            kind: 'sa-remove',
            serviceAccount: sa.name,
            current: sa,
            reason: `drop ${secretName} from imagePullSecrets: ${reason}`,
          });
        }
      }
      actions.push({ ...base, mapping: owner, kind: 'prune', current: existing, reason });
    }
  }
  return actions;
}
