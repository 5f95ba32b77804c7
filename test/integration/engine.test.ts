/**
 * The engine against a real kube-apiserver, as the restricted identity from
 * infra/ (RBAC from rbacObjects). Each test uses its own namespaces and secret
 * names, so they share one cluster.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { MANAGED_LABEL, MAPPING_ANNOTATION } from '../../lib/ownership.ts';
import { type Rig, startRig } from '../rig/cluster.ts';
import { registerCredential } from '../support/test-logs.ts';
import {
  adminApi,
  createNamespaces,
  credentialFile,
  type Patcher,
  patcher,
  tempDir,
  writes,
} from './fixture.ts';

// The fake credentials written literally below, registered for the scan of the test logs.
for (const [username, password, registry] of [
  ['user-b1', 'rotated-password-b1', 'registry.example.com'],
  ['u', 'leaky-password-i1', 'registry.example.com'],
  ['j1', 'j1-source-password', 'ghcr.io'],
] as const) {
  registerCredential({ label: `engine.test.ts ${username}`, username, password, registry });
}

const dockerconfig = (s: V1Secret) =>
  JSON.parse(Buffer.from(s.data?.['.dockerconfigjson'] ?? '', 'base64').toString('utf8'));

describe('reconciliation against a real API server, as the restricted identity', () => {
  let rig: Rig;
  let core: CoreV1Api;
  let p: Patcher;
  const dir = tempDir();

  before(async () => {
    rig = await startRig({ clusters: 1 });
    core = adminApi(rig.clusters[0]!).core;
    p = patcher(rig.clusters[0]!);
  });
  after(async () => rig?.stop());

  const cluster = () => rig.clusters[0]!;
  const secretIn = (ns: string, name: string) => core.readNamespacedSecret({ name, namespace: ns });
  const pullSecrets = async (ns: string, sa = 'default') =>
    ((await core.readNamespacedServiceAccount({ name: sa, namespace: ns })).imagePullSecrets ?? []).map(
      (r) => r.name,
    );

  it('creates the secret and the default service account reference in every selected namespace, then writes nothing', async () => {
    await createNamespaces(cluster(), [{ name: 'a1-one' }, { name: 'a1-two' }, { name: 'a1-three' }]);
    const cred = credentialFile(dir, 'a1');
    const config = {
      mappings: [{ secretName: 'cred-a1', source: { file: cred.path }, namespaces: { include: ['a1-*'] } }],
    };

    const first = await p.reconcile(config);
    assert.equal(first.converged, true, JSON.stringify(first.errors));
    assert.equal(first.mappings[0]!.counts.created, 3);
    assert.equal(first.mappings[0]!.counts.referencesAdded, 3);
    for (const ns of ['a1-one', 'a1-two', 'a1-three']) {
      const s = await secretIn(ns, 'cred-a1');
      assert.equal(s.type, 'kubernetes.io/dockerconfigjson');
      assert.equal(s.metadata?.labels?.[MANAGED_LABEL], 'true');
      assert.equal(dockerconfig(s).auths['registry.example.com'].password, cred.password);
      assert.deepEqual(await pullSecrets(ns), ['cred-a1']);
    }

    const second = await p.reconcile(config);
    assert.equal(second.converged, true);
    assert.equal(writes(second), 0, JSON.stringify(second.requests));
    assert.equal(second.mappings[0]!.counts.unchanged, 3);
    assert.ok(second.requests.total <= 5, `no-op run made ${second.requests.total} requests`);
  });

  it('updates a rotated credential in place: same UID, new data', async () => {
    await createNamespaces(cluster(), [{ name: 'b1-one' }]);
    const cred = credentialFile(dir, 'b1');
    const config = {
      mappings: [{ secretName: 'cred-b1', source: { file: cred.path }, namespaces: { include: ['b1-*'] } }],
    };
    await p.reconcile(config);
    const before = await secretIn('b1-one', 'cred-b1');

    writeFileSync(
      cred.path,
      JSON.stringify({
        registry: 'registry.example.com',
        username: 'user-b1',
        password: 'rotated-password-b1',
      }),
    );
    const report = await p.reconcile(config);
    const after = await secretIn('b1-one', 'cred-b1');
    assert.equal(report.mappings[0]!.counts.updated, 1);
    assert.equal(after.metadata?.uid, before.metadata?.uid);
    assert.notEqual(after.metadata?.resourceVersion, before.metadata?.resourceVersion);
    assert.equal(dockerconfig(after).auths['registry.example.com'].password, 'rotated-password-b1');
    assert.deepEqual(await pullSecrets('b1-one'), ['cred-b1']);
  });

  it('leaves a user-owned secret of the same name alone and reports it, and adopts it when asked', async () => {
    await createNamespaces(cluster(), [{ name: 'c1-mine' }, { name: 'c1-free' }]);
    const userData = Buffer.from(
      JSON.stringify({ auths: { 'other.example.com': { auth: Buffer.from('u:p').toString('base64') } } }),
    ).toString('base64');
    await core.createNamespacedSecret({
      namespace: 'c1-mine',
      body: {
        metadata: { name: 'cred-c1', labels: { owner: 'team' } },
        type: 'kubernetes.io/dockerconfigjson',
        data: { '.dockerconfigjson': userData },
      },
    });
    const cred = credentialFile(dir, 'c1');
    const mapping = { secretName: 'cred-c1', source: { file: cred.path }, namespaces: { include: ['c1-*'] } };

    const report = await p.reconcile({ mappings: [mapping] });
    assert.equal(report.converged, false);
    assert.deepEqual(
      report.mappings[0]!.conflicts.map((c) => c.namespace),
      ['c1-mine'],
    );
    const untouched = await secretIn('c1-mine', 'cred-c1');
    assert.equal(untouched.data?.['.dockerconfigjson'], userData);
    assert.equal(untouched.metadata?.labels?.[MANAGED_LABEL], undefined);
    assert.deepEqual(await pullSecrets('c1-mine'), []);
    assert.deepEqual(await pullSecrets('c1-free'), ['cred-c1']);

    const adopted = await p.reconcile({ mappings: [{ ...mapping, onConflict: 'adopt' }] });
    assert.equal(adopted.converged, true);
    assert.equal(adopted.mappings[0]!.counts.adopted, 1);
    const now = await secretIn('c1-mine', 'cred-c1');
    assert.equal(now.metadata?.uid, untouched.metadata?.uid);
    assert.equal(now.metadata?.labels?.[MANAGED_LABEL], 'true');
    assert.equal(now.metadata?.labels?.owner, 'team', "the user's own label is kept");
    assert.deepEqual(await pullSecrets('c1-mine'), ['cred-c1']);
  });

  it('keeps every other entry of imagePullSecrets while another writer changes the same service accounts', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `d1-ns${i}`);
    await createNamespaces(
      cluster(),
      names.map((name) => ({ name })),
    );
    for (const ns of names) {
      await core.patchNamespacedServiceAccount(
        { name: 'default', namespace: ns, body: { imagePullSecrets: [{ name: 'theirs-0' }] } },
        (await import('@kubernetes/client-node')).setHeaderOptions(
          'Content-Type',
          'application/merge-patch+json',
        ),
      );
    }
    const cred = credentialFile(dir, 'd1');
    // The other writer appends entries with its own optimistic concurrency while the run is going on.
    let stop = false;
    const writer = (async () => {
      let round = 1;
      while (!stop && round < 40) {
        for (const ns of names) {
          for (let attempt = 0; attempt < 10; attempt++) {
            const sa = await core.readNamespacedServiceAccount({ name: 'default', namespace: ns });
            sa.imagePullSecrets = [...(sa.imagePullSecrets ?? []), { name: `theirs-${round}` }];
            try {
              await core.replaceNamespacedServiceAccount({ name: 'default', namespace: ns, body: sa });
              break;
            } catch (error) {
              if ((error as { code?: number }).code !== 409) throw error;
            }
          }
        }
        round++;
      }
      return round;
    })();
    const report = await p.reconcile({
      mappings: [{ secretName: 'cred-d1', source: { file: cred.path }, namespaces: { include: ['d1-*'] } }],
    });
    stop = true;
    const rounds = await writer;
    assert.equal(report.converged, true, JSON.stringify(report.mappings[0]));
    for (const ns of names) {
      const refs = await pullSecrets(ns);
      assert.equal(refs.filter((r) => r === 'cred-d1').length, 1, `${ns}: ours exactly once in ${refs}`);
      const theirs = refs.filter((r) => r?.startsWith('theirs-'));
      assert.ok(
        theirs.length >= rounds - 1,
        `${ns}: the other writer's entries survive (${theirs.length} of ${rounds})`,
      );
    }
  });

  it('skips a terminating namespace quietly', async () => {
    await createNamespaces(cluster(), [{ name: 'e1-live' }, { name: 'e1-dying' }]);
    // A finalizer holds the namespace in Terminating.
    await core.createNamespacedConfigMap({
      namespace: 'e1-dying',
      body: { metadata: { name: 'hold', finalizers: ['example.com/hold'] } },
    });
    await core.deleteNamespace({ name: 'e1-dying' });
    const cred = credentialFile(dir, 'e1');
    const report = await p.reconcile({
      mappings: [{ secretName: 'cred-e1', source: { file: cred.path }, namespaces: { include: ['e1-*'] } }],
    });
    assert.equal(report.converged, true, JSON.stringify(report.mappings[0]));
    assert.equal(report.mappings[0]!.counts.created, 1);
    assert.equal(report.mappings[0]!.skipped.terminating, 1);
    await assert.rejects(secretIn('e1-dying', 'cred-e1'), { code: 404 });
    await core.patchNamespacedConfigMap(
      { name: 'hold', namespace: 'e1-dying', body: [{ op: 'remove', path: '/metadata/finalizers' }] },
      (await import('@kubernetes/client-node')).setHeaderOptions(
        'Content-Type',
        'application/json-patch+json',
      ),
    );
  });

  it('selects by label selector and by glob, with two credentials for two teams', async () => {
    await createNamespaces(cluster(), [
      { name: 'f1-a-web' },
      { name: 'f1-a-api' },
      { name: 'f1-x', labels: { team: 'b' } },
      { name: 'f1-y', labels: { team: 'b', tier: 'legacy' } },
      { name: 'f1-z', labels: { team: 'c' } },
    ]);
    const a = credentialFile(dir, 'f1a');
    const b = credentialFile(dir, 'f1b');
    const report = await p.reconcile({
      mappings: [
        {
          name: 'team-a',
          secretName: 'cred-f1',
          source: { file: a.path },
          namespaces: { include: ['f1-a-*'] },
        },
        {
          name: 'team-b',
          secretName: 'cred-f1',
          source: { file: b.path },
          namespaces: {
            include: ['f1-*'],
            selector: {
              matchLabels: { team: 'b' },
              matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['legacy'] }],
            },
          },
        },
      ],
    });
    assert.equal(report.converged, true, JSON.stringify(report.mappings));
    const password = async (ns: string) =>
      dockerconfig(await secretIn(ns, 'cred-f1')).auths['registry.example.com'].password;
    assert.equal(await password('f1-a-web'), a.password);
    assert.equal(await password('f1-a-api'), a.password);
    assert.equal(await password('f1-x'), b.password);
    assert.equal(
      (await secretIn('f1-a-web', 'cred-f1')).metadata?.annotations?.[MAPPING_ANNOTATION],
      'team-a',
    );
    await assert.rejects(secretIn('f1-y', 'cred-f1'), { code: 404 });
    await assert.rejects(secretIn('f1-z', 'cred-f1'), { code: 404 });
  });

  it('prunes the secret and the service-account entry when a namespace leaves the selection, keeping other entries', async () => {
    await createNamespaces(cluster(), [{ name: 'g1-stay' }, { name: 'g1-leave' }]);
    const cred = credentialFile(dir, 'g1');
    const mapping = { secretName: 'cred-g1', source: { file: cred.path }, namespaces: { include: ['g1-*'] } };
    await p.reconcile({ mappings: [mapping] });
    await core.patchNamespacedServiceAccount(
      {
        name: 'default',
        namespace: 'g1-leave',
        body: [{ op: 'add', path: '/imagePullSecrets/-', value: { name: 'keep-me' } }],
      },
      (await import('@kubernetes/client-node')).setHeaderOptions(
        'Content-Type',
        'application/json-patch+json',
      ),
    );
    await core.patchNamespace(
      {
        name: 'g1-leave',
        body: { metadata: { annotations: { 'imagepullsecret-patcher.io/exclude': 'true' } } },
      },
      (await import('@kubernetes/client-node')).setHeaderOptions(
        'Content-Type',
        'application/merge-patch+json',
      ),
    );
    const report = await p.reconcile({ mappings: [mapping] });
    assert.equal(report.converged, true, JSON.stringify(report.mappings));
    assert.equal(report.mappings[0]!.counts.pruned, 1);
    assert.equal(report.mappings[0]!.counts.referencesRemoved, 1);
    await assert.rejects(secretIn('g1-leave', 'cred-g1'), { code: 404 });
    assert.deepEqual(await pullSecrets('g1-leave'), ['keep-me']);
    assert.deepEqual(await pullSecrets('g1-stay'), ['cred-g1']);
  });

  it('writes nothing in a dry run, and reports the full plan with reasons', async () => {
    await createNamespaces(cluster(), [{ name: 'h1-one' }, { name: 'h1-two' }]);
    const cred = credentialFile(dir, 'h1');
    const report = await p.reconcile(
      {
        mappings: [{ secretName: 'cred-h1', source: { file: cred.path }, namespaces: { include: ['h1-*'] } }],
      },
      { dryRun: true },
    );
    assert.equal(writes(report), 0);
    assert.deepEqual(report.writes.map((w) => `${w.kind} ${w.namespace} ${w.reason}`).sort(), [
      'create h1-one missing',
      'create h1-two missing',
      'sa-add h1-one add cred-h1 to imagePullSecrets',
      'sa-add h1-two add cred-h1 to imagePullSecrets',
    ]);
    await assert.rejects(secretIn('h1-one', 'cred-h1'), { code: 404 });
    assert.deepEqual(await pullSecrets('h1-one'), []);
  });

  it('writes nothing when the source is invalid, and says why without the credential', async () => {
    await createNamespaces(cluster(), [{ name: 'i1-one' }]);
    const path = `${dir}/i1-bad.json`;
    writeFileSync(
      path,
      JSON.stringify({
        registry: 'registry.example.com',
        username: 'u',
        password: 'leaky-password-i1',
        extra: 1,
      }),
    );
    const report = await p.reconcile({
      mappings: [{ secretName: 'cred-i1', source: { file: path }, namespaces: { include: ['i1-*'] } }],
    });
    assert.equal(report.converged, false);
    assert.equal(writes(report), 0);
    const message = report.mappings[0]!.errors.map((e) => e.reason).join('\n');
    assert.match(message, /extra/);
    assert.doesNotMatch(JSON.stringify(report), /leaky-password-i1/);
    await assert.rejects(secretIn('i1-one', 'cred-i1'), { code: 404 });
  });

  it('copies from an in-cluster source secret, which only the patcher role for that source may read', async () => {
    await createNamespaces(cluster(), [{ name: 'j1-one' }, { name: 'j1-source' }]);
    const data = Buffer.from(
      JSON.stringify({ auths: { 'ghcr.io': { username: 'j1', password: 'j1-source-password' } } }),
    ).toString('base64');
    await core.createNamespacedSecret({
      namespace: 'j1-source',
      body: {
        metadata: { name: 'upstream' },
        type: 'kubernetes.io/dockerconfigjson',
        data: { '.dockerconfigjson': data },
      },
    });
    await core.createNamespacedSecret({
      namespace: 'j1-source',
      body: {
        metadata: { name: 'unrelated' },
        type: 'Opaque',
        data: { token: Buffer.from('nope').toString('base64') },
      },
    });
    const report = await p.reconcile({
      mappings: [
        {
          secretName: 'cred-j1',
          source: { kubernetes: { namespace: 'j1-source', name: 'upstream' } },
          namespaces: { include: ['j1-one'] },
        },
      ],
    });
    assert.equal(report.converged, true, JSON.stringify(report));
    assert.equal(
      dockerconfig(await secretIn('j1-one', 'cred-j1')).auths['ghcr.io'].password,
      'j1-source-password',
    );

    const kc = new KubeConfig();
    kc.loadFromFile(p.identityKubeconfig);
    const asPatcher = kc.makeApiClient(CoreV1Api);
    await assert.rejects(asPatcher.readNamespacedSecret({ name: 'unrelated', namespace: 'j1-source' }), {
      code: 403,
    });
    await assert.rejects(asPatcher.listSecretForAllNamespaces(), { code: 403 });
    await assert.rejects(asPatcher.listNamespacedSecret({ namespace: 'j1-source' }), { code: 403 });
    const named = await asPatcher.listSecretForAllNamespaces({ fieldSelector: 'metadata.name=cred-j1' });
    assert.ok(named.items.length >= 1);
  });

  it('restricts a run to the namespaces asked for', async () => {
    await createNamespaces(cluster(), [{ name: 'k1-one' }, { name: 'k1-two' }]);
    const cred = credentialFile(dir, 'k1');
    const report = await p.reconcile(
      {
        mappings: [{ secretName: 'cred-k1', source: { file: cred.path }, namespaces: { include: ['k1-*'] } }],
      },
      { namespaces: ['k1-two'] },
    );
    assert.equal(report.mappings[0]!.counts.created, 1);
    await assert.rejects(secretIn('k1-one', 'cred-k1'), { code: 404 });
    await secretIn('k1-two', 'cred-k1');
  });
});
