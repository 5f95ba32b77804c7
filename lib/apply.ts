/**
 * Performs a plan's writes: namespaces in parallel up to a limit, each
 * namespace's actions in plan order (secret before service-account
 * references; references dropped before a prune). Every write is guarded by
 * what was observed (resourceVersion, uid); when the object moved on, it is
 * read again and the same rules decide again, a bounded number of times.
 * Once a write has found the API server unreachable through all its retries,
 * the writes not yet started are left for the next run.
 */
import pLimit from 'p-limit';
import { describeError, KubeApiError } from './errors.ts';
import { isConflict, isNotFound, type KubeClient, type SecretInfo, type ServiceAccountInfo } from './kube.ts';
import {
  type Action,
  type ActionKind,
  type DesiredMapping,
  decideSecret,
  isOurs,
  isWrite,
  type Prune,
  type SecretPatch,
  type SecretWrite,
  type ServiceAccountChange,
} from './plan.ts';

export const OUTCOMES = ['done', 'noop', 'conflict', 'skipped', 'failed', 'not-started'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export type ActionResult = {
  readonly action: Action;
  /** The kind finally carried out (a create that met an existing copy may end as an update or a noop). */
  readonly kind: ActionKind;
  readonly outcome: Outcome;
  readonly detail?: string;
};

export type ApplyOptions = {
  readonly concurrency: number;
  /** Conflict re-reads per action before giving up. */
  readonly maxConflicts: number;
  /** Mappings by name, with their content, for deciding again after a fresh read. */
  readonly mappings: ReadonlyMap<string, DesiredMapping>;
  /** When aborted (e.g. the Lambda deadline nears), namespaces not yet started are left for the next run. */
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((done: number, total: number) => void) | undefined;
};

type Result = Omit<ActionResult, 'action'>;

const done = (kind: ActionKind, detail?: string): Result =>
  detail ? { kind, outcome: 'done', detail } : { kind, outcome: 'done' };

/** The namespace is gone or going: nothing more to do there this run. */
function namespaceUnavailable(error: unknown): string | undefined {
  if (!(error instanceof KubeApiError)) return undefined;
  if (error.status === 404) return 'namespace or object no longer exists';
  if (error.status === 403 && /being terminated/.test(error.message)) return 'namespace is terminating';
  return undefined;
}

async function writeSecret(
  client: KubeClient,
  action: SecretWrite | SecretPatch,
  options: ApplyOptions,
): Promise<Result> {
  const mapping = options.mappings.get(action.mapping);
  let step: SecretWrite | SecretPatch = action;
  for (let attempt = 0; ; attempt++) {
    try {
      if (step.kind === 'create') await client.createSecret(step.namespace, step.manifest);
      else await client.patchSecret(step.namespace, step.manifest, step.current.resourceVersion);
      return done(step.kind);
    } catch (error) {
      const alreadyExists = step.kind === 'create' && isConflict(error);
      const moved = step.kind !== 'create' && (isConflict(error) || isNotFound(error));
      if (!(alreadyExists || moved) || !mapping?.content || attempt >= options.maxConflicts) throw error;
    }
    // Someone else wrote it first: read it again and let the same rules decide.
    const fresh = await client.readSecret(step.namespace, step.secretName);
    const next = decideSecret(mapping, mapping.content, step.namespace, fresh);
    if (next.kind === 'noop')
      return { kind: 'noop', outcome: 'noop', detail: 'already in sync after a concurrent write' };
    if (next.kind === 'create' || next.kind === 'update' || next.kind === 'adopt') {
      step = next;
      continue;
    }
    return { kind: 'conflict', outcome: 'conflict', detail: next.reason };
  }
}

async function changeReferences(
  client: KubeClient,
  action: ServiceAccountChange,
  options: ApplyOptions,
): Promise<Result> {
  let current: ServiceAccountInfo | undefined = action.current;
  for (let attempt = 0; ; attempt++) {
    if (!current)
      return { kind: action.kind, outcome: 'skipped', detail: 'service account no longer exists' };
    const has = current.imagePullSecrets.includes(action.secretName);
    if (action.kind === 'sa-add' ? has : !has) {
      return attempt === 0
        ? done(action.kind)
        : { kind: action.kind, outcome: 'noop', detail: 'already done by another writer' };
    }
    const names =
      action.kind === 'sa-add'
        ? [...current.imagePullSecrets, action.secretName]
        : current.imagePullSecrets.filter((name) => name !== action.secretName);
    try {
      await client.setImagePullSecrets(
        action.namespace,
        action.serviceAccount,
        names,
        current.resourceVersion,
      );
      return done(action.kind);
    } catch (error) {
      if (isNotFound(error))
        return { kind: action.kind, outcome: 'skipped', detail: 'service account no longer exists' };
      if (!isConflict(error) || attempt >= options.maxConflicts) throw error;
    }
    // The list is atomic: another writer changed the account, so rebuild ours from theirs.
    current = await client.readServiceAccount(action.namespace, action.serviceAccount);
  }
}

async function prune(client: KubeClient, action: Prune, options: ApplyOptions): Promise<Result> {
  let current: SecretInfo | undefined = action.current;
  for (let attempt = 0; ; attempt++) {
    if (!current) return { kind: 'prune', outcome: 'noop', detail: 'already gone' };
    if (!isOurs(current))
      return {
        kind: 'conflict',
        outcome: 'conflict',
        detail: 'no longer managed by the patcher; left alone',
      };
    try {
      await client.deleteSecret(action.namespace, action.secretName, current.uid, current.resourceVersion);
      return done('prune');
    } catch (error) {
      if (isNotFound(error)) return { kind: 'prune', outcome: 'noop', detail: 'already gone' };
      if (!isConflict(error) || attempt >= options.maxConflicts) throw error;
    }
    current = await client.readSecret(action.namespace, action.secretName);
  }
}

function applyOne(client: KubeClient, action: Action, options: ApplyOptions): Promise<Result> {
  switch (action.kind) {
    case 'create':
    case 'update':
    case 'adopt':
      return writeSecret(client, action, options);
    case 'sa-add':
    case 'sa-remove':
      return changeReferences(client, action, options);
    case 'prune':
      return prune(client, action, options);
    default:
      return Promise.resolve({ kind: action.kind, outcome: 'noop' });
  }
}

/** Whether `action` may run after `earlier` ended with `outcome` in the same namespace. */
function blockedBy(action: Action, earlier: ActionResult): string | undefined {
  if (earlier.action.secretName !== action.secretName) return undefined;
  const ok = earlier.outcome === 'done' || earlier.outcome === 'noop';
  if (ok) return undefined;
  if (action.kind === 'sa-add' && earlier.action.kind !== 'sa-add')
    return `secret not written (${earlier.outcome})`;
  if (action.kind === 'prune' && earlier.action.kind === 'sa-remove')
    return 'a reference to it could not be dropped';
  return undefined;
}

/**
 * Applies the write actions of `actions` and returns one result per write.
 * Failures are results, not exceptions: one namespace never stops another.
 */
export async function apply(
  client: KubeClient,
  actions: readonly Action[],
  options: ApplyOptions,
): Promise<ActionResult[]> {
  const byNamespace = new Map<string, Action[]>();
  for (const action of actions.filter(isWrite)) {
    const list = byNamespace.get(action.namespace);
    if (list) list.push(action);
    else byNamespace.set(action.namespace, [action]);
  }
  const total = [...byNamespace.values()].reduce((n, list) => n + list.length, 0);
  const results: ActionResult[] = [];
  const limit = pLimit(options.concurrency);
  let finished = 0;
  // Set once a write has spent all its retries on an API server that does not
  // answer: the writes after it would each spend theirs too, for minutes.
  let unreachable: string | undefined;

  await Promise.all(
    [...byNamespace.values()].map((list) =>
      limit(async () => {
        const local: ActionResult[] = [];
        let gone: string | undefined;
        for (const action of list) {
          const stop = options.signal?.aborted ? 'stopped before the deadline' : unreachable;
          if (stop) {
            local.push({ action, kind: action.kind, outcome: 'not-started', detail: stop });
            continue;
          }
          const blocker =
            gone ?? local.map((r) => blockedBy(action, r)).find((reason) => reason !== undefined);
          if (blocker) {
            local.push({ action, kind: action.kind, outcome: 'skipped', detail: blocker });
            continue;
          }
          try {
            local.push({ action, ...(await applyOne(client, action, options)) });
          } catch (error) {
            if (error instanceof KubeApiError && error.reason === 'Unreachable') {
              unreachable ??= `not tried: the API server stopped answering (${error.message})`;
            }
            gone = namespaceUnavailable(error);
            local.push(
              gone
                ? { action, kind: action.kind, outcome: 'skipped', detail: gone }
                : { action, kind: action.kind, outcome: 'failed', detail: describeError(error) },
            );
          }
        }
        results.push(...local);
        finished += list.length;
        options.onProgress?.(finished, total);
      }),
    ),
  );
  return results;
}
