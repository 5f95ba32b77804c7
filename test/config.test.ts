import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type Config,
  loadConfig,
  parseConfig,
  parseConfigText,
  resolveMappingsForCluster,
} from '../lib/config.ts';
import { ConfigError } from '../lib/errors.ts';

const examples = path.join(import.meta.dirname, '..', 'examples');

/** A minimal valid mapping; spread and override fields to break one thing at a time. */
const mapping = (more: Record<string, unknown> = {}) => ({
  secretName: 'regcred',
  source: { secretsManager: { secretId: 'registry/team-a' } },
  ...more,
});
const withMappings = (...mappings: unknown[]) => ({ mappings });
const withSelector = (selector: unknown) => withMappings(mapping({ namespaces: { selector } }));

function configErrorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    assert.equal(error.code, 'CONFIG_INVALID');
    return error.message;
  }
  assert.fail('expected a ConfigError');
}

describe('parseConfig applies defaults', () => {
  const config = parseConfig(withMappings(mapping()), 'test.yaml');

  it('targets the current kube context when no clusters are given', () => {
    assert.deepEqual(config.clusters, [{ name: 'current', kube: {} }]);
  });

  it('fills every mapping default', () => {
    assert.deepEqual(config.mappings[0], {
      name: 'regcred',
      secretName: 'regcred',
      source: { secretsManager: { secretId: 'registry/team-a', versionStage: 'AWSCURRENT' } },
      namespaces: { include: [], exclude: [], excludeSystem: true },
      serviceAccounts: ['default'],
      onConflict: 'skip',
      prune: true,
    });
  });

  it('fills settings and retiredSecretNames', () => {
    assert.deepEqual(config.settings, {
      concurrency: 8,
      maxRetries: 5,
      clusterConcurrency: 4,
      pageSize: 0,
    });
    assert.deepEqual(config.retiredSecretNames, []);
  });

  it('does not add AWSCURRENT when a versionId is pinned', () => {
    const versionId = 'a1b2c3d4-5678-90ab-cdef-EXAMPLE11111';
    const pinned = parseConfig(
      withMappings(mapping({ source: { secretsManager: { secretId: 's', versionId } } })),
      'test.yaml',
    );
    assert.deepEqual(pinned.mappings[0]!.source, { secretsManager: { secretId: 's', versionId } });
  });

  it('defaults a kubernetes source key and an EKS session name', () => {
    const c = parseConfig(
      {
        clusters: [{ name: 'prod', eks: { name: 'prod', region: 'eu-west-1' } }],
        mappings: [mapping({ source: { kubernetes: { namespace: 'kube-system', name: 'regcred' } } })],
      },
      'test.yaml',
    );
    assert.deepEqual(c.mappings[0]!.source, {
      kubernetes: { namespace: 'kube-system', name: 'regcred', key: '.dockerconfigjson' },
    });
    assert.deepEqual(c.clusters[0], {
      name: 'prod',
      eks: { name: 'prod', region: 'eu-west-1', sessionName: 'imagepullsecret-patcher' },
    });
  });

  it('returns a deeply frozen object', () => {
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.mappings[0]!.namespaces.include));
    assert.throws(() => {
      (config.settings as { concurrency: number }).concurrency = 1;
    }, TypeError);
  });
});

describe('parseConfig accepts', () => {
  it('two mappings sharing a secretName under different names', () => {
    const c = parseConfig(
      withMappings(
        mapping({ name: 'team-a', namespaces: { include: ['team-a*'] } }),
        mapping({ name: 'team-b', namespaces: { selector: { matchLabels: { team: 'b' } } } }),
      ),
      'test.yaml',
    );
    assert.deepEqual(
      c.mappings.map((m) => [m.name, m.secretName]),
      [
        ['team-a', 'regcred'],
        ['team-b', 'regcred'],
      ],
    );
  });

  it('every label selector operator with valid values', () => {
    const c = parseConfig(
      withSelector({
        matchLabels: { 'app.kubernetes.io/part-of': 'shop', empty: '' },
        matchExpressions: [
          { key: 'team', operator: 'In', values: ['a', 'b'] },
          { key: 'team', operator: 'NotIn', values: ['c'] },
          { key: 'example.com/tier', operator: 'Exists' },
          { key: 'legacy', operator: 'DoesNotExist', values: [] },
        ],
      }),
      'test.yaml',
    );
    assert.equal(c.mappings[0]!.namespaces.selector?.matchExpressions.length, 4);
  });

  it('globs whose shortest match is as long as a name may be', () => {
    const include = [`${'a'.repeat(62)}?`, `*${'[a-z]'.repeat(63)}*`];
    const serviceAccounts = [`ci-${'?'.repeat(250)}*`];
    const c = parseConfig(withMappings(mapping({ namespaces: { include }, serviceAccounts })), 'test.yaml');
    assert.deepEqual(c.mappings[0]!.namespaces.include, include);
    assert.deepEqual(c.mappings[0]!.serviceAccounts, serviceAccounts);
  });

  it('service accounts as names, globs, all or none', () => {
    for (const serviceAccounts of [['default', 'builder'], ['ci-*'], ['*'], []]) {
      const c = parseConfig(withMappings(mapping({ serviceAccounts })), 'test.yaml');
      assert.deepEqual(c.mappings[0]!.serviceAccounts, serviceAccounts);
    }
  });
});

/** [description, config, the exact field path, a fragment of the message] */
const malformed: readonly [string, unknown, string, string][] = [
  ['a config that is not an object', 'mappings', '', 'expected object'],
  ['no mappings', {}, 'mappings', 'required'],
  ['an empty mapping list', withMappings(), 'mappings', 'at least one mapping'],
  ['an unknown top-level key', { ...withMappings(mapping()), mapping: [] }, 'mapping', 'unknown key'],
  [
    'an unknown mapping key',
    withMappings(mapping({ secretname: 'x' })),
    'mappings[0].secretname',
    'unknown key',
  ],
  [
    'an unknown key in namespaces',
    withMappings(mapping({ namespaces: { includes: ['a'] } })),
    'mappings[0].namespaces.includes',
    'unknown key (expected one of: include, exclude, excludeSystem, selector)',
  ],
  [
    'an unknown key in a secretsManager source',
    withMappings(mapping({ source: { secretsManager: { secretId: 's', stage: 'AWSCURRENT' } } })),
    'mappings[0].source.secretsManager.stage',
    'unknown key',
  ],
  [
    'an unknown settings key',
    { ...withMappings(mapping()), settings: { retries: 3 } },
    'settings.retries',
    'unknown key',
  ],
  [
    'an unknown key in an EKS cluster',
    {
      clusters: [{ name: 'a', eks: { name: 'a', region: 'eu-west-1', role: 'x' } }],
      ...withMappings(mapping()),
    },
    'clusters[0].eks.role',
    'unknown key',
  ],
  ['a missing secretName', withMappings({ source: { file: 'x' } }), 'mappings[0].secretName', 'required'],
  ['a missing source', withMappings({ secretName: 'regcred' }), 'mappings[0].source', 'required'],
  [
    'an empty source',
    withMappings(mapping({ source: {} })),
    'mappings[0].source',
    'exactly one of secretsManager, kubernetes, file',
  ],
  [
    'a source with two kinds',
    withMappings(mapping({ source: { file: 'x', secretsManager: { secretId: 's' } } })),
    'mappings[0].source',
    'got secretsManager and file',
  ],
  [
    'an empty file source',
    withMappings(mapping({ source: { file: '' } })),
    'mappings[0].source.file',
    'must not be empty',
  ],
  [
    'an empty secretId',
    withMappings(mapping({ source: { secretsManager: { secretId: '' } } })),
    'mappings[0].source.secretsManager.secretId',
    'must not be empty',
  ],
  [
    'a kubernetes source with an invalid namespace',
    withMappings(mapping({ source: { kubernetes: { namespace: 'Kube_System', name: 'regcred' } } })),
    'mappings[0].source.kubernetes.namespace',
    'not a valid DNS-1123 label',
  ],
  [
    'an uppercase secretName',
    withMappings(mapping({ secretName: 'RegCred' })),
    'mappings[0].secretName',
    'DNS-1123 subdomain',
  ],
  [
    'an empty secretName',
    withMappings(mapping({ secretName: '' })),
    'mappings[0].secretName',
    'DNS-1123 subdomain',
  ],
  [
    'a secretName over 253 characters',
    withMappings(mapping({ secretName: 'a'.repeat(254) })),
    'mappings[0].secretName',
    'DNS-1123 subdomain',
  ],
  [
    'an empty mapping name',
    withMappings(mapping({ name: '' })),
    'mappings[0].name',
    'not a valid mapping name',
  ],
  [
    'a numeric secretName',
    withMappings(mapping({ secretName: 42 })),
    'mappings[0].secretName',
    'expected string',
  ],
  [
    'duplicate mapping names',
    withMappings(mapping({ name: 'team-a' }), mapping({ name: 'team-b' }), mapping({ name: 'team-a' })),
    'mappings[2].name',
    'duplicate mapping name "team-a" (also mappings[0])',
  ],
  [
    'two unnamed mappings with one secretName',
    withMappings(mapping(), mapping()),
    'mappings[1].name',
    'name defaults to secretName',
  ],
  [
    'an unknown selector operator',
    withMappings(
      mapping({ name: 'one' }),
      mapping({
        name: 'two',
        namespaces: { selector: { matchExpressions: [{ key: 'team', operator: 'Inn', values: ['a'] }] } },
      }),
    ),
    'mappings[1].namespaces.selector.matchExpressions[0].operator',
    'unknown operator "Inn" (expected In, NotIn, Exists, DoesNotExist)',
  ],
  [
    'In without values',
    withSelector({ matchExpressions: [{ key: 'team', operator: 'In' }] }),
    'mappings[0].namespaces.selector.matchExpressions[0].values',
    'must not be empty for operator In',
  ],
  [
    'NotIn with an empty value list',
    withSelector({ matchExpressions: [{ key: 'team', operator: 'NotIn', values: [] }] }),
    'mappings[0].namespaces.selector.matchExpressions[0].values',
    'must not be empty for operator NotIn',
  ],
  [
    'Exists with values',
    withSelector({ matchExpressions: [{ key: 'team', operator: 'Exists', values: ['a'] }] }),
    'mappings[0].namespaces.selector.matchExpressions[0].values',
    'must be empty for operator Exists',
  ],
  [
    'an invalid label key in an expression',
    withSelector({ matchExpressions: [{ key: 'team name', operator: 'Exists' }] }),
    'mappings[0].namespaces.selector.matchExpressions[0].key',
    'not a valid label key',
  ],
  [
    'an invalid label value in an expression',
    withSelector({ matchExpressions: [{ key: 'team', operator: 'In', values: ['-a'] }] }),
    'mappings[0].namespaces.selector.matchExpressions[0].values[0]',
    'not a valid label value',
  ],
  [
    'an invalid label key prefix in matchLabels',
    withSelector({ matchLabels: { 'Example.com/team': 'a' } }),
    'mappings[0].namespaces.selector.matchLabels["Example.com/team"]',
    'not a valid label key',
  ],
  [
    'a label value over 63 characters',
    withSelector({ matchLabels: { team: 'a'.repeat(64) } }),
    'mappings[0].namespaces.selector.matchLabels.team',
    'not a valid label value',
  ],
  [
    'an unknown key in a selector',
    withSelector({ matchLabel: { team: 'a' } }),
    'mappings[0].namespaces.selector.matchLabel',
    'unknown key',
  ],
  [
    'an unbalanced glob in include',
    withMappings(mapping({ namespaces: { include: ['team-a', 'team-[ab'] } })),
    'mappings[0].namespaces.include[1]',
    'invalid glob "team-[ab": unbalanced "["',
  ],
  [
    'an uppercase glob in exclude',
    withMappings(mapping({ namespaces: { exclude: ['Team-*'] } })),
    'mappings[0].namespaces.exclude[0]',
    'cannot appear in a Kubernetes name',
  ],
  [
    'an invalid namespace name in include',
    withMappings(mapping({ namespaces: { include: ['team.a'] } })),
    'mappings[0].namespaces.include[0]',
    'not a valid DNS-1123 label',
  ],
  [
    'an include glob longer than any namespace name',
    withMappings(mapping({ namespaces: { include: [`team-${'a'.repeat(60)}*`] } })),
    'mappings[0].namespaces.include[0]',
    'never matches: it needs at least 65 characters and a name has at most 63',
  ],
  [
    'a service account glob longer than any service account name',
    withMappings(mapping({ serviceAccounts: [`ci-${'[a-z]'.repeat(251)}`] })),
    'mappings[0].serviceAccounts[0]',
    'never matches: it needs at least 254 characters and a name has at most 253',
  ],
  [
    'an invalid service account glob',
    withMappings(mapping({ serviceAccounts: ['ci-[z-a]'] })),
    'mappings[0].serviceAccounts[0]',
    'reversed range',
  ],
  [
    'a non-boolean excludeSystem',
    withMappings(mapping({ namespaces: { excludeSystem: 'false' } })),
    'mappings[0].namespaces.excludeSystem',
    'expected boolean',
  ],
  [
    'an unknown onConflict',
    withMappings(mapping({ onConflict: 'overwrite' })),
    'mappings[0].onConflict',
    '"skip"|"adopt"',
  ],
  [
    'a cluster with both kube and eks',
    {
      clusters: [{ name: 'a', kube: {}, eks: { name: 'a', region: 'eu-west-1' } }],
      ...withMappings(mapping()),
    },
    'clusters[0]',
    'expected exactly one of kube, eks, got kube and eks',
  ],
  [
    'a cluster with neither kube nor eks',
    { clusters: [{ name: 'a' }], ...withMappings(mapping()) },
    'clusters[0]',
    'expected exactly one of kube, eks',
  ],
  [
    'duplicate cluster names',
    {
      clusters: [
        { name: 'prod', kube: {} },
        { name: 'prod', eks: { name: 'p', region: 'eu-west-1' } },
      ],
      ...withMappings(mapping()),
    },
    'clusters[1].name',
    'duplicate cluster name "prod" (also clusters[0])',
  ],
  [
    'an empty cluster name',
    { clusters: [{ name: '', kube: {} }], ...withMappings(mapping()) },
    'clusters[0].name',
    'is not valid',
  ],
  [
    'an invalid EKS region',
    { clusters: [{ name: 'a', eks: { name: 'a', region: 'Ireland' } }], ...withMappings(mapping()) },
    'clusters[0].eks.region',
    'AWS region',
  ],
  [
    'an invalid role ARN',
    {
      clusters: [{ name: 'a', eks: { name: 'a', region: 'eu-west-1', roleArn: 'patcher' } }],
      ...withMappings(mapping()),
    },
    'clusters[0].eks.roleArn',
    'IAM role ARN',
  ],
  [
    'a mapping naming an unknown cluster',
    { clusters: [{ name: 'prod', kube: {} }], ...withMappings(mapping({ clusters: ['prod', 'stagin'] })) },
    'mappings[0].clusters[1]',
    'unknown cluster "stagin" (defined: prod)',
  ],
  [
    'a mapping with an empty cluster list',
    withMappings(mapping({ clusters: [] })),
    'mappings[0].clusters',
    'must not be empty',
  ],
  [
    'a retired secret name still in use',
    {
      ...withMappings(mapping({ name: 'a' }), mapping({ name: 'b', secretName: 'other' })),
      retiredSecretNames: ['other'],
    },
    'retiredSecretNames[0]',
    'the secretName of mappings[1]',
  ],
  [
    'a concurrency of 0',
    { ...withMappings(mapping()), settings: { concurrency: 0 } },
    'settings.concurrency',
    '>=1',
  ],
  [
    'a fractional page size',
    { ...withMappings(mapping()), settings: { pageSize: 1.5 } },
    'settings.pageSize',
    'expected int',
  ],
  [
    'too many retries',
    { ...withMappings(mapping()), settings: { maxRetries: 21 } },
    'settings.maxRetries',
    '<=20',
  ],
];

describe('parseConfig rejects', () => {
  for (const [description, value, field, fragment] of malformed) {
    it(`${description}, naming ${field || 'the root'}`, () => {
      const message = configErrorOf(() => parseConfig(value, 'cfg.yaml'));
      const line = message.split('\n').find((l) => l.startsWith(`cfg.yaml: ${field ? `${field}: ` : ''}`));
      assert.ok(line, `no line for ${field} in:\n${message}`);
      assert.ok(line.includes(fragment), `expected "${fragment}" in:\n${message}`);
    });
  }

  it('reports every problem, one per line', () => {
    const message = configErrorOf(() =>
      parseConfig(withMappings(mapping({ secretName: 'Bad', onConflict: 'x', extra: 1 })), 'cfg.yaml'),
    );
    const lines = message.split('\n');
    assert.equal(lines.length, 3, message);
    assert.ok(
      lines.every((l) => l.startsWith('cfg.yaml: mappings[0].')),
      message,
    );
  });
});

describe('parseConfigText', () => {
  it('reads JSON as well as YAML', () => {
    const c = parseConfigText(JSON.stringify(withMappings(mapping())), 'cfg.json');
    assert.equal(c.mappings[0]!.name, 'regcred');
  });

  it('names the line and column of a YAML syntax error', () => {
    const text = 'mappings:\n  - secretName: regcred\n   source: {file: x}\n';
    const message = configErrorOf(() => parseConfigText(text, 'cfg.yaml'));
    assert.match(message, /^cfg\.yaml:3:\d+: /);
  });

  it('names the line of a JSON syntax error', () => {
    const message = configErrorOf(() => parseConfigText('{\n"mappings": [\n}', 'cfg.json'));
    assert.match(message, /^cfg\.json:3:\d+: /);
  });

  it('rejects a duplicated key in JSON, which JSON.parse would silently drop', () => {
    const message = configErrorOf(() => parseConfigText('{"mappings": [], "mappings": []}', 'cfg.json'));
    assert.match(message, /^cfg\.json:1:\d+: .*unique/);
  });

  it('rejects a duplicated key instead of keeping the last', () => {
    const text = 'mappings: []\nmappings:\n  - secretName: regcred\n    source: {file: x}\n';
    assert.match(
      configErrorOf(() => parseConfigText(text, 'cfg.yaml')),
      /^cfg\.yaml:2:1: .*unique/,
    );
  });

  it('rejects an unresolved alias', () => {
    assert.match(
      configErrorOf(() => parseConfigText('mappings: *nope\n', 'cfg.yaml')),
      /^cfg\.yaml: /,
    );
  });

  it('rejects an empty document', () => {
    assert.match(
      configErrorOf(() => parseConfigText('# nothing\n', 'cfg.yaml')),
      /empty/,
    );
  });

  it('keeps YAML 1.2 strings such as "no" as strings, so they fail type checks', () => {
    const text = 'mappings:\n  - secretName: regcred\n    source: {file: x}\n    prune: no\n';
    assert.match(
      configErrorOf(() => parseConfigText(text, 'cfg.yaml')),
      /mappings\[0\]\.prune: .*expected boolean/,
    );
  });
});

describe('loadConfig', () => {
  it('loads the single-credential example', async () => {
    const c = await loadConfig(path.join(examples, 'single-credential.yaml'));
    assert.deepEqual(c.clusters, [{ name: 'current', kube: {} }]);
    assert.equal(c.mappings.length, 1);
    assert.deepEqual(c.mappings[0]!.source, {
      kubernetes: { namespace: 'kube-system', name: 'regcred', key: '.dockerconfigjson' },
    });
    assert.deepEqual(c.mappings[0]!.serviceAccounts, ['default']);
  });

  it('loads the multi-team example', async () => {
    const c = await loadConfig(path.join(examples, 'multi-team.yaml'));
    assert.deepEqual(
      c.clusters.map((cluster) => cluster.name),
      ['prod', 'staging'],
    );
    assert.ok(c.clusters.every((cluster) => 'eks' in cluster));
    assert.deepEqual(
      resolveMappingsForCluster(c, 'staging').map((m) => m.name),
      ['team-a'],
    );
    assert.deepEqual(
      resolveMappingsForCluster(c, 'prod').map((m) => m.name),
      ['team-a', 'team-b'],
    );
  });

  it('resolves relative file sources and kubeconfigs against the config file directory', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ipsp-config-'));
    try {
      const file = path.join(dir, 'config.yaml');
      await writeFile(
        file,
        [
          'clusters:',
          '  - name: local',
          '    kube: {kubeconfig: kube/config, context: kind-kind}',
          'mappings:',
          '  - secretName: regcred',
          '    source: {file: creds/docker.json}',
          '  - secretName: other',
          '    source: {file: /abs/docker.json}',
        ].join('\n'),
      );
      const c = await loadConfig(file);
      assert.deepEqual(c.mappings[0]!.source, { file: path.join(dir, 'creds/docker.json') });
      assert.deepEqual(c.mappings[1]!.source, { file: '/abs/docker.json' });
      assert.deepEqual(c.clusters[0], {
        name: 'local',
        kube: { kubeconfig: path.join(dir, 'kube/config'), context: 'kind-kind' },
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('leaves relative paths alone when parsing a value', () => {
    const c = parseConfig(withMappings(mapping({ source: { file: 'creds.json' } })), 'inline');
    assert.deepEqual(c.mappings[0]!.source, { file: 'creds.json' });
  });

  it('reports a missing file as a ConfigError naming it', async () => {
    await assert.rejects(loadConfig('/nonexistent/config.yaml'), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /\/nonexistent\/config\.yaml.*ENOENT/);
      return true;
    });
  });
});

describe('resolveMappingsForCluster', () => {
  const config: Config = parseConfig(
    {
      clusters: [
        { name: 'a', kube: {} },
        { name: 'b', kube: { context: 'b' } },
      ],
      mappings: [mapping({ name: 'everywhere' }), mapping({ name: 'only-b', clusters: ['b'] })],
    },
    'test.yaml',
  );

  it('keeps mappings without clusters and those naming the cluster', () => {
    assert.deepEqual(
      resolveMappingsForCluster(config, 'a').map((m) => m.name),
      ['everywhere'],
    );
    assert.deepEqual(
      resolveMappingsForCluster(config, 'b').map((m) => m.name),
      ['everywhere', 'only-b'],
    );
  });

  it('rejects a cluster the configuration does not define', () => {
    assert.throws(() => resolveMappingsForCluster(config, 'c'), /unknown cluster "c" \(defined: a, b\)/);
  });
});

describe('parseConfig properties', () => {
  it('never throws anything but ConfigError on arbitrary JSON', () => {
    const nearMiss = fc.oneof(
      fc.jsonValue(),
      fc.record({
        mappings: fc.array(
          fc.dictionary(fc.constantFrom('secretName', 'source', 'namespaces', 'x'), fc.jsonValue()),
        ),
      }),
      fc.record({ clusters: fc.jsonValue(), mappings: fc.constant([mapping()]) }),
    );
    fc.assert(
      fc.property(nearMiss, (value) => {
        try {
          parseConfig(value, 'fuzz');
        } catch (error) {
          assert.ok(error instanceof ConfigError, String(error));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never throws anything but ConfigError on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        try {
          parseConfigText(text, 'fuzz');
        } catch (error) {
          assert.ok(error instanceof ConfigError, String(error));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('accepts every valid secretName and rejects every invalid one', () => {
    const label = fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?$/);
    const subdomain = fc.array(label, { minLength: 1, maxLength: 4 }).map((parts) => parts.join('.'));
    fc.assert(
      fc.property(subdomain, (secretName) => {
        assert.equal(
          parseConfig(withMappings(mapping({ secretName })), 'p').mappings[0]!.secretName,
          secretName,
        );
      }),
    );
    fc.assert(
      fc.property(subdomain, fc.constantFrom('A', '_', ' ', '..', '-'), (name, bad) => {
        const secretName = `${name}${bad}`;
        configErrorOf(() => parseConfig(withMappings(mapping({ secretName })), 'p'));
      }),
    );
  });
});
