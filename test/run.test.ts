import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../lib/config.ts';
import { ConfigError } from '../lib/errors.ts';
import type { RunRequest } from '../lib/events.ts';
import { sameSecret, scope } from '../lib/run.ts';

const ARN_PREFIX = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:';

const config = parseConfig(
  {
    clusters: [
      { name: 'prod', kube: {} },
      { name: 'staging', kube: {} },
      { name: 'dev', kube: {} },
    ],
    mappings: [
      {
        name: 'a',
        secretName: 'regcred',
        clusters: ['prod'],
        source: { secretsManager: { secretId: 'prod/regcred' } },
      },
      {
        name: 'b',
        secretName: 'team-b-cred',
        clusters: ['prod', 'staging'],
        source: { secretsManager: { secretId: `${ARN_PREFIX}team/b-cred-AbC123` } },
      },
      { name: 'c', secretName: 'filecred', source: { file: 'cred.json' } },
    ],
  },
  'test',
);

describe('scope', () => {
  const cases: {
    name: string;
    request: Partial<RunRequest>;
    clusters: string[];
    mappings: string[];
    full: boolean;
  }[] = [
    {
      name: 'covers every cluster and mapping without filters, as a full run',
      request: {},
      clusters: ['prod', 'staging', 'dev'],
      mappings: ['a', 'b', 'c'],
      full: true,
    },
    {
      name: 'limits clusters to those the selected mappings use',
      request: { mappings: ['a'] },
      clusters: ['prod'],
      mappings: ['a'],
      full: false,
    },
    {
      name: 'keeps every cluster a selected mapping uses',
      request: { mappings: ['b'] },
      clusters: ['prod', 'staging'],
      mappings: ['b'],
      full: false,
    },
    {
      name: 'a cluster filter alone is still a full run of that cluster',
      request: { clusters: ['staging'] },
      clusters: ['staging'],
      mappings: ['a', 'b', 'c'],
      full: true,
    },
    {
      name: 'selects no cluster when the requested cluster is not used by the requested mapping',
      request: { clusters: ['staging'], mappings: ['a'] },
      clusters: [],
      mappings: ['a'],
      full: false,
    },
    {
      name: 'a namespace filter makes the run partial',
      request: { namespaces: ['team-a'] },
      clusters: ['prod', 'staging', 'dev'],
      mappings: ['a', 'b', 'c'],
      full: false,
    },
    {
      name: 'matches a secret id by name',
      request: { secretIds: ['prod/regcred'] },
      clusters: ['prod'],
      mappings: ['a'],
      full: false,
    },
    {
      name: 'matches a secret id by ARN with its 6-character suffix against a source given by name',
      request: { secretIds: [`${ARN_PREFIX}prod/regcred-XyZ789`] },
      clusters: ['prod'],
      mappings: ['a'],
      full: false,
    },
    {
      name: 'matches a source given by ARN against the name in the event',
      request: { secretIds: ['team/b-cred'] },
      clusters: ['prod', 'staging'],
      mappings: ['b'],
      full: false,
    },
    {
      name: 'matches any of several ids',
      request: { secretIds: ['unrelated', `${ARN_PREFIX}team/b-cred-AbC123`] },
      clusters: ['prod', 'staging'],
      mappings: ['b'],
      full: false,
    },
    {
      name: 'selects nothing for a secret no mapping reads (file sources never match)',
      request: { secretIds: ['cred.json'] },
      clusters: [],
      mappings: [],
      full: false,
    },
    {
      name: 'intersects mappings and secret ids',
      request: { mappings: ['a'], secretIds: ['team/b-cred'] },
      clusters: [],
      mappings: [],
      full: false,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const result = scope(config, { trigger: 'manual', dryRun: false, ...c.request });
      assert.deepEqual(
        result.clusters.map((cluster) => cluster.name),
        c.clusters,
      );
      assert.deepEqual(
        result.mappings.map((m) => m.name),
        c.mappings,
      );
      assert.equal(result.full, c.full);
    });
  }

  const unknown: { name: string; request: Partial<RunRequest>; message: RegExp }[] = [
    {
      name: 'rejects an unknown cluster, naming payload.clusters and the configured ones',
      request: { clusters: ['prod', 'prdo'] },
      message: /^payload\.clusters: unknown clusters "prdo" \(configured: prod, staging, dev\)$/,
    },
    {
      name: 'rejects unknown mappings, naming payload.mappings and the configured ones',
      request: { mappings: ['x', 'a', 'y'] },
      message: /^payload\.mappings: unknown mappings "x", "y" \(configured: a, b, c\)$/,
    },
  ];
  for (const c of unknown) {
    it(c.name, () => {
      assert.throws(
        () => scope(config, { trigger: 'manual', dryRun: false, ...c.request }),
        (error: unknown) => error instanceof ConfigError && c.message.test(error.message),
      );
    });
  }
});

describe('sameSecret', () => {
  const cases: [source: string, event: string, expected: boolean][] = [
    ['prod/regcred', 'prod/regcred', true],
    ['prod/regcred', `${ARN_PREFIX}prod/regcred-AbC123`, true],
    [`${ARN_PREFIX}prod/regcred-AbC123`, 'prod/regcred', true],
    [`${ARN_PREFIX}prod/regcred-AbC123`, `${ARN_PREFIX}prod/regcred-AbC123`, true],
    ['team/pull-secret', `${ARN_PREFIX}team/pull-secret-AbC123`, true],
    [
      'prod/regcred',
      'arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:prod/regcred-AbC123',
      true,
    ],
    // A secret deleted and recreated under the same name has a new ARN.
    [`${ARN_PREFIX}prod/regcred-AbC123`, `${ARN_PREFIX}prod/regcred-XyZ789`, false],
    // A partial ARN (no random suffix) names the same secret as the full one.
    [`${ARN_PREFIX}prod/regcred`, `${ARN_PREFIX}prod/regcred-AbC123`, true],
    [`${ARN_PREFIX}prod/regcred-AbC123`, `${ARN_PREFIX}prod/regcred`, true],
    ['prod/regcred', `arn:aws:secretsmanager:eu-west-1:999999999999:secret:prod/regcred-AbC123`, true],
    [
      `${ARN_PREFIX}prod/regcred`,
      `arn:aws:secretsmanager:eu-west-1:999999999999:secret:prod/regcred-AbC123`,
      false,
    ],
    ['prod/regcred', 'prod/regcred2', false],
    ['prod/regcred', 'other/regcred', false],
    ['prod/regcred', `${ARN_PREFIX}prod/regcred-extra-AbC123`, false],
    ['prod', `${ARN_PREFIX}prod-AbC123-XyZ789`, false],
    // A name that only looks like an ARN's suffix is not stripped when it is a plain name.
    ['prod/regcred-AbC123', 'prod/regcred', false],
  ];
  for (const [source, event, expected] of cases) {
    it(`${expected ? 'matches' : 'does not match'} source ${source} with event id ${event}`, () => {
      assert.equal(sameSecret(source, event), expected);
    });
  }
});
