/**
 * The test control plane: one etcd shared by one or more independent clusters
 * (each its own kube-apiserver, CA, ports and etcd prefix, plus a
 * kube-controller-manager running the service-account, service-account-token
 * and namespace controllers). Everything runs from the binaries that
 * test/controlplane/build.sh builds, in a temp dir, on free loopback ports.
 *
 *   const rig = await startRig({ clusters: 2 });
 *   try { ... rig.clusters[0].adminKubeconfigPath ... } finally { await rig.stop(); }
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { controlPlaneBinaries } from './binaries.ts';
import { httpsRequest } from './http.ts';
import { type IdentityWebhook, startIdentityWebhook, type WebhookUser } from './identity-webhook.ts';
import { makePki } from './pki.ts';
import { freePort, waitFor } from './ports.ts';
import { onInterrupt, type RigProcess, startProcess } from './processes.ts';

export type Etcd = {
  readonly url: string;
  stop(): Promise<void>;
  /**
   * Stops etcd and starts it again on the same port and data: gracefully by
   * default (SIGTERM, which waits for open streams), or as a crash with SIGKILL.
   */
  restart(signal?: NodeJS.Signals): Promise<void>;
};

export type Identity = WebhookUser & { readonly token: string; readonly kubeconfigPath: string };

export type TestCluster = {
  readonly name: string;
  readonly server: string;
  readonly caCertPem: string;
  /** The API server's serving certificate and key (127.0.0.1, signed by the CA), for a proxy standing in for it. */
  readonly tls: { readonly certPath: string; readonly keyPath: string };
  readonly adminToken: string;
  readonly adminKubeconfigPath: string;
  readonly dir: string;
  /** A user with these groups, authenticated through the rig's webhook; usable at once. */
  mintIdentity(user: WebhookUser): Identity;
  /** Sends tokens the rig did not mint to another TokenReview webhook (e.g. the EKS authenticator). */
  setTokenDelegate(url: string | undefined): void;
  /** Kills the API server (SIGKILL) for fault tests; `startApiserver` brings it back. */
  killApiserver(): Promise<void>;
  startApiserver(): Promise<void>;
  stop(): Promise<void>;
};

export type ClusterOptions = { name?: string; extraApiserverArgs?: readonly string[] };

export type Rig = {
  readonly dir: string;
  readonly etcd: Etcd;
  readonly clusters: readonly TestCluster[];
  stop(): Promise<void>;
};

/** Writes a kubeconfig for `server` with a bearer token; returns its path. */
export function writeKubeconfig(
  path: string,
  cluster: { name: string; server: string; caCertPem: string },
  user: { name: string; token: string },
): string {
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: cluster.name,
        cluster: {
          server: cluster.server,
          'certificate-authority-data': Buffer.from(cluster.caCertPem).toString('base64'),
        },
      },
    ],
    users: [{ name: user.name, user: { token: user.token } }],
    contexts: [{ name: cluster.name, context: { cluster: cluster.name, user: user.name } }],
    'current-context': cluster.name,
  };
  writeFileSync(path, stringify(doc), { mode: 0o600 });
  return path;
}

export async function startEtcd(dir: string): Promise<Etcd> {
  const bin = controlPlaneBinaries();
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${clientPort}`;
  const args = [
    '--name=rig',
    `--data-dir=${join(dir, 'data')}`,
    `--listen-client-urls=${url}`,
    `--advertise-client-urls=${url}`,
    `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-cluster=rig=http://127.0.0.1:${peerPort}`,
    '--unsafe-no-fsync',
    '--quota-backend-bytes=4294967296',
    '--log-level=warn',
  ];
  let proc: RigProcess | undefined;
  const start = async () => {
    proc = startProcess('etcd', bin.etcd, args, join(dir, 'etcd.log'));
    await waitFor('etcd /health', async () => (await fetch(`${url}/health`)).ok, 30_000);
  };
  await start();
  return {
    url,
    stop: async () => proc?.stop(),
    restart: async (signal) => {
      await proc?.stop(signal);
      await start();
    },
  };
}

async function startCluster(
  etcd: Etcd,
  rigDir: string,
  index: number,
  options: ClusterOptions,
): Promise<TestCluster> {
  const bin = controlPlaneBinaries();
  const name = options.name ?? `cluster-${index}`;
  const dir = join(rigDir, name);
  mkdirSync(dir, { recursive: true });
  const pki = makePki(dir);
  const port = await freePort();
  const server = `https://127.0.0.1:${port}`;
  const adminToken = randomBytes(24).toString('hex');
  writeFileSync(join(dir, 'tokens.csv'), `${adminToken},rig-admin,rig-admin,"system:masters"\n`);
  const webhook: IdentityWebhook = await startIdentityWebhook();
  const webhookConfig = writeKubeconfig(
    join(dir, 'webhook.kubeconfig'),
    { name: 'webhook', server: webhook.url, caCertPem: pki.caCertPem },
    { name: 'apiserver', token: 'unused' },
  );
  const adminKubeconfigPath = writeKubeconfig(
    join(dir, 'admin.kubeconfig'),
    { name, server, caCertPem: pki.caCertPem },
    { name: 'rig-admin', token: adminToken },
  );

  const apiserverArgs = [
    `--etcd-servers=${etcd.url}`,
    `--etcd-prefix=/${name}-${randomBytes(4).toString('hex')}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${port}`,
    '--advertise-address=127.0.0.1',
    `--cert-dir=${dir}`,
    `--tls-cert-file=${pki.servingCertPath}`,
    `--tls-private-key-file=${pki.servingKeyPath}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    '--authorization-mode=RBAC',
    `--client-ca-file=${pki.caCertPath}`,
    `--token-auth-file=${join(dir, 'tokens.csv')}`,
    `--authentication-token-webhook-config-file=${webhookConfig}`,
    '--authentication-token-webhook-version=v1',
    '--authentication-token-webhook-cache-ttl=0s',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${pki.saPubPath}`,
    `--service-account-signing-key-file=${pki.saKeyPath}`,
    '--endpoint-reconciler-type=none',
    '--v=1',
    ...(options.extraApiserverArgs ?? []),
  ];
  let apiserver: RigProcess | undefined;
  const startApiserver = async () => {
    apiserver = startProcess(
      `${name}-apiserver`,
      bin.kubeApiserver,
      apiserverArgs,
      join(dir, 'kube-apiserver.log'),
    );
    const died = apiserver.exited.then((code) => {
      throw new Error(`kube-apiserver of ${name} exited (${code}); see ${join(dir, 'kube-apiserver.log')}`);
    });
    await Promise.race([
      died,
      waitFor(
        `${name} kube-apiserver /readyz`,
        async () =>
          (await httpsRequest(`${server}/readyz`, { ca: pki.caCertPem, token: adminToken })).status === 200,
        90_000,
      ),
    ]);
    died.catch(() => undefined);
  };
  await startApiserver();

  const kcm = startProcess(
    `${name}-controller-manager`,
    bin.kubeControllerManager,
    [
      `--kubeconfig=${adminKubeconfigPath}`,
      '--controllers=serviceaccount-controller,serviceaccount-token-controller,namespace-controller',
      `--service-account-private-key-file=${pki.saKeyPath}`,
      `--root-ca-file=${pki.caCertPath}`,
      '--leader-elect=false',
      // The default 20 QPS would take minutes to give thousands of namespaces their `default` accounts.
      '--kube-api-qps=500',
      '--kube-api-burst=1000',
      '--secure-port=0',
      '--v=1',
    ],
    join(dir, 'kube-controller-manager.log'),
  );
  // The service-account controller is up once it has made the `default` namespace's `default` account.
  await waitFor(
    `${name} controller-manager (default service account)`,
    async () =>
      (
        await httpsRequest(`${server}/api/v1/namespaces/default/serviceaccounts/default`, {
          ca: pki.caCertPem,
          token: adminToken,
        })
      ).status === 200,
    60_000,
  );

  return {
    name,
    server,
    caCertPem: pki.caCertPem,
    tls: { certPath: pki.servingCertPath, keyPath: pki.servingKeyPath },
    adminToken,
    adminKubeconfigPath,
    dir,
    mintIdentity(user) {
      const token = webhook.mint(user);
      const kubeconfigPath = writeKubeconfig(
        join(dir, `${user.username.replace(/[^a-z0-9-]/gi, '_')}-${token.slice(-6)}.kubeconfig`),
        { name, server, caCertPem: pki.caCertPem },
        { name: user.username, token },
      );
      return { ...user, token, kubeconfigPath };
    },
    setTokenDelegate: (url) => webhook.setDelegate(url),
    killApiserver: async () => apiserver?.stop('SIGKILL'),
    startApiserver,
    async stop() {
      await kcm.stop();
      await apiserver?.stop();
      await webhook.close();
    },
  };
}

/**
 * Starts etcd and `clusters` independent clusters. Always pair with
 * `rig.stop()` in a `finally` or `after` hook; processes also die with this
 * process (parent-death signal and exit hooks).
 */
export async function startRig(
  options: { clusters?: number | readonly ClusterOptions[]; keepDir?: boolean } = {},
): Promise<Rig> {
  const specs =
    typeof options.clusters === 'object'
      ? options.clusters
      : Array.from({ length: options.clusters ?? 1 }, () => ({}));
  const dir = mkdtempSync(join(tmpdir(), 'ipsp-rig-'));
  const etcd = await startEtcd(dir);
  const clusters: TestCluster[] = [];
  let unregister = () => {};
  const stop = async () => {
    unregister();
    await Promise.all(clusters.map((c) => c.stop()));
    await etcd.stop();
    if (!options.keepDir && !process.env.IPSP_KEEP_RIG) rmSync(dir, { recursive: true, force: true });
  };
  unregister = onInterrupt(stop);
  try {
    // Sequential: two API servers bootstrapping at once on 2 cores are slower than one after another.
    for (const [i, spec] of specs.entries()) clusters.push(await startCluster(etcd, dir, i, spec));
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
  return { dir, etcd, clusters, stop };
}
