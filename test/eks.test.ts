/**
 * lib/eks.ts: DescribeCluster gives the endpoint and CA, every request
 * carries an EKS token for this cluster, and the token is renewed before it
 * expires (a run may outlive it). DescribeCluster is played by a local server
 * (moto's EKS answers with a made-up endpoint and CA).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../lib/config.ts';
import { eksConnection } from '../lib/eks.ts';
import { decodeEksToken } from '../lib/eks-token.ts';

const credentials = { accessKeyId: 'AKIDEKSTEST000000000', secretAccessKey: 'eks-test-secret-key-not-real' };

describe('eksConnection', () => {
  let server: Server;
  let endpoint: string;
  let describes = 0;

  before(async () => {
    server = createServer((req, res) => {
      describes++;
      const name = /^\/clusters\/([^/?]+)/.exec(req.url ?? '')?.[1];
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          cluster: {
            name,
            status: 'ACTIVE',
            endpoint: 'https://eks.example.internal',
            certificateAuthority: { data: Buffer.from('CA PEM').toString('base64') },
          },
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const cluster = () => {
    const c = parseConfig(
      {
        clusters: [{ name: 'prod', eks: { name: 'platform-prod', region: 'eu-west-1' } }],
        mappings: [{ secretName: 'regcred', source: { file: 'x.json' } }],
      },
      'test',
    ).clusters[0]!;
    if (!('eks' in c)) throw new Error('expected an EKS cluster');
    return c;
  };

  it('uses the endpoint and CA from DescribeCluster and renews the token before it expires', async () => {
    let now = new Date('2026-12-04T12:00:00Z');
    const connection = await eksConnection(cluster(), {
      credentials,
      clientConfig: { endpoint, credentials },
      now: () => now,
    });
    assert.equal(describes, 1);
    assert.equal(connection.server, 'https://eks.example.internal');
    assert.equal(String((connection.agent as https.Agent).options.ca), 'CA PEM');

    const bearer = async () => {
      const header = (await connection.credentials()).headers?.Authorization ?? '';
      assert.match(header, /^Bearer k8s-aws-v1\./);
      return header.slice('Bearer '.length);
    };
    const first = await bearer();
    const url = decodeEksToken(first);
    assert.equal(url.hostname, 'sts.eu-west-1.amazonaws.com');
    assert.match(url.searchParams.get('X-Amz-SignedHeaders') ?? '', /x-k8s-aws-id/);
    assert.ok(!first.includes(credentials.secretAccessKey));

    now = new Date('2026-12-04T12:10:00Z');
    assert.equal(await bearer(), first, 'still valid: reused');
    now = new Date('2026-12-04T12:13:30Z');
    const renewed = await bearer();
    assert.notEqual(renewed, first, 'within a minute of expiry: renewed');
    assert.equal(decodeEksToken(renewed).searchParams.get('X-Amz-Date'), '20261204T121330Z');
    assert.equal(describes, 1, 'DescribeCluster once per cluster');
  });
});
