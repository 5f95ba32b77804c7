import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig, type SourceConfig } from '../lib/config.ts';
import { SourceError } from '../lib/errors.ts';
import type { KubeClient, SecretInfo } from '../lib/kube.ts';
import { describeSource, loadSource } from '../lib/sources.ts';

/** A source as the configuration produces it, defaults applied. */
const source = (input: unknown): SourceConfig =>
  parseConfig({ mappings: [{ secretName: 'regcred', source: input }] }, 'test').mappings[0]!.source;

/** A kube client that holds one secret: the boundary of an in-cluster source, nothing more. */
function kubeWith(secret: Partial<SecretInfo> & Pick<SecretInfo, 'data'>): KubeClient {
  const full: SecretInfo = {
    namespace: 'src',
    name: 'regcred',
    uid: '0123456789abcdef',
    resourceVersion: '7',
    type: 'Opaque',
    labels: {},
    annotations: {},
    ...secret,
  };
  return { readSecret: async () => full } as unknown as KubeClient;
}

describe('describeSource', () => {
  const cases: readonly [unknown, string][] = [
    [{ file: '/etc/regcred.json' }, 'file:/etc/regcred.json'],
    [{ secretsManager: { secretId: 'registry/team-a' } }, 'secretsManager:registry/team-a:AWSCURRENT'],
    [{ kubernetes: { namespace: 'src', name: 'regcred' } }, 'kubernetes:src/regcred'],
    [
      { kubernetes: { namespace: 'src', name: 'regcred', key: '.dockerconfigjson' } },
      'kubernetes:src/regcred',
    ],
    [
      { kubernetes: { namespace: 'src', name: 'regcred', key: 'config.json' } },
      'kubernetes:src/regcred[config.json]',
    ],
  ];
  for (const [input, expected] of cases) {
    it(`names ${JSON.stringify(input)} ${expected}`, () =>
      assert.equal(describeSource(source(input)), expected));
  }
});

describe('loadSource from an in-cluster secret', () => {
  const b64 = (text: string) => Buffer.from(text).toString('base64');

  it('names the data key it read when the content is invalid and the key is not the usual one', async () => {
    const kube = kubeWith({ data: { 'config.json': b64('{"auths": {') } });
    await assert.rejects(
      loadSource(source({ kubernetes: { namespace: 'src', name: 'regcred', key: 'config.json' } }), { kube }),
      (error: unknown) => {
        assert.ok(error instanceof SourceError);
        assert.equal(error.message, 'source "kubernetes:src/regcred[config.json]": not valid JSON');
        return true;
      },
    );
  });

  it('names a missing data key', async () => {
    const kube = kubeWith({ data: { token: b64('x') } });
    await assert.rejects(
      loadSource(source({ kubernetes: { namespace: 'src', name: 'regcred' } }), { kube }),
      /^SourceError: source "kubernetes:src\/regcred": has no key "\.dockerconfigjson"$/,
    );
  });
});
