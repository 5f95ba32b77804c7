/**
 * The engine against a real cluster, run as the restricted identity that
 * infra/ defines: the RBAC from `rbacObjects(config)` is applied as admin,
 * then the engine runs with a token of a user in the patcher's group only.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig, type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import pLimit from 'p-limit';
import { kubeConnection } from '../../lib/clusters.ts';
import { type Config, type ConfigInput, parseConfig } from '../../lib/config.ts';
import { rbacObjects } from '../../lib/rbac.ts';
import type { ClusterReport } from '../../lib/report.ts';
import { run } from '../../lib/run.ts';
import type { TestCluster } from '../rig/cluster.ts';
import { waitFor } from '../rig/ports.ts';
import { registerCredential } from '../support/test-logs.ts';

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

/**
 * A credential file with a recognisable, fake password; returns its path and
 * the password. The credential is registered for the final scan of the test
 * logs (test/support/test-logs.ts).
 */
export function credentialFile(
  dir: string,
  name: string,
  registry = 'registry.example.com',
): { path: string; password: string } {
  const { username, password } = fakeCredential(name, registry);
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify({ registry, username, password }));
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
            return kubeConnection(kc);
          },
        },
      );
      return reports[0]!;
    },
  };
}

/**
 * Creates namespaces (with labels/annotations), 16 at a time, and waits for
 * their `default` service accounts. `onProgress` hears each creation.
 */
export async function createNamespaces(
  cluster: TestCluster,
  namespaces: readonly {
    name: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  }[],
  options: { onProgress?: (created: number, total: number) => void; timeoutMs?: number } = {},
): Promise<void> {
  const { core } = adminApi(cluster);
  const limit = pLimit(16);
  let created = 0;
  await Promise.all(
    namespaces.map((ns) =>
      limit(async () => {
        await core.createNamespace({ body: { metadata: ns } });
        options.onProgress?.(++created, namespaces.length);
      }),
    ),
  );
  const names = new Set(namespaces.map((n) => n.name));
  await waitFor(
    `default service accounts in ${names.size} namespaces`,
    async () => {
      const list = await core.listServiceAccountForAllNamespaces({ fieldSelector: 'metadata.name=default' });
      return list.items.filter((sa) => names.has(sa.metadata?.namespace ?? '')).length === names.size;
    },
    options.timeoutMs,
  );
}

export function writes(report: ClusterReport): number {
  const v = report.requests.byVerb;
  return v.create + v.patch + v.delete;
}

/** A fake registry credential as a test builds source content from it. */
export type FakeRegistryCredential = {
  readonly registry: string;
  readonly username: string;
  readonly password: string;
  /** base64 of `username:password`, as in a docker config's `auth`. */
  readonly auth: string;
};

/** A fresh fake credential with a recognisable password, registered for the scan of the test logs. */
export function fakeCredential(name: string, registry = 'registry.example.com'): FakeRegistryCredential {
  const username = `user-${name}`;
  const password = `pw-${name}-${Math.random().toString(36).slice(2)}-do-not-log`;
  registerCredential({ label: `fakeCredential ${name}`, registry, username, password });
  return { registry, username, password, auth: Buffer.from(`${username}:${password}`).toString('base64') };
}

/**
 * A source file whose content `render` makes from a fresh fake credential:
 * malformed sources that still carry a real-looking secret, so a test can
 * check that no message repeats it.
 */
export function credentialFileWith(
  dir: string,
  name: string,
  render: (credential: FakeRegistryCredential) => string,
): FakeRegistryCredential & { path: string } {
  const credential = fakeCredential(name);
  const path = join(dir, `${name}.json`);
  writeFileSync(path, render(credential));
  return { ...credential, path };
}
