/**
 * Which namespaces a mapping targets: a pure decision per namespace, with the
 * reason when it is skipped so dry runs and reports can say why.
 */
import type { LabelSelector, LabelSelectorRequirement, NamespaceSelection } from './config.ts';
import { matchesAnyGlob } from './glob.ts';
import { EXCLUDE_ANNOTATION, LEGACY_EXCLUDE_ANNOTATION } from './ownership.ts';

/** Why a namespace is not selected, in the order the rules are checked. */
export const SKIP_REASONS = {
  /** Being deleted; writing there only produces errors. */
  terminating: 'terminating',
  /** Carries the opt-out annotation (ours or the original tool's) set to "true". */
  optedOut: 'opted-out',
  /** Matches a name or glob in `exclude`. */
  excluded: 'excluded',
  /** A system namespace skipped by `excludeSystem`. */
  system: 'system',
  /** `include` is non-empty and the name matches none of it. */
  notIncluded: 'not-included',
  /** The label selector does not match. */
  selector: 'selector',
} as const;

/** One of {@link SKIP_REASONS}. */
export type SkipReason = (typeof SKIP_REASONS)[keyof typeof SKIP_REASONS];

/** Namespaces skipped when `excludeSystem` is true, unless named exactly in `include`. */
export const SYSTEM_NAMESPACES: readonly string[] = ['kube-system', 'kube-public', 'kube-node-lease'];

/** What the selection needs to know about a namespace. */
export type NamespaceInfo = {
  name: string;
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
  terminating: boolean;
};

/** The outcome of {@link selectNamespace}. */
export type NamespaceDecision =
  | { readonly selected: true }
  | { readonly selected: false; readonly reason: SkipReason };

/** Own-property lookup, so a label named `constructor` is not found on the prototype. */
function get(record: Readonly<Record<string, string>>, key: string): string | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/**
 * True when `annotations` opt the object out: {@link EXCLUDE_ANNOTATION} or,
 * for namespaces, the original tool's {@link LEGACY_EXCLUDE_ANNOTATION}, set to
 * exactly "true" (as the original compared it).
 */
export function isOptedOut(
  annotations: Readonly<Record<string, string>>,
  options: { legacy: boolean },
): boolean {
  return (
    get(annotations, EXCLUDE_ANNOTATION) === 'true' ||
    (options.legacy && get(annotations, LEGACY_EXCLUDE_ANNOTATION) === 'true')
  );
}

function matchesRequirement(
  labels: Readonly<Record<string, string>>,
  requirement: LabelSelectorRequirement,
): boolean {
  const value = get(labels, requirement.key);
  switch (requirement.operator) {
    case 'In':
      return value !== undefined && requirement.values.includes(value);
    case 'NotIn':
      // Kubernetes: NotIn also matches objects without the key.
      return value === undefined || !requirement.values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
  }
}

/**
 * Kubernetes label selector semantics: every `matchLabels` pair and every
 * `matchExpressions` requirement must hold; an empty selector matches
 * everything. The selector is assumed valid (the configuration schema checks it).
 *
 * @example matchesLabelSelector({}, { matchLabels: {}, matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['b'] }] }) // true
 */
export function matchesLabelSelector(
  labels: Readonly<Record<string, string>>,
  selector: LabelSelector,
): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels)) {
    if (get(labels, key) !== value) return false;
  }
  return selector.matchExpressions.every((requirement) => matchesRequirement(labels, requirement));
}

/**
 * Decides whether a mapping targets `ns`. Rules, first match wins:
 * terminating → opted out by annotation → excluded by name or glob →
 * system namespace (when `excludeSystem`, unless named exactly in `include`) →
 * not in a non-empty `include` → label selector does not match → selected.
 *
 * @example selectNamespace({ name: 'kube-system', labels: {}, annotations: {}, terminating: false }, selection)
 * // { selected: false, reason: 'system' } with the default selection
 */
export function selectNamespace(ns: NamespaceInfo, sel: NamespaceSelection): NamespaceDecision {
  const skip = (reason: SkipReason): NamespaceDecision => ({ selected: false, reason });
  if (ns.terminating) return skip(SKIP_REASONS.terminating);
  if (isOptedOut(ns.annotations, { legacy: true })) return skip(SKIP_REASONS.optedOut);
  if (matchesAnyGlob(ns.name, sel.exclude)) return skip(SKIP_REASONS.excluded);
  // A glob such as `kube-*` is not enough to bring a system namespace in: only its exact name is.
  if (sel.excludeSystem && SYSTEM_NAMESPACES.includes(ns.name) && !sel.include.includes(ns.name)) {
    return skip(SKIP_REASONS.system);
  }
  if (sel.include.length > 0 && !matchesAnyGlob(ns.name, sel.include)) return skip(SKIP_REASONS.notIncluded);
  if (sel.selector !== undefined && !matchesLabelSelector(ns.labels, sel.selector))
    return skip(SKIP_REASONS.selector);
  return { selected: true };
}
