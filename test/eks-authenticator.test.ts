import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createEksToken,
  EKS_TOKEN_PREFIX,
  type EksTokenOptions,
  presignGetCallerIdentity,
} from '../lib/eks-token.ts';
import {
  type EksAuthenticator,
  type RigCredential,
  startEksAuthenticator,
  writeWebhookKubeconfig,
} from './rig/eks-authenticator.ts';

const T0 = new Date('2025-06-01T12:00:00Z');
const minutes = (n: number) => n * 60 * 1000;

const PATCHER: RigCredential = {
  accessKeyId: 'ASIAPATCHEREXAMPLE01',
  secretAccessKey: 'patcherSecretKeyEXAMPLE/aaaaaaaaaaaaaaaaa',
  sessionToken: 'FwoGZXIvYXdzEXAMPLE+session/token==',
  arn: 'arn:aws:iam::123456789012:role/patcher',
};
const ALICE: RigCredential = {
  accessKeyId: 'AKIAALICEEXAMPLE0001',
  secretAccessKey: 'aliceSecretKeyEXAMPLE/bbbbbbbbbbbbbbbbbbbb',
  arn: 'arn:aws:iam::123456789012:user/alice',
};
const UNMAPPED: RigCredential = {
  accessKeyId: 'AKIAUNMAPPEDEXAMPLE1',
  secretAccessKey: 'unmappedSecretKeyEXAMPLE/ccccccccccccccc',
  arn: 'arn:aws:iam::123456789012:role/nobody',
};

type TokenReviewStatus = {
  authenticated?: boolean;
  error?: string;
  user?: { username: string; uid?: string; groups?: string[] };
};

describe('EKS authenticator rig', () => {
  let rig: EksAuthenticator;
  let clock = T0;

  before(async () => {
    rig = await startEksAuthenticator({
      credentials: [PATCHER, ALICE, UNMAPPED],
      mappings: [
        { arn: PATCHER.arn, username: 'imagepullsecret-patcher', groups: ['imagepullsecret-patcher'] },
        { arn: ALICE.arn, username: 'alice', groups: ['developers', 'viewers'] },
      ],
      clusterName: 'blue',
      now: () => clock,
    });
  });
  after(() => rig.close());

  const mint = async (options: Partial<EksTokenOptions> = {}) =>
    (
      await createEksToken({
        clusterName: 'blue',
        region: 'eu-west-1',
        credentials: PATCHER,
        now: () => T0,
        ...options,
      })
    ).token;

  async function review(token: string, at: Date = T0): Promise<TokenReviewStatus> {
    clock = at;
    const response = await fetch(rig.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } }),
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { apiVersion: string; kind: string; status: TokenReviewStatus };
    assert.equal(body.apiVersion, 'authentication.k8s.io/v1');
    assert.equal(body.kind, 'TokenReview');
    return body.status;
  }

  async function assertRejected(token: string, reason: RegExp, at?: Date): Promise<void> {
    const status = await review(token, at);
    assert.equal(status.authenticated, false);
    assert.equal(status.user, undefined);
    assert.match(status.error ?? '', reason);
    if (token) assert.ok(!(status.error ?? '').includes(token), 'the error must not echo the token');
  }

  it('accepts a token minted for this cluster with known credentials', async () => {
    const status = await review(await mint());
    assert.equal(status.authenticated, true);
    assert.deepEqual(status.user, {
      username: 'imagepullsecret-patcher',
      uid: `aws-iam-authenticator:123456789012:${PATCHER.accessKeyId}`,
      groups: ['imagepullsecret-patcher'],
      extra: { arn: [PATCHER.arn], accesskeyid: [PATCHER.accessKeyId] },
    });
  });

  it('maps long-term credentials to their own user', async () => {
    const status = await review(await mint({ credentials: ALICE }));
    assert.equal(status.authenticated, true);
    assert.equal(status.user?.username, 'alice');
    assert.deepEqual(status.user?.groups, ['developers', 'viewers']);
  });

  it('rejects a token minted for another cluster', async () => {
    await assertRejected(await mint({ clusterName: 'green' }), /signature does not match/);
  });

  it('rejects a token signed with the wrong secret key', async () => {
    const forged = { ...PATCHER, secretAccessKey: 'notTheRightSecretKeyEXAMPLE/dddddddddddd' };
    await assertRejected(await mint({ credentials: forged }), /signature does not match/);
  });

  it('rejects a token whose session token is missing', async () => {
    const { sessionToken: _, ...withoutSession } = PATCHER;
    await assertRejected(await mint({ credentials: withoutSession }), /session token/);
  });

  it('rejects an unknown access key', async () => {
    const stranger = { ...ALICE, accessKeyId: 'AKIASTRANGEREXAMPLE1' };
    await assertRejected(await mint({ credentials: stranger }), /access key is not known/);
  });

  it('rejects a valid caller whose ARN is not mapped', async () => {
    await assertRejected(await mint({ credentials: UNMAPPED }), /not mapped/);
  });

  it('accepts a token until 15 minutes after signing and rejects it after', async () => {
    const token = await mint();
    assert.equal((await review(token, new Date(T0.getTime() + minutes(14)))).authenticated, true);
    assert.equal((await review(token, new Date(T0.getTime() + minutes(15)))).authenticated, true);
    await assertRejected(token, /expired/, new Date(T0.getTime() + minutes(15) + 1000));
  });

  it('rejects a token signed more than 5 minutes in the future', async () => {
    await assertRejected(await mint({ now: () => new Date(T0.getTime() + minutes(6)) }), /future/);
  });

  it('rejects a presigned URL valid for longer than 900 seconds', async () => {
    const endpoint = new URL('https://sts.eu-west-1.amazonaws.com/');
    const { query } = await presignGetCallerIdentity({
      endpoint,
      clusterName: 'blue',
      region: 'eu-west-1',
      credentials: PATCHER,
      signingDate: T0,
      expiresInSeconds: 3600,
    });
    const url = new URL(endpoint);
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
    await assertRejected(EKS_TOKEN_PREFIX + Buffer.from(url.href).toString('base64url'), /X-Amz-Expires/);
  });

  it('rejects a token presigned for a host that is not STS', async () => {
    await assertRejected(await mint({ stsEndpoint: 'http://127.0.0.1:9/' }), /not the STS endpoint/);
  });

  it('rejects a token whose URL carries extra parameters', async () => {
    const url = new URL(Buffer.from((await mint()).slice(EKS_TOKEN_PREFIX.length), 'base64url').toString());
    url.searchParams.append('Action', 'AssumeRole');
    await assertRejected(EKS_TOKEN_PREFIX + Buffer.from(url.href).toString('base64url'), /more than once/);
  });

  const garbage: Array<[string, string]> = [
    ['an empty token', ''],
    ['a random string', 'hello-world'],
    ['a service-account JWT', 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'],
    ['bad base64url', `${EKS_TOKEN_PREFIX}!!!not-base64!!!`],
    ['a payload that is not a URL', EKS_TOKEN_PREFIX + Buffer.from('not a url').toString('base64url')],
    [
      'a URL for another STS action',
      EKS_TOKEN_PREFIX +
        Buffer.from('https://sts.eu-west-1.amazonaws.com/?Action=AssumeRole&Version=2011-06-15').toString(
          'base64url',
        ),
    ],
  ];
  for (const [name, token] of garbage) {
    it(`rejects ${name}`, async () => {
      await assertRejected(token, /./);
    });
  }

  it('answers malformed requests with HTTP errors and counts TokenReview requests', async () => {
    const before = rig.requests;
    const bad = await fetch(rig.url, { method: 'POST', body: '{"kind":"Nope"}' });
    assert.equal(bad.status, 400);
    const notJson = await fetch(rig.url, { method: 'POST', body: 'nope' });
    assert.equal(notJson.status, 400);
    assert.equal((await fetch(rig.url)).status, 405);
    assert.equal((await fetch(new URL('/other', rig.url), { method: 'POST', body: '{}' })).status, 404);
    await review(await mint());
    assert.equal(rig.requests, before + 3);
  });

  it('records each verdict', async () => {
    const seen = rig.reviews.length;
    await review(await mint());
    await review('garbage');
    assert.deepEqual(
      rig.reviews.slice(seen).map((r) => r.authenticated),
      [true, false],
    );
  });

  it('echoes a v1beta1 TokenReview in its own version', async () => {
    const response = await fetch(rig.url, {
      method: 'POST',
      body: JSON.stringify({
        apiVersion: 'authentication.k8s.io/v1beta1',
        kind: 'TokenReview',
        spec: { token: await mint() },
      }),
    });
    const body = (await response.json()) as { apiVersion: string; status: TokenReviewStatus };
    assert.equal(body.apiVersion, 'authentication.k8s.io/v1beta1');
    assert.equal(body.status.authenticated, true);
  });
});

describe('writeWebhookKubeconfig', () => {
  it('writes a private kubeconfig whose current context points at the webhook', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'eks-authn-'));
    try {
      const path = await writeWebhookKubeconfig(join(dir, 'nested'), 'http://127.0.0.1:12345/authenticate');
      const config = JSON.parse(await readFile(path, 'utf8'));
      assert.equal(config.kind, 'Config');
      const context = config.contexts.find((c: { name: string }) => c.name === config['current-context']);
      const cluster = config.clusters.find((c: { name: string }) => c.name === context.context.cluster);
      assert.equal(cluster.cluster.server, 'http://127.0.0.1:12345/authenticate');
      assert.equal((await stat(path)).mode & 0o777, 0o600);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
