/**
 * End to end: the bundled Lambda artefact (dist/, the esbuild output, not the
 * TypeScript source) invoked with real event payloads, against moto (Secrets
 * Manager, STS) and two real clusters whose API servers authenticate through
 * a webhook that verifies the EKS token's signature and cluster header and
 * maps the caller to the patcher's group: RBAC is the least-privilege one.
 *
 * DescribeCluster is the one AWS call moto cannot answer usefully (its EKS
 * returns a made-up endpoint and CA), so a small local server plays it.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CreateSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { parseConfig } from '../../lib/config.ts';
import { type Rig, startRig } from '../rig/cluster.ts';
import { type EksAuthenticator, startEksAuthenticator } from '../rig/eks-authenticator.ts';
import { type Moto, startMoto } from '../rig/moto.ts';
import { registerCredential } from '../support/test-logs.ts';
import { adminApi, applyRbac, createNamespaces, PATCHER_GROUP, tempDir } from './fixture.ts';

// The fake credentials the tests put in Secrets Manager, registered for the scan of the test logs.
for (const [username, password] of [
  ['a', 'team-a-password-1'],
  ['b', 'team-b-password-1'],
  ['a', 'team-a-password-2'],
  ['b', 'team-b-password-2'],
] as const) {
  registerCredential({
    label: `lambda.test.ts ${username}`,
    username,
    password,
    registry: 'registry.example.com',
  });
}

const ROLE_ARN = 'arn:aws:iam::123456789012:role/imagepullsecret-patcher';
const REGION = 'us-east-1';

type Handler = (event: unknown, context: unknown) => Promise<unknown>;

function lambdaContext(): unknown {
  return {
    functionName: 'imagepullsecret-patcher-test-reconcile',
    functionVersion: '$LATEST',
    invokedFunctionArn:
      'arn:aws:lambda:us-east-1:123456789012:function:imagepullsecret-patcher-test-reconcile',
    memoryLimitInMB: '512',
    awsRequestId: 'e2e-request',
    logGroupName: '/aws/lambda/test',
    logStreamName: 'test',
    callbackWaitsForEmptyEventLoop: false,
    getRemainingTimeInMillis: () => 600_000,
    done() {},
    fail() {},
    succeed() {},
  };
}

describe('the bundled Lambda against moto and two EKS-authenticated clusters', () => {
  let rig: Rig;
  let moto: Moto;
  let eks: Server;
  let handler: Handler;
  const authenticators: EksAuthenticator[] = [];
  /** EKS cluster name -> the rig cluster DescribeCluster answers with (tests may point one elsewhere). */
  const endpoints = new Map<string, { endpoint: string; ca: string }>();
  const dir = tempDir();
  let sm: SecretsManagerClient;

  before(async () => {
    [rig, moto] = await Promise.all([
      startRig({ clusters: [{ name: 'eks-a' }, { name: 'eks-b' }] }),
      startMoto(),
    ]);
    const creds = moto.clientConfig.credentials;
    for (const cluster of rig.clusters) {
      const auth = await startEksAuthenticator({
        credentials: [{ ...creds, arn: ROLE_ARN }],
        mappings: [{ arn: ROLE_ARN, username: 'imagepullsecret-patcher', groups: [PATCHER_GROUP] }],
        clusterName: cluster.name,
      });
      authenticators.push(auth);
      cluster.setTokenDelegate(auth.url);
      endpoints.set(cluster.name, {
        endpoint: cluster.server,
        ca: Buffer.from(cluster.caCertPem).toString('base64'),
      });
    }
    eks = createServer((req, res) => {
      const name = decodeURIComponent(/^\/clusters\/([^/?]+)/.exec(req.url ?? '')?.[1] ?? '');
      const target = endpoints.get(name);
      res.setHeader('content-type', 'application/json');
      if (!target) {
        res.writeHead(404, { 'x-amzn-errortype': 'ResourceNotFoundException' });
        res.end(JSON.stringify({ message: `No cluster found for name: ${name}.` }));
        return;
      }
      res.end(
        JSON.stringify({
          cluster: {
            name,
            status: 'ACTIVE',
            endpoint: target.endpoint,
            certificateAuthority: { data: target.ca },
          },
        }),
      );
    });
    await new Promise<void>((resolve) => eks.listen(0, '127.0.0.1', resolve));

    sm = new SecretsManagerClient(moto.clientConfig);
    const cred = (user: string, password: string) =>
      JSON.stringify({ registry: 'registry.example.com', username: user, password });
    await sm.send(
      new CreateSecretCommand({ Name: 'registry/team-a', SecretString: cred('a', 'team-a-password-1') }),
    );
    await sm.send(
      new CreateSecretCommand({ Name: 'registry/team-b', SecretString: cred('b', 'team-b-password-1') }),
    );

    const configInput = {
      clusters: rig.clusters.map((c) => ({ name: c.name, eks: { name: c.name, region: REGION } })),
      mappings: [
        {
          name: 'team-a',
          secretName: 'team-a-registry',
          source: { secretsManager: { secretId: 'registry/team-a' } },
          namespaces: { include: ['team-a-*'] },
        },
        {
          name: 'team-b',
          secretName: 'team-b-registry',
          source: { secretsManager: { secretId: 'registry/team-b' } },
          namespaces: { include: ['team-b-*'] },
        },
      ],
    };
    const configPath = join(dir, 'imagepullsecret-patcher.yaml');
    writeFileSync(configPath, JSON.stringify(configInput));
    for (const cluster of rig.clusters) {
      await applyRbac(cluster, parseConfig(configInput, 'e2e'));
      await createNamespaces(cluster, [
        { name: 'team-a-web' },
        { name: 'team-a-api' },
        { name: 'team-b-jobs' },
      ]);
    }

    const { bundle } = await import('../../scripts/bundle.ts');
    const out = await bundle({ outdir: join(dir, 'dist'), config: configPath });
    Object.assign(process.env, {
      PATCHER_CONFIG: configPath,
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: creds.accessKeyId,
      AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: moto.endpoint,
      AWS_ENDPOINT_URL_STS: moto.endpoint,
      AWS_ENDPOINT_URL_EKS: `http://127.0.0.1:${(eks.address() as AddressInfo).port}`,
      POWERTOOLS_METRICS_NAMESPACE: 'ImagePullSecretPatcherTest',
      POWERTOOLS_SERVICE_NAME: 'imagepullsecret-patcher',
      POWERTOOLS_LOG_LEVEL: 'WARN',
    });
    handler = ((await import(out.bundle)) as { handler: Handler }).handler;
  });

  after(async () => {
    await new Promise((resolve) => eks?.close(resolve));
    await Promise.all(authenticators.map((a) => a.close()));
    await Promise.all([rig?.stop(), moto?.stop()]);
  });

  const secretOf = async (cluster: number, ns: string, name: string) => {
    const { core } = adminApi(rig.clusters[cluster]!);
    const s = await core.readNamespacedSecret({ name, namespace: ns });
    return JSON.parse(Buffer.from(s.data?.['.dockerconfigjson'] ?? '', 'base64').toString('utf8')).auths[
      'registry.example.com'
    ].password as string;
  };
  const scheduled = {
    version: '0',
    id: 'e2e',
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: '123456789012',
    time: new Date().toISOString(),
    region: REGION,
    resources: [],
    detail: {},
  };

  it('writes nothing on a dry-run invoke', async () => {
    const result = (await handler({ dryRun: true }, lambdaContext())) as {
      clusters: { cluster: string; requests: { byVerb: Record<string, number> }; writes: unknown[] }[];
    };
    assert.equal(result.clusters.length, 2);
    for (const r of result.clusters) {
      assert.equal(r.requests.byVerb.create! + r.requests.byVerb.patch! + r.requests.byVerb.delete!, 0);
      assert.ok(r.writes.length > 0);
    }
    const { core } = adminApi(rig.clusters[0]!);
    await assert.rejects(core.readNamespacedSecret({ name: 'team-a-registry', namespace: 'team-a-web' }), {
      code: 404,
    });
  });

  it('converges every cluster on the scheduled event', async () => {
    const result = (await handler(scheduled, lambdaContext())) as {
      clusters: { cluster: string; converged: boolean }[];
    };
    assert.deepEqual(result.clusters.map((r) => [r.cluster, r.converged]).sort(), [
      ['eks-a', true],
      ['eks-b', true],
    ]);
    for (const c of [0, 1]) {
      assert.equal(await secretOf(c, 'team-a-web', 'team-a-registry'), 'team-a-password-1');
      assert.equal(await secretOf(c, 'team-b-jobs', 'team-b-registry'), 'team-b-password-1');
    }
    assert.ok(
      authenticators.every((a) => a.requests > 0),
      'every cluster authenticated the EKS token',
    );
  });

  it('on a Secrets Manager change, reconciles only the mappings that use that secret', async () => {
    const cred = (user: string, password: string) =>
      JSON.stringify({ registry: 'registry.example.com', username: user, password });
    const put = await sm.send(
      new PutSecretValueCommand({
        SecretId: 'registry/team-a',
        SecretString: cred('a', 'team-a-password-2'),
      }),
    );
    await sm.send(
      new PutSecretValueCommand({
        SecretId: 'registry/team-b',
        SecretString: cred('b', 'team-b-password-2'),
      }),
    );
    const event = {
      version: '0',
      id: 'e2e-change',
      'detail-type': 'Secret Label Updated',
      source: 'aws.secretsmanager',
      account: '123456789012',
      time: new Date().toISOString(),
      region: REGION,
      resources: [],
      detail: { name: 'registry/team-a', labelUpdated: 'AWSCURRENT', versionId: put.VersionId },
    };
    const result = (await handler(event, lambdaContext())) as {
      clusters: { mappings: { mapping: string }[]; converged: boolean }[];
    };
    for (const r of result.clusters) {
      assert.deepEqual(
        r.mappings.map((m) => m.mapping),
        ['team-a'],
      );
      assert.equal(r.converged, true);
    }
    for (const c of [0, 1]) {
      assert.equal(await secretOf(c, 'team-a-api', 'team-a-registry'), 'team-a-password-2');
      assert.equal(
        await secretOf(c, 'team-b-jobs', 'team-b-registry'),
        'team-b-password-1',
        'team-b untouched',
      );
    }
  });

  it('rejects a token minted for another cluster', async () => {
    // DescribeCluster for eks-b now answers with eks-a's endpoint: the token names eks-b, eks-a must refuse it.
    const saved = endpoints.get('eks-b')!;
    endpoints.set('eks-b', endpoints.get('eks-a')!);
    try {
      await assert.rejects(handler({ clusters: ['eks-b'] }, lambdaContext()), /eks-b/);
      const refused = authenticators[0]!.reviews.filter((r) => !r.authenticated);
      assert.ok(refused.length > 0, 'eks-a refused the eks-b token');
    } finally {
      endpoints.set('eks-b', saved);
    }
  });

  it('reports a cluster that is down and still converges the other, then fails the invocation', async () => {
    await rig.clusters[1]!.killApiserver();
    try {
      await assert.rejects(handler({}, lambdaContext()), /eks-b/);
      assert.equal(
        await secretOf(0, 'team-b-jobs', 'team-b-registry'),
        'team-b-password-2',
        'eks-a converged meanwhile',
      );
    } finally {
      await rig.clusters[1]!.startApiserver();
    }
  });
});
