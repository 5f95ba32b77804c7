/**
 * The engine against a real cluster, run as the restricted identity that
 * infra/ defines: the RBAC from `rbacObjects(config)` is applied as admin,
 * then the engine runs with a token of a user in the patcher's group only.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig, type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { type Config, type ConfigInput, parseConfig } from '../../lib/config.ts';
import { rbacObjects } from '../../lib/rbac.ts';
import type { ClusterReport } from '../../lib/report.ts';
import { run } from '../../lib/run.ts';
import type { TestCluster } from '../rig/cluster.ts';
import { waitFor } from '../rig/ports.ts';

export const PATCHER_GROUP = 'imagepullsecret-patcher';

export function adminApi(cluster: TestCluster): { core: CoreV1Api; objects: KubernetesObjectApi } {
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.adminKubeconfigPath);
  return { core: kc.makeApiClient(CoreV1Api), objects: KubernetesObjectApi.makeApiClient(kc) };
}

/** Creates or replaces the patcher's RBAC for `config` (as admin). */
export async function applyRbac(cluster: TestCluster, config: Config): Promise<void> {
  const { objects } = adminApi(cluster);
  for (const object of rbacObjects(config, PATCHER_GROUP)) {
    const spec = object as KubernetesObject;
    try {
      await objects.create(spec);
    } catch {
      await objects.replace(spec);
    }
  }
}

/** A credential file with a recognisable, fake password; returns its path and the password. */
export function credentialFile(
  dir: string,
  name: string,
  registry = 'registry.example.com',
): { path: string; password: string } {
  const password = `pw-${name}-${Math.random().toString(36).slice(2)}-do-not-log`;
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify({ registry, username: `user-${name}`, password }));
  return { path, password };
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'ipsp-it-'));
}

export type Patcher = {
  /** Runs the engine once as the restricted identity. */
  reconcile(
    input: ConfigInput,
    options?: { dryRun?: boolean; namespaces?: string[]; mappings?: string[] },
  ): Promise<ClusterReport>;
  readonly identityKubeconfig: string;
};

/** A patcher bound to `cluster`, with its RBAC applied for each config it runs. */
export function patcher(cluster: TestCluster): Patcher {
  const identity = cluster.mintIdentity({ username: 'patcher', groups: [PATCHER_GROUP] });
  return {
    identityKubeconfig: identity.kubeconfigPath,
    async reconcile(input, options = {}) {
      const config = parseConfig(
        { ...input, clusters: [{ name: cluster.name, kube: { kubeconfig: identity.kubeconfigPath } }] },
        'test',
      );
      await applyRbac(cluster, config);
      const reports = await run(
        config,
        {
          trigger: 'manual',
          dryRun: options.dryRun ?? false,
          ...(options.namespaces ? { namespaces: options.namespaces } : {}),
          ...(options.mappings ? { mappings: options.mappings } : {}),
        },
        {
          connect: async () => {
            const kc = new KubeConfig();
            kc.loadFromFile(identity.kubeconfigPath);
            return kc;
          },
        },
      );
      return reports[0]!;
    },
  };
}

/** Creates namespaces (with labels/annotations) and waits for their `default` service accounts. */
export async function createNamespaces(
  cluster: TestCluster,
  namespaces: readonly {
    name: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  }[],
): Promise<void> {
  const { core } = adminApi(cluster);
  await Promise.all(namespaces.map((ns) => core.createNamespace({ body: { metadata: ns } })));
  const names = new Set(namespaces.map((n) => n.name));
  await waitFor('default service accounts', async () => {
    const list = await core.listServiceAccountForAllNamespaces({ fieldSelector: 'metadata.name=default' });
    return list.items.filter((sa) => names.has(sa.metadata?.namespace ?? '')).length === names.size;
  });
}

export function writes(report: ClusterReport): number {
  const v = report.requests.byVerb;
  return v.create + v.patch + v.delete;
}
