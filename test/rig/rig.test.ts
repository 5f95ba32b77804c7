/**
 * Self-tests of the test rig, against the real binaries: the behaviours the
 * product's tests rely on exist and the rig wires them up.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { type Rig, startRig } from './cluster.ts';
import { type Moto, startMoto } from './moto.ts';
import { waitFor } from './ports.ts';

function core(kubeconfigPath: string): CoreV1Api {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return kc.makeApiClient(CoreV1Api);
}

async function statusOf(call: Promise<unknown>): Promise<number> {
  try {
    await call;
    return 200;
  } catch (error) {
    return (error as { code?: number }).code ?? -1;
  }
}

describe('control-plane rig', () => {
  let rig: Rig;
  let admin: CoreV1Api;

  before(async () => {
    rig = await startRig({ clusters: 2 });
    admin = core(rig.clusters[0]!.adminKubeconfigPath);
  });
  after(async () => rig?.stop());

  it('gives a new namespace a default service account made by kube-controller-manager', async () => {
    await admin.createNamespace({ body: { metadata: { name: 'rig-sa' } } });
    await waitFor(
      'default SA in rig-sa',
      async () =>
        (await statusOf(admin.readNamespacedServiceAccount({ name: 'default', namespace: 'rig-sa' }))) ===
        200,
      30_000,
    );
    const sa = await admin.readNamespacedServiceAccount({ name: 'default', namespace: 'rig-sa' });
    assert.equal(sa.metadata?.name, 'default');
  });

  it("admits a pod with its service account's imagePullSecrets copied in", async () => {
    await admin.createNamespace({ body: { metadata: { name: 'rig-pod' } } });
    await admin.createNamespacedServiceAccount({
      namespace: 'rig-pod',
      body: { metadata: { name: 'puller' }, imagePullSecrets: [{ name: 'regcred' }, { name: 'other' }] },
    });
    const pod = await admin.createNamespacedPod({
      namespace: 'rig-pod',
      body: {
        metadata: { name: 'p' },
        spec: { serviceAccountName: 'puller', containers: [{ name: 'c', image: 'registry.example/app:1' }] },
      },
    });
    assert.deepEqual(
      pod.spec?.imagePullSecrets?.map((s) => s.name),
      ['regcred', 'other'],
    );
  });

  it('refuses a restricted identity what its role does not grant, and allows what it does', async () => {
    const cluster = rig.clusters[0]!;
    const rbac = new KubeConfig();
    rbac.loadFromFile(cluster.adminKubeconfigPath);
    const rbacApi = rbac.makeApiClient(RbacAuthorizationV1Api);
    await rbacApi.createClusterRole({
      body: {
        metadata: { name: 'rig-ns-reader' },
        rules: [{ apiGroups: [''], resources: ['namespaces'], verbs: ['list'] }],
      },
    });
    await rbacApi.createClusterRoleBinding({
      body: {
        metadata: { name: 'rig-ns-reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'rig-ns-reader' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'rig-readers' }],
      },
    });
    const user = core(cluster.mintIdentity({ username: 'alice', groups: ['rig-readers'] }).kubeconfigPath);
    const stranger = core(cluster.mintIdentity({ username: 'mallory', groups: [] }).kubeconfigPath);
    assert.equal(await statusOf(user.listNamespace()), 200);
    assert.equal(await statusOf(user.listSecretForAllNamespaces()), 403);
    assert.equal(await statusOf(stranger.listNamespace()), 403);
  });

  it('keeps two clusters apart', async () => {
    const other = core(rig.clusters[1]!.adminKubeconfigPath);
    await admin.createNamespace({ body: { metadata: { name: 'only-in-first' } } });
    assert.equal(await statusOf(other.readNamespace({ name: 'only-in-first' })), 404);
    assert.notEqual(rig.clusters[0]!.server, rig.clusters[1]!.server);
  });

  it('takes a deleted namespace through Terminating to gone', async () => {
    await admin.createNamespace({ body: { metadata: { name: 'rig-doomed' } } });
    await admin.createNamespacedConfigMap({ namespace: 'rig-doomed', body: { metadata: { name: 'cm' } } });
    await admin.deleteNamespace({ name: 'rig-doomed' });
    const ns = await admin.readNamespace({ name: 'rig-doomed' }).catch(() => undefined);
    if (ns) assert.equal(ns.status?.phase, 'Terminating');
    await waitFor(
      'namespace deletion',
      async () => (await statusOf(admin.readNamespace({ name: 'rig-doomed' }))) === 404,
      60_000,
    );
  });
});

describe('AWS emulator rig', () => {
  let moto: Moto;
  before(async () => {
    moto = await startMoto();
  });
  after(async () => moto?.stop());

  it('stores versions of a secret and serves AWSCURRENT and AWSPREVIOUS', async () => {
    const sm = new SecretsManagerClient(moto.clientConfig);
    const created = await sm.send(new CreateSecretCommand({ Name: 'rig/regcred', SecretString: '{"v":1}' }));
    const put = await sm.send(
      new PutSecretValueCommand({ SecretId: 'rig/regcred', SecretString: '{"v":2}' }),
    );
    const current = await sm.send(new GetSecretValueCommand({ SecretId: 'rig/regcred' }));
    const previous = await sm.send(
      new GetSecretValueCommand({ SecretId: 'rig/regcred', VersionStage: 'AWSPREVIOUS' }),
    );
    assert.equal(current.SecretString, '{"v":2}');
    assert.equal(current.VersionId, put.VersionId);
    assert.equal(previous.SecretString, '{"v":1}');
    assert.equal(previous.VersionId, created.VersionId);
  });

  it('answers ResourceNotFoundException for a missing secret', async () => {
    const sm = new SecretsManagerClient(moto.clientConfig);
    await assert.rejects(sm.send(new GetSecretValueCommand({ SecretId: 'rig/missing' })), {
      name: 'ResourceNotFoundException',
    });
  });
});
