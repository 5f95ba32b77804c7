/**
 * The built-in demo (`npm start` with no config and no kube context): starts a
 * local cluster from the test rig, makes a source secret with a made-up
 * credential and a few namespaces, applies the least-privilege RBAC, and
 * reconciles as that restricted identity. Then a pod admitted with the secret,
 * and a second run that writes nothing. Stops the cluster at the end.
 */
import { randomBytes } from 'node:crypto';
import { CoreV1Api, KubeConfig, type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { kubeConnection } from '../lib/clusters.ts';
import { parseConfig } from '../lib/config.ts';
import { rbacObjects } from '../lib/rbac.ts';
import { run } from '../lib/run.ts';
import { type CliIo, exitCode, printReports, progress } from './output.ts';

export type DemoOptions = CliIo & { output: string; dryRun: boolean };

export async function runDemo(io: DemoOptions): Promise<number> {
  const { startRig } = await import('../test/rig/cluster.ts');
  const { waitFor } = await import('../test/rig/ports.ts');
  io.stderr(
    'no kube context and no config: running the demo on a local cluster (etcd, kube-apiserver, kube-controller-manager)\n',
  );
  const rig = await startRig({ clusters: 1 });
  try {
    const cluster = rig.clusters[0]!;
    const admin = new KubeConfig();
    admin.loadFromFile(cluster.adminKubeconfigPath);
    const core = admin.makeApiClient(CoreV1Api);
    const objects = KubernetesObjectApi.makeApiClient(admin);

    // A made-up credential; it is never printed.
    const password = randomBytes(18).toString('base64url');
    const dockerconfig = JSON.stringify({
      auths: { 'registry.example.com': { username: 'demo', password } },
    });
    await core.createNamespacedSecret({
      namespace: 'kube-system',
      body: {
        metadata: { name: 'regcred-source' },
        type: 'kubernetes.io/dockerconfigjson',
        data: { '.dockerconfigjson': Buffer.from(dockerconfig).toString('base64') },
      },
    });
    const namespaces: { name: string; annotations: Record<string, string> }[] = [
      { name: 'team-a', annotations: {} },
      { name: 'team-b', annotations: {} },
      { name: 'legacy', annotations: { 'k8s.titansoft.com/imagepullsecret-patcher-exclude': 'true' } },
    ];
    for (const ns of namespaces) await core.createNamespace({ body: { metadata: ns } });
    await waitFor('default service accounts', async () => {
      const list = await core.listServiceAccountForAllNamespaces({ fieldSelector: 'metadata.name=default' });
      return namespaces.every((ns) => list.items.some((sa) => sa.metadata?.namespace === ns.name));
    });

    const config = parseConfig(
      {
        mappings: [
          {
            secretName: 'regcred',
            source: { kubernetes: { namespace: 'kube-system', name: 'regcred-source' } },
          },
        ],
      },
      'demo',
    );
    for (const object of rbacObjects(config)) await objects.create(object as KubernetesObject);
    const identity = cluster.mintIdentity({
      username: 'imagepullsecret-patcher',
      groups: ['imagepullsecret-patcher'],
    });
    io.stderr(
      `cluster ready; reconciling as "${identity.username}" (group imagepullsecret-patcher, RBAC from \`npm start -- rbac\`)\n\n`,
    );
    const demoConfig = {
      ...config,
      clusters: [{ name: 'demo', kube: { kubeconfig: identity.kubeconfigPath } }],
    };
    const connect = async () => {
      const kc = new KubeConfig();
      kc.loadFromFile(identity.kubeconfigPath);
      return kubeConnection(kc);
    };
    const first = await run(
      demoConfig,
      { trigger: 'manual', dryRun: io.dryRun },
      { connect, onProgress: progress(io) },
    );
    printReports(first, io.output, io);
    if (io.dryRun) return exitCode(first);

    const pod = await core.createNamespacedPod({
      namespace: 'team-a',
      body: {
        metadata: { name: 'app' },
        spec: { containers: [{ name: 'app', image: 'registry.example.com/app:1' }] },
      },
    });
    const refs = (pod.spec?.imagePullSecrets ?? []).map((s) => s.name).join(', ');
    io.stderr(
      `\na pod created in team-a with no imagePullSecrets of its own was admitted with: ${refs || 'none'}\n\nsecond run:\n`,
    );
    const second = await run(demoConfig, { trigger: 'manual', dryRun: false }, { connect });
    printReports(second, io.output, io);
    return Math.max(exitCode(first), exitCode(second));
  } finally {
    await rig.stop();
  }
}
