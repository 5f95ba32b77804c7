import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  type AwsCredentials,
  createEksToken,
  decodeEksToken,
  EKS_TOKEN_LIFETIME_MS,
  EKS_TOKEN_PREFIX,
  stsHostname,
} from '../lib/eks-token.ts';
import { ClusterAccessError } from '../lib/errors.ts';

const SIGNED_AT = new Date('2024-01-02T03:04:05.678Z');
const clock = () => new Date(SIGNED_AT);

const STATIC: AwsCredentials = {
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
};
// Characters that need escaping in a query string, as real session tokens have.
const TEMPORARY: AwsCredentials = {
  accessKeyId: 'ASIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY',
  sessionToken: 'IQoJb3JpZ2luX2VjEXAMPLE+/token==with!special*chars',
};

function mint(overrides: Partial<Parameters<typeof createEksToken>[0]> = {}) {
  return createEksToken({
    clusterName: 'prod-blue',
    region: 'eu-west-1',
    credentials: TEMPORARY,
    now: clock,
    ...overrides,
  });
}

describe('createEksToken', () => {
  it('produces "k8s-aws-v1." followed by unpadded base64url', async () => {
    const { token } = await mint();
    assert.ok(token.startsWith(EKS_TOKEN_PREFIX));
    assert.match(token.slice(EKS_TOKEN_PREFIX.length), /^[A-Za-z0-9_-]+$/);
    assert.ok(!token.includes('='));
  });

  it('presigns GetCallerIdentity on the regional STS endpoint', async () => {
    const url = decodeEksToken((await mint()).token);
    assert.equal(url.protocol, 'https:');
    assert.equal(url.host, 'sts.eu-west-1.amazonaws.com');
    assert.equal(url.pathname, '/');
    const q = url.searchParams;
    assert.equal(q.get('Action'), 'GetCallerIdentity');
    assert.equal(q.get('Version'), '2011-06-15');
    assert.equal(q.get('X-Amz-Algorithm'), 'AWS4-HMAC-SHA256');
    assert.equal(q.get('X-Amz-Credential'), `${TEMPORARY.accessKeyId}/20240102/eu-west-1/sts/aws4_request`);
    assert.equal(q.get('X-Amz-Date'), '20240102T030405Z');
    assert.equal(q.get('X-Amz-Expires'), '60');
    assert.match(q.get('X-Amz-Signature') ?? '', /^[0-9a-f]{64}$/);
  });

  it('signs the x-k8s-aws-id header along with host', async () => {
    const url = decodeEksToken((await mint()).token);
    const signed = (url.searchParams.get('X-Amz-SignedHeaders') ?? '').split(';');
    assert.deepEqual(signed, ['host', 'x-k8s-aws-id']);
  });

  it('carries the session token of temporary credentials', async () => {
    const url = decodeEksToken((await mint()).token);
    assert.equal(url.searchParams.get('X-Amz-Security-Token'), TEMPORARY.sessionToken);
  });

  it('has no session token parameter for long-term credentials', async () => {
    const url = decodeEksToken((await mint({ credentials: STATIC })).token);
    assert.equal(url.searchParams.has('X-Amz-Security-Token'), false);
  });

  it('computes the SigV4 signature STS expects, including the cluster name', async () => {
    // An independent SigV4 computation (AWS's published algorithm), not the signer under test.
    for (const credentials of [STATIC, TEMPORARY]) {
      const url = decodeEksToken((await mint({ credentials })).token);
      assert.equal(
        url.searchParams.get('X-Amz-Signature'),
        referenceSignature(url, credentials, 'prod-blue'),
      );
    }
  });

  it('is deterministic for a fixed clock and credentials', async () => {
    assert.equal((await mint()).token, (await mint()).token);
  });

  it('binds the token to the cluster name', async () => {
    const blue = decodeEksToken((await mint()).token);
    const green = decodeEksToken((await mint({ clusterName: 'prod-green' })).token);
    assert.notEqual(blue.searchParams.get('X-Amz-Signature'), green.searchParams.get('X-Amz-Signature'));
  });

  it('expires 14 minutes after signing', async () => {
    const { expiresAt } = await mint();
    assert.equal(expiresAt.getTime() - SIGNED_AT.getTime(), EKS_TOKEN_LIFETIME_MS);
    assert.equal(EKS_TOKEN_LIFETIME_MS, 14 * 60 * 1000);
  });

  it('expires with the credentials when they expire sooner', async () => {
    const expiration = new Date(SIGNED_AT.getTime() + 5 * 60 * 1000);
    const { expiresAt } = await mint({ credentials: { ...TEMPORARY, expiration } });
    assert.equal(expiresAt.getTime(), expiration.getTime());
  });

  it('never puts the secret access key into the token', async () => {
    for (const credentials of [STATIC, TEMPORARY]) {
      const { token } = await mint({ credentials });
      const decoded = Buffer.from(token.slice(EKS_TOKEN_PREFIX.length), 'base64url').toString('utf8');
      for (const text of [token, decoded, decodeURIComponent(decoded)]) {
        assert.ok(!text.includes(credentials.secretAccessKey));
      }
    }
  });

  it('resolves a credential provider', async () => {
    let calls = 0;
    const provider = async () => {
      calls += 1;
      return TEMPORARY;
    };
    assert.equal((await mint({ credentials: provider })).token, (await mint()).token);
    assert.equal(calls, 1);
  });

  it('wraps a failing credential provider without leaking its details into the message', async () => {
    const cause = new Error('could not load credentials from any providers');
    const error = await mint({
      credentials: async () => {
        throw cause;
      },
    }).then(
      () => assert.fail('expected a rejection'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ClusterAccessError);
    assert.equal(error.code, 'CLUSTER_ACCESS');
    assert.match(error.message, /prod-blue/);
    assert.equal(error.cause, cause);
  });

  it('uses the partition of the region', async () => {
    const china = decodeEksToken((await mint({ region: 'cn-northwest-1' })).token);
    assert.equal(china.host, 'sts.cn-northwest-1.amazonaws.com.cn');
    assert.equal(
      china.searchParams.get('X-Amz-Credential'),
      `${TEMPORARY.accessKeyId}/20240102/cn-northwest-1/sts/aws4_request`,
    );
    const gov = decodeEksToken((await mint({ region: 'us-gov-west-1' })).token);
    assert.equal(gov.host, 'sts.us-gov-west-1.amazonaws.com');
  });

  it('presigns an overriding STS endpoint, port included in the signed host', async () => {
    const url = decodeEksToken((await mint({ stsEndpoint: 'http://127.0.0.1:4566' })).token);
    assert.equal(url.origin, 'http://127.0.0.1:4566');
    assert.equal(url.searchParams.get('X-Amz-Signature'), referenceSignature(url, TEMPORARY, 'prod-blue'));
  });

  it('accepts expiresInSeconds up to 900', async () => {
    const url = decodeEksToken((await mint({ expiresInSeconds: 900 })).token);
    assert.equal(url.searchParams.get('X-Amz-Expires'), '900');
  });

  const invalid: Array<[string, Partial<Parameters<typeof createEksToken>[0]>, RegExp]> = [
    ['an empty cluster name', { clusterName: '' }, /clusterName/],
    ['expiresInSeconds above 900', { expiresInSeconds: 901 }, /expiresInSeconds/],
    ['expiresInSeconds of 0', { expiresInSeconds: 0 }, /expiresInSeconds/],
    ['a fractional expiresInSeconds', { expiresInSeconds: 1.5 }, /expiresInSeconds/],
    ['a region that is not a region', { region: 'evil.example.com/' }, /region/],
    ['an STS endpoint that is not a URL', { stsEndpoint: 'sts' }, /stsEndpoint/],
    ['an STS endpoint with a query', { stsEndpoint: 'https://sts.example/?a=b' }, /stsEndpoint/],
  ];
  for (const [name, overrides, message] of invalid) {
    it(`rejects ${name}`, async () => {
      await assert.rejects(mint(overrides), (error: unknown) => {
        assert.ok(error instanceof ClusterAccessError);
        assert.match(error.message, message);
        return true;
      });
    });
  }
});

describe('stsHostname', () => {
  const table: Array<[string, string]> = [
    ['us-east-1', 'sts.us-east-1.amazonaws.com'],
    ['ap-southeast-2', 'sts.ap-southeast-2.amazonaws.com'],
    ['us-gov-east-1', 'sts.us-gov-east-1.amazonaws.com'],
    ['cn-north-1', 'sts.cn-north-1.amazonaws.com.cn'],
    ['us-iso-east-1', 'sts.us-iso-east-1.c2s.ic.gov'],
    ['us-isob-east-1', 'sts.us-isob-east-1.sc2s.sgov.gov'],
    ['eu-isoe-west-1', 'sts.eu-isoe-west-1.cloud.adc-e.uk'],
  ];
  for (const [region, host] of table) {
    it(`maps ${region} to ${host}`, () => assert.equal(stsHostname(region), host));
  }
});

describe('decodeEksToken', () => {
  const encode = (text: string) => EKS_TOKEN_PREFIX + Buffer.from(text).toString('base64url');

  it('returns the presigned URL', () => {
    const url = decodeEksToken(encode('https://sts.us-east-1.amazonaws.com/?Action=GetCallerIdentity'));
    assert.equal(url.searchParams.get('Action'), 'GetCallerIdentity');
  });

  const garbage: Array<[string, string]> = [
    ['an empty string', ''],
    ['a token without the prefix', Buffer.from('https://sts.amazonaws.com/').toString('base64url')],
    ['another version prefix', `k8s-aws-v2.${Buffer.from('https://x/').toString('base64url')}`],
    ['the prefix alone', EKS_TOKEN_PREFIX],
    ['padded base64', `${EKS_TOKEN_PREFIX}aHR0cHM6Ly94Lw==`],
    ['standard base64 characters', `${EKS_TOKEN_PREFIX}ab+/cd`],
    ['a truncated payload', `${EKS_TOKEN_PREFIX}aHR0cHM6Ly94L`],
    ['a payload that is not a URL', encode('definitely not a url')],
    ['a non-http URL', encode('file:///etc/passwd')],
    ['a service-account JWT', 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'],
  ];
  for (const [name, token] of garbage) {
    it(`rejects ${name} without echoing it`, () => {
      assert.throws(
        () => decodeEksToken(token),
        (error: unknown) => {
          assert.ok(error instanceof ClusterAccessError);
          if (token.length > EKS_TOKEN_PREFIX.length) assert.ok(!error.message.includes(token));
          return true;
        },
      );
    });
  }
});

// SigV4 for a presigned GET with an empty body, written from AWS's documentation.
function referenceSignature(url: URL, credentials: AwsCredentials, clusterName: string): string {
  const rfc3986 = (s: string) =>
    encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const params = [...url.searchParams.entries()].filter(([k]) => k !== 'X-Amz-Signature');
  const canonicalQuery = params
    .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalRequest = [
    'GET',
    url.pathname,
    canonicalQuery,
    `host:${url.host}`,
    `x-k8s-aws-id:${clusterName}`,
    '',
    'host;x-k8s-aws-id',
    createHash('sha256').update('').digest('hex'),
  ].join('\n');
  const amzDate = url.searchParams.get('X-Amz-Date') ?? '';
  const [, day, region, service] = (url.searchParams.get('X-Amz-Credential') ?? '').split('/');
  const scope = `${day}/${region}/${service}/aws4_request`;
  const stringToSign = [
    'AWS4-HMAC-SHA256',
    amzDate,
    scope,
    createHash('sha256').update(canonicalRequest).digest('hex'),
  ].join('\n');
  const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
  const key = hmac(
    hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day ?? ''), region ?? ''), service ?? ''),
    'aws4_request',
  );
  return createHmac('sha256', key).update(stringToSign).digest('hex');
}
