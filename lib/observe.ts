/**
 * What a cluster has, read with as few requests as the mappings allow, none of
 * them growing with the number of namespaces: one paginated list of
 * namespaces, one list per secret name (field selector, the only list RBAC
 * lets us make by name), and one list per service-account name the mappings
 * need (or one of all service accounts when a mapping uses globs).
 */
import { isGlob } from './glob.ts';
import type { KubeClient, SecretInfo, ServiceAccountInfo } from './kube.ts';
import type { DesiredMapping, Observed } from './plan.ts';

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

/** The service-account names to list by field selector, or undefined to list them all. */
export function serviceAccountNames(mappings: readonly DesiredMapping[]): string[] | undefined {
  const patterns = new Set(mappings.flatMap((m) => m.serviceAccounts));
  if ([...patterns].some(isGlob)) return undefined;
  return [...patterns].sort();
}

export async function observe(
  client: KubeClient,
  mappings: readonly DesiredMapping[],
  retiredSecretNames: readonly string[],
): Promise<Observed> {
  const secretNames = [...new Set([...mappings.map((m) => m.secretName), ...retiredSecretNames])].sort();
  const accountNames = serviceAccountNames(mappings);
  const pending = {
    namespaces: client.listNamespaces(),
    secrets: secretNames.map((name) => client.listSecretsNamed(name)),
    accounts: accountNames
      ? accountNames.map((name) => client.listServiceAccounts(name))
      : [client.listServiceAccounts()],
  };
  // Every list ends before any failure is thrown: the report must not go out
  // while other lists of the same run are still retrying.
  await Promise.allSettled([pending.namespaces, ...pending.secrets, ...pending.accounts]);
  const namespaces = await pending.namespaces;
  const secretLists = await Promise.all(pending.secrets);
  const accountLists = await Promise.all(pending.accounts);
  const secrets = new Map<string, Map<string, SecretInfo>>();
  secretNames.forEach((name, i) => {
    secrets.set(name, new Map((secretLists[i] ?? []).map((s) => [s.namespace, s])));
  });
  return {
    namespaces,
    secrets,
    serviceAccounts: groupBy<ServiceAccountInfo>(accountLists.flat(), (sa) => sa.namespace),
    allServiceAccounts: accountNames === undefined,
  };
}

/**
 * Completes the service accounts of `namespaces` (where our secret is about
 * to be pruned, so every reference to it must go first) when the first
 * observe listed only some names. Costs one list per such namespace.
 */
export async function observeAllAccountsIn(
  client: KubeClient,
  observed: Observed,
  namespaces: readonly string[],
): Promise<Observed> {
  if (observed.allServiceAccounts || namespaces.length === 0) return observed;
  const serviceAccounts = new Map(observed.serviceAccounts);
  for (const ns of namespaces) serviceAccounts.set(ns, await client.listNamespacedServiceAccounts(ns));
  return { ...observed, serviceAccounts };
}
