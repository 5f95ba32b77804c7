/**
 * The engine under faults, against a real control plane, as the restricted
 * identity: the API server killed and etcd restarted mid-run, a 429 storm,
 * another writer on the same service accounts and secrets, namespaces deleted
 * or stuck terminating mid-run, and a source gone bad between runs. Every test
 * ends the same way: the next run converges and nothing anyone else wrote is
 * lost. Faults that must hit one precise request go through the rig's fault
 * proxy; the others hit the real processes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  type CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1Secret,
  type V1ServiceAccount,
} from '@kubernetes/client-node';
import { DOCKER_CONFIG_KEY, MANAGED_LABEL } from '../../lib/ownership.ts';
import type { ClusterReport } from '../../lib/report.ts';
import { type Rig, startRig } from '../rig/cluster.ts';
import { type FaultProxy, type ProxyLogEntry, startFaultProxy } from '../rig/fault-proxy.ts';
import { waitFor } from '../rig/ports.ts';
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

const unhandled: unknown[] = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const REGISTRY = 'registry.example.com';
const FOREIGN_LABEL = 'fault-test/planted';

const names = (prefix: string, count: number) =>
  Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`);

const statusOf = (error: unknown) => (error as { code?: number }).code;

/** Resolves like `promise`, or fails the test after `ms` instead of hanging it. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a report says went wrong, for assertion messages (reports never carry credentials; checked below). */
function trouble(report: ClusterReport): string {
  return JSON.stringify({
    errors: report.errors,
    mappings: report.mappings.map((m) => ({ errors: m.errors, conflicts: m.conflicts, skipped: m.skipped })),
    notDone: report.notDone,
  });
}

/** No credential anywhere in the report, and every failure is a mapped, named API error. */
function assertCleanReport(report: ClusterReport, credentials: readonly string[]): void {
  const text = JSON.stringify(report);
  for (const credential of credentials)
    assert.ok(!text.includes(credential), 'the report names a credential');
  const failures = [...report.errors, ...report.mappings.flatMap((m) => m.errors.map((e) => e.reason))];
  for (const failure of failures) assert.match(failure, /^KUBE_[A-Z_]+: /);
}

/** A fingerprint of a value that may be a credential, safe to print in an assertion diff. */
const digest = (value: string | undefined) =>
  value === undefined ? 'none' : createHash('sha256').update(value).digest('hex').slice(0, 16);

function passwordIn(secret: V1Secret): string | undefined {
  const text = Buffer.from(secret.data?.[DOCKER_CONFIG_KEY] ?? '', 'base64').toString('utf8');
  try {
    return (JSON.parse(text) as { auths?: Record<string, { password?: string }> }).auths?.[REGISTRY]
      ?.password;
  } catch {
    return undefined;
  }
}

/** Every Retry-After the proxy sent was waited out before the same request came again. */
function assertRetryAfterHonoured(log: readonly ProxyLogEntry[]): number {
  let checked = 0;
  for (const refused of log.filter((e) => e.injected && e.retryAfterSeconds !== undefined)) {
    const again = log.find(
      (e) => e.method === refused.method && e.path === refused.path && e.attempt === refused.attempt + 1,
    );
    if (!again) continue; // the last attempt: nothing came after it
    const gap = again.receivedAt - refused.answeredAt;
    // Exponential backoff alone would have come back after 100-200 ms.
    assert.ok(
      gap >= (refused.retryAfterSeconds ?? 0) * 1000 - 20,
      `${refused.method} ${refused.path} came back after ${gap} ms, not after Retry-After ${refused.retryAfterSeconds} s`,
    );
    checked++;
  }
  return checked;
}

function attemptsByRequest(log: readonly ProxyLogEntry[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of log) counts.set(`${e.method} ${e.path}`, (counts.get(`${e.method} ${e.path}`) ?? 0) + 1);
  return counts;
}

describe('faults: the run ends cleanly, the next one converges, nothing of anyone else is lost', () => {
  let rig: Rig;
  let core: CoreV1Api;
  /** The patcher, straight to the API server. */
  let p: Patcher;
  /** The same restricted identity, through the fault proxy. */
  let viaProxy: Patcher;
  let proxy: FaultProxy;
  const dir = tempDir();

  before(async () => {
    rig = await startRig({ clusters: 1 });
    core = adminApi(rig.clusters[0]!).core;
    p = patcher(rig.clusters[0]!);
    proxy = await startFaultProxy(rig.clusters[0]!);
    viaProxy = patcher(rig.clusters[0]!);
    proxy.route(viaProxy.identityKubeconfig);
  });
  // A test that failed half-way must not leave its faults to the next one.
  beforeEach(() => {
    proxy.setHook(undefined);
    proxy.clearLog();
  });
  after(async () => {
    await proxy?.close();
    await rig?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const cluster = () => rig.clusters[0]!;
  const mapping = (secretName: string, path: string, prefix: string, serviceAccounts = ['default']) => ({
    secretName,
    source: { file: path },
    namespaces: { include: [`${prefix}-*`] },
    serviceAccounts,
  });

  /** Secrets called `name`, by namespace (one list, as admin). */
  async function copies(name: string): Promise<Map<string, V1Secret>> {
    const list = await core.listSecretForAllNamespaces({ fieldSelector: `metadata.name=${name}` });
    return new Map(list.items.map((s) => [s.metadata?.namespace ?? '', s]));
  }

  async function accounts(name: string): Promise<Map<string, V1ServiceAccount>> {
    const list = await core.listServiceAccountForAllNamespaces({ fieldSelector: `metadata.name=${name}` });
    return new Map(list.items.map((sa) => [sa.metadata?.namespace ?? '', sa]));
  }

  const pullSecrets = (sa: V1ServiceAccount | undefined) => (sa?.imagePullSecrets ?? []).map((r) => r.name);

  /** The end state every test checks: our copy with the right credential, and our reference exactly once. */
  async function assertDistributed(
    secretName: string,
    namespaces: readonly string[],
    password: string,
    serviceAccounts: readonly string[] = ['default'],
  ): Promise<void> {
    const secrets = await copies(secretName);
    for (const ns of namespaces) {
      const secret = secrets.get(ns);
      assert.ok(secret, `${ns}: ${secretName} is missing`);
      assert.equal(secret.type, 'kubernetes.io/dockerconfigjson');
      assert.equal(
        secret.metadata?.labels?.[MANAGED_LABEL],
        'true',
        `${ns}: ${secretName} is not marked ours`,
      );
      // Compared without assert.equal, which would print the credential on failure.
      assert.ok(passwordIn(secret) === password, `${ns}: ${secretName} holds the wrong credential`);
    }
    for (const name of serviceAccounts) {
      const byNamespace = await accounts(name);
      for (const ns of namespaces) {
        const refs = pullSecrets(byNamespace.get(ns));
        assert.equal(
          refs.filter((r) => r === secretName).length,
          1,
          `${ns}/${name}: ${secretName} once in [${refs.join(', ')}]`,
        );
      }
    }
  }

  /**
   * Plants what belongs to someone else in `namespaces`: an entry and a label
   * on the default service account, and an unrelated secret. `verify` checks
   * it all survived unchanged.
   */
  async function plantForeign(namespaces: readonly string[]): Promise<{ verify(): Promise<void> }> {
    for (const ns of namespaces) {
      await core.patchNamespacedServiceAccount(
        {
          name: 'default',
          namespace: ns,
          body: {
            metadata: { labels: { [FOREIGN_LABEL]: 'true' } },
            imagePullSecrets: [{ name: 'foreign-pull' }],
          },
        },
        mergePatch,
      );
      await core.createNamespacedSecret({
        namespace: ns,
        body: {
          metadata: { name: 'foreign-secret', labels: { [FOREIGN_LABEL]: 'true' } },
          type: 'Opaque',
          data: { token: Buffer.from(`not ours in ${ns}`).toString('base64') },
        },
      });
    }
    const planted = await core.listSecretForAllNamespaces({ labelSelector: `${FOREIGN_LABEL}=true` });
    const plantedVersions = new Map(
      planted.items
        .filter((s) => namespaces.includes(s.metadata?.namespace ?? ''))
        .map((s) => [s.metadata?.namespace, s.metadata?.resourceVersion]),
    );
    return {
      async verify() {
        const byNamespace = await accounts('default');
        for (const ns of namespaces) {
          const sa = byNamespace.get(ns);
          assert.equal(pullSecrets(sa)[0], 'foreign-pull', `${ns}: the foreign entry survives, first`);
          assert.equal(sa?.metadata?.labels?.[FOREIGN_LABEL], 'true', `${ns}: the foreign label survives`);
        }
        const now = await core.listSecretForAllNamespaces({ labelSelector: `${FOREIGN_LABEL}=true` });
        for (const ns of namespaces) {
          const secret = now.items.find((s) => s.metadata?.namespace === ns);
          assert.ok(secret, `${ns}: the foreign secret survives`);
          assert.equal(
            secret.metadata?.resourceVersion,
            plantedVersions.get(ns),
            `${ns}: the foreign secret is untouched`,
          );
        }
      },
    };
  }

  /**
   * Polls until at least `count` copies of `secretName` exist while `run` is
   * still going; returns how many there were. Fails if the run ends first:
   * the fault would then not be mid-run.
   */
  async function copiesReach(
    secretName: string,
    count: number,
    run: Promise<ClusterReport>,
  ): Promise<number> {
    let ended: ClusterReport | undefined;
    run.then(
      (report) => {
        ended = report;
      },
      () => undefined,
    );
    let seen = 0;
    await waitFor(
      `${count} copies of ${secretName}`,
      async () => {
        seen = (await copies(secretName)).size;
        return seen >= count || ended !== undefined;
      },
      120_000,
    );
    if (ended) assert.fail(`the run ended after ${seen} copies, before the fault: ${trouble(ended)}`);
    return seen;
  }

  it('finishes cleanly when the API server is killed mid-run, and the next run converges', {
    timeout: 300_000,
  }, async (t) => {
    const namespaces = names('fk', 250);
    await createNamespaces(
      cluster(),
      namespaces.map((name) => ({ name })),
    );
    const foreign = await plantForeign(namespaces.filter((_, i) => i % 25 === 0));
    const cred = credentialFile(dir, 'fk');
    const config = { mappings: [mapping('cred-fk', cred.path, 'fk')] };

    const started = Date.now();
    const interrupted = within(240_000, 'the interrupted run', p.reconcile(config));
    interrupted.catch(() => undefined); // awaited below; a failure there fails the test
    const landed = await copiesReach('cred-fk', 25, interrupted);
    await cluster().killApiserver();
    // Down for a moment, so calls meet refused connections before the new server listens.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await cluster().startApiserver();
    const report = await interrupted;
    assert.ok(landed < namespaces.length, `the kill came after the run wrote everything (${landed})`);
    assert.ok(report.requests.retries > 0, 'no call of the run met the dead server');
    assertCleanReport(report, [cred.password]);
    assert.equal(report.notDone, 0);
    const failed = report.mappings[0]!.counts.errors;
    t.diagnostic(
      `API server killed after ${landed} copies; run finished in ${Date.now() - started} ms, ${failed} writes failed, ${report.requests.retries} retries`,
    );

    const next = await p.reconcile(config);
    assert.equal(next.converged, true, trouble(next));
    await assertDistributed('cred-fk', namespaces, cred.password);
    await foreign.verify();
    const again = await p.reconcile(config);
    assert.equal(writes(again), 0, 'a converged cluster needs no writes');
    assert.deepEqual(unhandled, []);
  });

  it('finishes cleanly when etcd crashes and when it restarts gracefully mid-run, and the next run converges', {
    timeout: 300_000,
  }, async (t) => {
    const namespaces = names('fe', 400);
    await createNamespaces(
      cluster(),
      namespaces.map((name) => ({ name })),
    );
    const foreign = await plantForeign(namespaces.filter((_, i) => i % 40 === 0));
    const cred = credentialFile(dir, 'fe');
    const config = { mappings: [mapping('cred-fe', cred.path, 'fe')] };

    const started = Date.now();
    const interrupted = within(240_000, 'the interrupted run', p.reconcile(config));
    interrupted.catch(() => undefined);
    // A crash first (SIGKILL), then a graceful restart, which waits for the API server's open streams.
    const atCrash = await copiesReach('cred-fe', 16, interrupted);
    await rig.etcd.restart('SIGKILL');
    const atRestart = await copiesReach('cred-fe', 64, interrupted);
    await rig.etcd.restart();
    const report = await interrupted;
    assert.ok(
      atRestart < namespaces.length,
      `the restart came after the run wrote everything (${atRestart})`,
    );
    assertCleanReport(report, [cred.password]);
    assert.equal(report.notDone, 0);
    t.diagnostic(
      `etcd killed after ${atCrash} copies, restarted after ${atRestart}; run finished in ${Date.now() - started} ms, ${report.mappings[0]!.counts.errors} writes failed, ${report.requests.retries} retries`,
    );

    const next = await p.reconcile(config);
    assert.equal(next.converged, true, trouble(next));
    await assertDistributed('cred-fe', namespaces, cred.password);
    await foreign.verify();
    assert.deepEqual(unhandled, []);
  });

  it('waits out Retry-After through a 429 storm, gives up after maxRetries when it never ends, and the next run converges', {
    timeout: 180_000,
  }, async () => {
    const namespaces = names('fs', 6);
    await createNamespaces(
      cluster(),
      namespaces.map((name) => ({ name })),
    );
    const foreign = await plantForeign(namespaces.slice(0, 2));
    const cred = credentialFile(dir, 'fs');
    const config = { mappings: [mapping('cred-fs', cred.path, 'fs')] };

    // Every other request is refused once with Retry-After: 1; the run still converges.
    let n = 0;
    proxy.clearLog();
    proxy.setHook(({ attempt }) =>
      attempt === 1 && n++ % 2 === 0 ? { status: 429, retryAfterSeconds: 1 } : undefined,
    );
    const throttled = await within(120_000, 'the throttled run', viaProxy.reconcile(config));
    proxy.setHook(undefined);
    assert.equal(throttled.converged, true, trouble(throttled));
    const refused = proxy.log.filter((e) => e.injected);
    assert.ok(refused.length >= 4, `only ${refused.length} requests were refused`);
    assert.equal(throttled.requests.retries, refused.length, 'each 429 retried once');
    assert.equal(throttled.requests.total, proxy.log.length, 'the report counts every request sent');
    assert.equal(assertRetryAfterHonoured(proxy.log), refused.length);
    await assertDistributed('cred-fs', namespaces, cred.password);

    // A storm on every write that never ends: each write is tried maxRetries + 1 times, then reported.
    const calm = await copies('cred-fs');
    const rotated = credentialFile(dir, 'fs'); // same file, new password
    proxy.clearLog();
    proxy.setHook(({ method }) => (method === 'GET' ? undefined : { status: 429, retryAfterSeconds: 1 }));
    const stormy = await within(
      120_000,
      'the run in an endless write storm',
      viaProxy.reconcile({ ...config, settings: { maxRetries: 2 } }),
    );
    proxy.setHook(undefined);
    assert.equal(stormy.converged, false);
    assertCleanReport(stormy, [cred.password, rotated.password]);
    const writeAttempts = attemptsByRequest(proxy.log.filter((e) => e.method !== 'GET'));
    assert.equal(writeAttempts.size, namespaces.length, 'one update per namespace was attempted');
    for (const [request, count] of writeAttempts)
      assert.equal(count, 3, `${request}: maxRetries + 1 attempts`);
    assert.ok(
      proxy.log.filter((e) => e.method !== 'GET').every((e) => e.injected),
      'no write reached the server',
    );
    assert.equal(assertRetryAfterHonoured(proxy.log), 2 * namespaces.length);
    const errors = stormy.mappings[0]!.errors;
    assert.deepEqual(errors.map((e) => e.namespace).sort(), namespaces);
    for (const e of errors) assert.match(e.reason, /429 TooManyRequests/);
    const during = await copies('cred-fs');
    for (const ns of namespaces)
      assert.equal(during.get(ns)?.metadata?.resourceVersion, calm.get(ns)?.metadata?.resourceVersion);

    // Every request refused: the observe gives up after maxRetries + 1 attempts per list and writes nothing.
    proxy.clearLog();
    proxy.setHook(() => ({ status: 429, retryAfterSeconds: 1 }));
    const blocked = await within(
      120_000,
      'the run in an endless storm',
      viaProxy.reconcile({ ...config, settings: { maxRetries: 1 } }),
    );
    assert.equal(blocked.converged, false);
    assert.equal(writes(blocked), 0);
    assertCleanReport(blocked, [cred.password, rotated.password]);
    assert.match(blocked.errors.join('\n'), /429 TooManyRequests/);
    // The other lists of the observe may still be finishing their last attempt.
    await waitFor('every throttled list to give up', async () =>
      [...attemptsByRequest(proxy.log).values()].every((count) => count === 2),
    );
    proxy.setHook(undefined);
    assert.ok(
      proxy.log.every((e) => e.method === 'GET' && e.injected),
      'only lists, all refused',
    );

    const next = await p.reconcile(config);
    assert.equal(next.converged, true, trouble(next));
    assert.equal(next.mappings[0]!.counts.updated, namespaces.length);
    await assertDistributed('cred-fs', namespaces, rotated.password);
    await foreign.verify();
    assert.deepEqual(proxy.hookErrors, []);
    assert.deepEqual(unhandled, []);
  });

  it('keeps every entry and field another writer adds to the same service accounts and secrets meanwhile', {
    timeout: 180_000,
  }, async () => {
    const namespaces = names('fw', 6);
    const serviceAccounts = ['default', 'builder'];
    await createNamespaces(
      cluster(),
      namespaces.map((name) => ({ name })),
    );
    for (const ns of namespaces) {
      await core.createNamespacedServiceAccount({
        namespace: ns,
        body: { metadata: { name: 'builder' }, imagePullSecrets: [{ name: 'theirs-first' }] },
      });
    }
    const foreign = await plantForeign(namespaces);
    const cred = credentialFile(dir, 'fw');
    const config = { mappings: [mapping('cred-fw', cred.path, 'fw', serviceAccounts)] };

    /** What the other writers added, by namespace/account. */
    const added = new Map<string, string[]>();
    const lastRound = new Map<string, number>();
    async function otherWriter(
      ns: string,
      name: string,
      entry: string,
      labels: Record<string, string>,
    ): Promise<void> {
      for (let attempt = 0; attempt < 50; attempt++) {
        const sa = await core.readNamespacedServiceAccount({ name, namespace: ns });
        sa.imagePullSecrets = [...(sa.imagePullSecrets ?? []), { name: entry }];
        sa.metadata = { ...sa.metadata, labels: { ...sa.metadata?.labels, ...labels } };
        try {
          await core.replaceNamespacedServiceAccount({ name, namespace: ns, body: sa });
          added.set(`${ns}/${name}`, [...(added.get(`${ns}/${name}`) ?? []), entry]);
          return;
        } catch (error) {
          if (statusOf(error) !== 409) throw error;
        }
      }
      throw new Error(`the other writer could not update ${ns}/${name}`);
    }

    // Someone else writes each account right before our first two writes to it: both are stale (409).
    const saPath = /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts\/([^/?]+)/;
    proxy.clearLog();
    proxy.setHook(async ({ method, path, attempt }) => {
      const match = method === 'PATCH' ? saPath.exec(path) : null;
      if (match && attempt <= 2)
        await otherWriter(match[1]!, match[2]!, `rival-${attempt}`, { [`rival-${attempt}`]: 'yes' });
      return undefined;
    });
    // And another loop keeps appending to the same accounts while the run goes on.
    let stop = false;
    const loop = (async () => {
      for (let round = 1; !stop && round <= 200; round++) {
        for (const ns of namespaces) {
          for (const name of serviceAccounts) {
            await otherWriter(ns, name, `loop-${round}`, { 'loop-round': String(round) });
            lastRound.set(`${ns}/${name}`, round);
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    let report: ClusterReport;
    try {
      report = await within(
        120_000,
        'the contended run',
        viaProxy.reconcile({ ...config, settings: { maxRetries: 8 } }),
      );
    } finally {
      stop = true;
      await loop;
      proxy.setHook(undefined);
    }
    assert.equal(report.converged, true, trouble(report));
    await assertDistributed('cred-fw', namespaces, cred.password, serviceAccounts);
    for (const name of serviceAccounts) {
      const byNamespace = await accounts(name);
      for (const ns of namespaces) {
        const sa = byNamespace.get(ns);
        const refs = pullSecrets(sa);
        for (const entry of added.get(`${ns}/${name}`) ?? [])
          assert.ok(refs.includes(entry), `${ns}/${name}: ${entry} was dropped from [${refs.join(', ')}]`);
        assert.ok(refs.includes(name === 'default' ? 'foreign-pull' : 'theirs-first'));
        assert.equal(sa?.metadata?.labels?.['rival-1'], 'yes');
        assert.equal(sa?.metadata?.labels?.['rival-2'], 'yes');
        assert.equal(sa?.metadata?.labels?.['loop-round'], String(lastRound.get(`${ns}/${name}`)));
      }
    }

    const stale = proxy.log.filter((e) => e.method === 'PATCH' && saPath.test(e.path) && e.status === 409);
    assert.ok(
      stale.length >= 2 * namespaces.length * serviceAccounts.length,
      `only ${stale.length} of our service-account writes met a concurrent change`,
    );

    // A rotation while someone else labels our secrets right before each update: theirs stays, ours lands.
    const uids = new Map([...(await copies('cred-fw'))].map(([ns, s]) => [ns, s.metadata?.uid]));
    const rotated = credentialFile(dir, 'fw');
    const secretPath = /^\/api\/v1\/namespaces\/([^/]+)\/secrets\/cred-fw/;
    proxy.clearLog();
    proxy.setHook(async ({ method, path, attempt }) => {
      const match = method === 'PATCH' ? secretPath.exec(path) : null;
      if (match && attempt === 1) {
        await core.patchNamespacedSecret(
          {
            name: 'cred-fw',
            namespace: match[1]!,
            body: { metadata: { labels: { 'their-label': 'kept' }, annotations: { 'their-note': 'kept' } } },
          },
          mergePatch,
        );
      }
      return undefined;
    });
    const rotation = await within(60_000, 'the rotation', viaProxy.reconcile(config));
    proxy.setHook(undefined);
    assert.equal(rotation.converged, true, trouble(rotation));
    assert.equal(rotation.mappings[0]!.counts.updated, namespaces.length);
    assert.equal(
      proxy.log.filter((e) => e.method === 'PATCH' && secretPath.test(e.path) && e.status === 409).length,
      namespaces.length,
      'each update met a concurrent change once',
    );
    for (const [ns, secret] of await copies('cred-fw')) {
      if (!namespaces.includes(ns)) continue;
      assert.equal(secret.metadata?.uid, uids.get(ns), `${ns}: updated in place`);
      assert.equal(secret.metadata?.labels?.['their-label'], 'kept', `${ns}: their label survives`);
      assert.equal(secret.metadata?.annotations?.['their-note'], 'kept', `${ns}: their annotation survives`);
    }

    // A writer that always gets there first: the run gives up after maxRetries + 1 tries, keeping every entry.
    const [contested] = names('fw-contested', 1) as [string];
    await createNamespaces(cluster(), [{ name: contested }]);
    added.clear();
    proxy.clearLog();
    proxy.setHook(async ({ method, path, attempt }) => {
      const match = method === 'PATCH' ? saPath.exec(path) : null;
      if (match?.[1] === contested) await otherWriter(contested, match[2]!, `always-${attempt}`, {});
      return undefined;
    });
    const lost = await within(
      60_000,
      'the run against an ever-faster writer',
      viaProxy.reconcile({ ...config, settings: { maxRetries: 2 } }),
    );
    proxy.setHook(undefined);
    assert.equal(lost.converged, false);
    assertCleanReport(lost, [cred.password, rotated.password]);
    assert.deepEqual(
      lost.mappings[0]!.errors.map((e) => e.namespace),
      [contested],
    );
    assert.match(lost.mappings[0]!.errors[0]!.reason, /409 Conflict/);
    assert.equal(
      proxy.log.filter((e) => e.method === 'PATCH' && e.path.startsWith(`/api/v1/namespaces/${contested}/`))
        .length,
      3,
      'maxRetries + 1 tries',
    );
    const contestedRefs = pullSecrets(
      await core.readNamespacedServiceAccount({ name: 'default', namespace: contested }),
    );
    assert.deepEqual(contestedRefs, ['always-1', 'always-2', 'always-3']);

    const next = await p.reconcile(config);
    assert.equal(next.converged, true, trouble(next));
    await assertDistributed('cred-fw', [...namespaces, contested], rotated.password, ['default']);
    assert.deepEqual(
      pullSecrets(await core.readNamespacedServiceAccount({ name: 'default', namespace: contested })),
      ['always-1', 'always-2', 'always-3', 'cred-fw'],
    );
    await foreign.verify();
    assert.deepEqual(proxy.hookErrors, []);
    assert.deepEqual(unhandled, []);
  });

  it('skips namespaces deleted or stuck terminating mid-run, converges for the rest, and cleans up once they go', {
    timeout: 240_000,
  }, async () => {
    const live = names('fn-live', 4);
    const [held, vanish, dying, late] = ['fn-held', 'fn-vanish', 'fn-dying', 'fn-late'];
    await createNamespaces(
      cluster(),
      [...live, held!, vanish!, dying!, late!].map((name) => ({ name })),
    );
    const foreign = await plantForeign(live);
    const hold = (namespace: string) =>
      core.createNamespacedConfigMap({
        namespace,
        body: { metadata: { name: 'hold', finalizers: ['example.com/hold'] } },
      });
    const release = (namespace: string) =>
      core.patchNamespacedConfigMap(
        { name: 'hold', namespace, body: { metadata: { finalizers: null } } },
        mergePatch,
      );
    const gone = (namespace: string) =>
      waitFor(
        `namespace ${namespace} to be deleted`,
        async () => {
          try {
            await core.readNamespace({ name: namespace });
            return false;
          } catch (error) {
            return statusOf(error) === 404;
          }
        },
        120_000,
      );
    // Stuck terminating before the run starts.
    await hold(held!);
    await core.deleteNamespace({ name: held! });

    const cred = credentialFile(dir, 'fn');
    const config = { mappings: [mapping('cred-fn', cred.path, 'fn')] };
    const createIn = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(\?|$)/;
    const patchAccountIn = /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts\//;
    proxy.clearLog();
    proxy.setHook(async ({ method, path }) => {
      const create = method === 'POST' ? createIn.exec(path)?.[1] : undefined;
      const patch = method === 'PATCH' ? patchAccountIn.exec(path)?.[1] : undefined;
      if (create === vanish) {
        // Deleted, and gone, between the observe and our write.
        await core.deleteNamespace({ name: vanish! });
        await gone(vanish!);
      } else if (create === dying) {
        // Starts terminating, and stays so, right before our write.
        await hold(dying!);
        await core.deleteNamespace({ name: dying! });
      } else if (patch === late) {
        // Deleted between our secret and our service-account reference.
        await core.deleteNamespace({ name: late! });
      }
      return undefined;
    });
    const report = await within(180_000, 'the run with namespaces going away', viaProxy.reconcile(config));
    proxy.setHook(undefined);
    assert.deepEqual(proxy.hookErrors, []);
    assert.equal(report.converged, true, trouble(report));
    assert.deepEqual(report.errors, []);
    const skipped = report.mappings[0]!.skipped;
    assert.ok((skipped.terminating ?? 0) >= 1, `the held namespace is skipped: ${trouble(report)}`);
    assert.ok((skipped['namespace or object no longer exists'] ?? 0) >= 1, trouble(report));
    assert.ok((skipped['namespace is terminating'] ?? 0) >= 1, trouble(report));
    const written = await copies('cred-fn');
    assert.equal(written.has(dying!), false, 'nothing was written into the terminating namespace');
    assert.equal(written.has(held!), false);
    assert.ok(
      !proxy.log.some((e) => e.path.startsWith(`/api/v1/namespaces/${held}/`)),
      'the terminating namespace was not written to',
    );

    const next = await p.reconcile(config);
    assert.equal(next.converged, true, trouble(next));
    assert.equal(writes(next), 0, `nothing left to write: ${JSON.stringify(next.writes)}`);
    await assertDistributed('cred-fn', live, cred.password);

    // Once the finalizers go, the namespaces go, and the runs no longer mention them.
    await release(held!);
    await release(dying!);
    await Promise.all([gone(held!), gone(dying!), gone(late!)]);
    const cleaned = await p.reconcile(config);
    assert.equal(cleaned.converged, true, trouble(cleaned));
    assert.equal(writes(cleaned), 0);
    assert.equal(cleaned.mappings[0]!.skipped.terminating, undefined, trouble(cleaned));
    assert.equal(cleaned.mappings[0]!.counts.unchanged, live.length);
    await assertDistributed('cred-fn', live, cred.password);
    await foreign.verify();
    assert.deepEqual(unhandled, []);
  });

  it('writes nothing and names the file when the source turns invalid or disappears, then converges when it is back', async () => {
    const namespaces = names('fv', 4);
    await createNamespaces(
      cluster(),
      namespaces.map((name) => ({ name })),
    );
    const foreign = await plantForeign(namespaces.slice(0, 1));
    const cred = credentialFile(dir, 'fv');
    const config = { mappings: [mapping('cred-fv', cred.path, 'fv')] };
    const first = await p.reconcile(config);
    assert.equal(first.converged, true, trouble(first));

    const snapshot = async () => ({
      secrets: [...(await copies('cred-fv'))]
        .filter(([ns]) => namespaces.includes(ns))
        .map(([ns, s]) => `${ns} ${s.metadata?.resourceVersion} ${digest(s.data?.[DOCKER_CONFIG_KEY])}`)
        .sort(),
      accounts: [...(await accounts('default'))]
        .filter(([ns]) => namespaces.includes(ns))
        .map(([ns, sa]) => `${ns} ${sa.metadata?.resourceVersion} ${pullSecrets(sa).join(',')}`)
        .sort(),
    });
    const initial = await snapshot();
    const good = readFileSync(cred.path, 'utf8');
    const leaked = registerCredential({
      label: 'faults: invalid source',
      password: `fv-leak-${Math.random().toString(36).slice(2)}-do-not-log`,
    }).password;
    const cases: { what: string; breakIt: () => void; detail?: RegExp }[] = [
      {
        what: 'truncated JSON',
        breakIt: () =>
          writeFileSync(cred.path, `{"registry":"${REGISTRY}","username":"u","password":"${leaked}"`),
        detail: /not valid JSON/,
      },
      {
        what: 'a password without a registry',
        breakIt: () => writeFileSync(cred.path, JSON.stringify({ username: 'u', password: leaked })),
      },
      { what: 'an empty file', breakIt: () => writeFileSync(cred.path, '') },
      { what: 'a deleted file', breakIt: () => rmSync(cred.path), detail: /cannot read the file \(ENOENT\)/ },
    ];
    for (const { what, breakIt, detail } of cases) {
      breakIt();
      const report = await p.reconcile(config);
      assert.equal(report.converged, false, what);
      assert.equal(writes(report), 0, `${what}: ${JSON.stringify(report.requests)}`);
      const text = JSON.stringify(report);
      assert.ok(
        !text.includes(leaked) && !text.includes(cred.password),
        `${what}: the report names a credential`,
      );
      const message = report.mappings[0]!.errors.map((e) => e.reason).join('\n');
      assert.ok(message.includes(`file:${cred.path}`), `${what}: the error names the source: ${message}`);
      assert.match(message, /^SOURCE_INVALID: /, what);
      if (detail) assert.match(message, detail, what);
      assert.deepEqual(await snapshot(), initial, `${what}: the copies and references are untouched`);
    }

    writeFileSync(cred.path, good);
    const restored = await p.reconcile(config);
    assert.equal(restored.converged, true, trouble(restored));
    assert.equal(writes(restored), 0);
    assert.deepEqual(await snapshot(), initial);
    await assertDistributed('cred-fv', namespaces, cred.password);
    await foreign.verify();
    assert.deepEqual(unhandled, []);
  });
});
