/**
 * Malformed configuration and credential sources against a real API server:
 * each is rejected with a message naming the exact field (or the source and
 * the offending key), never the credential, and the run writes nothing. The
 * engine runs as the restricted identity, through the fixture (configuration
 * values), the CLI's loader (configuration files, where YAML is parsed) and
 * the CLI itself; after every case the cluster is exactly as it was.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CoreV1Api } from '@kubernetes/client-node';
import { main } from '../../cli/main.ts';
import { type ConfigInput, loadConfig } from '../../lib/config.ts';
import { DOCKER_CONFIG_LIMITS } from '../../lib/dockerconfig.ts';
import { ConfigError } from '../../lib/errors.ts';
import type { ClusterReport } from '../../lib/report.ts';
import { type Rig, startRig } from '../rig/cluster.ts';
import {
  adminApi,
  applyRbac,
  createNamespaces,
  credentialFile,
  credentialFileWith,
  type FakeRegistryCredential,
  fakeCredential,
  type Patcher,
  patcher,
  tempDir,
  writes,
} from './fixture.ts';

const TARGETS = ['mal-a', 'mal-b'];
const SOURCE_NS = 'malsrc';
const SECRET = 'mal-cred';
const REGISTRY = 'registry.example.com';
const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/** A mapping onto the test namespaces; spread and override one field to break it. */
const mapping = (source: ConfigInput['mappings'][number]['source'], more: Record<string, unknown> = {}) => ({
  secretName: SECRET,
  source,
  namespaces: { include: ['mal-*'] },
  ...more,
});

/** [what is wrong, configuration, the exact field path, a fragment of the problem] */
type ConfigCase = readonly [string, (file: string) => unknown, string, string];

/** Configurations the schema must reject; the fixture adds `clusters` (the test cluster, as the restricted identity). */
const CONFIG_CASES: readonly ConfigCase[] = [
  [
    'an unknown key in a mapping',
    (f) => ({ mappings: [mapping({ file: f }, { secretname: 'x' })] }),
    'mappings[0].secretname',
    'unknown key (expected one of: name, secretName, source',
  ],
  [
    'an unknown top-level key',
    (f) => ({ mappings: [mapping({ file: f })], setting: { concurrency: 2 } }),
    'setting',
    'unknown key',
  ],
  [
    'an unknown key in namespaces',
    (f) => ({ mappings: [mapping({ file: f }, { namespaces: { includes: ['mal-*'] } })] }),
    'mappings[0].namespaces.includes',
    'unknown key (expected one of: include, exclude, excludeSystem, selector)',
  ],
  [
    'an unknown selector operator',
    (f) => ({
      mappings: [
        mapping(
          { file: f },
          {
            namespaces: {
              selector: { matchExpressions: [{ key: 'team', operator: 'Inn', values: ['a'] }] },
            },
          },
        ),
      ],
    }),
    'mappings[0].namespaces.selector.matchExpressions[0].operator',
    'unknown operator "Inn" (expected In, NotIn, Exists, DoesNotExist)',
  ],
  [
    'a lower-case selector operator',
    (f) => ({
      mappings: [
        mapping(
          { file: f },
          { namespaces: { selector: { matchExpressions: [{ key: 'team', operator: 'exists' }] } } },
        ),
      ],
    }),
    'mappings[0].namespaces.selector.matchExpressions[0].operator',
    'unknown operator "exists"',
  ],
  [
    'In without values',
    (f) => ({
      mappings: [
        mapping(
          { file: f },
          { namespaces: { selector: { matchExpressions: [{ key: 'team', operator: 'In' }] } } },
        ),
      ],
    }),
    'mappings[0].namespaces.selector.matchExpressions[0].values',
    'must not be empty for operator In',
  ],
  [
    'DoesNotExist with values',
    (f) => ({
      mappings: [
        mapping(
          { file: f },
          {
            namespaces: {
              selector: { matchExpressions: [{ key: 'team', operator: 'DoesNotExist', values: ['a'] }] },
            },
          },
        ),
      ],
    }),
    'mappings[0].namespaces.selector.matchExpressions[0].values',
    'must be empty for operator DoesNotExist',
  ],
  [
    'an invalid label key in matchLabels',
    (f) => ({
      mappings: [mapping({ file: f }, { namespaces: { selector: { matchLabels: { 'team name': 'a' } } } })],
    }),
    'mappings[0].namespaces.selector.matchLabels["team name"]',
    'not a valid label key',
  ],
  [
    'an unbalanced glob in include',
    (f) => ({ mappings: [mapping({ file: f }, { namespaces: { include: ['mal-a', 'mal-[ab'] } })] }),
    'mappings[0].namespaces.include[1]',
    'invalid glob "mal-[ab": unbalanced "["',
  ],
  [
    'an upper-case glob in exclude',
    (f) => ({ mappings: [mapping({ file: f }, { namespaces: { include: ['mal-*'], exclude: ['Mal-*'] } })] }),
    'mappings[0].namespaces.exclude[0]',
    'character "M" cannot appear in a Kubernetes name',
  ],
  [
    'a reversed range in a service account glob',
    (f) => ({ mappings: [mapping({ file: f }, { serviceAccounts: ['default', 'ci-[z-a]'] })] }),
    'mappings[0].serviceAccounts[1]',
    'reversed range "z-a"',
  ],
  [
    'an empty secretName',
    (f) => ({ mappings: [mapping({ file: f }, { secretName: '' })] }),
    'mappings[0].secretName',
    '"" is not a valid DNS-1123 subdomain',
  ],
  [
    'an empty namespace pattern',
    (f) => ({ mappings: [mapping({ file: f }, { namespaces: { include: [''] } })] }),
    'mappings[0].namespaces.include[0]',
    '"" is not a valid DNS-1123 label',
  ],
  [
    'an empty service account name',
    (f) => ({ mappings: [mapping({ file: f }, { serviceAccounts: [''] })] }),
    'mappings[0].serviceAccounts[0]',
    '"" is not a valid DNS-1123 subdomain',
  ],
  [
    'a secretName that is not a DNS subdomain',
    (f) => ({ mappings: [mapping({ file: f }, { secretName: 'Mal_Cred' })] }),
    'mappings[0].secretName',
    '"Mal_Cred" is not a valid DNS-1123 subdomain',
  ],
  [
    'a secretName longer than 253 characters',
    (f) => ({ mappings: [mapping({ file: f }, { secretName: 'a'.repeat(254) })] }),
    'mappings[0].secretName',
    'at most 253 characters',
  ],
  [
    'an include glob longer than any namespace name',
    (f) => ({ mappings: [mapping({ file: f }, { namespaces: { include: [`mal-${'a'.repeat(60)}*`] } })] }),
    'mappings[0].namespaces.include[0]',
    'never matches: it needs at least 64 characters and a name has at most 63',
  ],
  [
    'the same secretName twice without names',
    (f) => ({ mappings: [mapping({ file: f }), mapping({ file: f })] }),
    'mappings[1].name',
    `duplicate mapping name "${SECRET}" (also mappings[0]); name defaults to secretName`,
  ],
  [
    'a negative concurrency',
    (f) => ({ mappings: [mapping({ file: f })], settings: { concurrency: -1 } }),
    'settings.concurrency',
    'expected number to be >=1',
  ],
  [
    'a zero clusterConcurrency',
    (f) => ({ mappings: [mapping({ file: f })], settings: { clusterConcurrency: 0 } }),
    'settings.clusterConcurrency',
    'expected number to be >=1',
  ],
  [
    'a negative pageSize',
    (f) => ({ mappings: [mapping({ file: f })], settings: { pageSize: -1 } }),
    'settings.pageSize',
    'expected number to be >=0',
  ],
  [
    'a fractional maxRetries',
    (f) => ({ mappings: [mapping({ file: f })], settings: { maxRetries: 1.5 } }),
    'settings.maxRetries',
    'expected int',
  ],
  [
    'a concurrency written as a string',
    (f) => ({ mappings: [mapping({ file: f })], settings: { concurrency: '8' } }),
    'settings.concurrency',
    'expected number, received string',
  ],
  [
    'prune as a string',
    (f) => ({ mappings: [mapping({ file: f }, { prune: 'yes' })] }),
    'mappings[0].prune',
    'expected boolean, received string',
  ],
  [
    'serviceAccounts as a string instead of a list',
    (f) => ({ mappings: [mapping({ file: f }, { serviceAccounts: 'default' })] }),
    'mappings[0].serviceAccounts',
    'expected array, received string',
  ],
  [
    'mappings as an object',
    (f) => ({ mappings: { [SECRET]: mapping({ file: f }) } }),
    'mappings',
    'expected array, received object',
  ],
  ['an empty mapping list', () => ({ mappings: [] }), 'mappings', 'must list at least one mapping'],
  [
    'a source of two kinds',
    (f) => ({ mappings: [mapping({ file: f, kubernetes: { namespace: SOURCE_NS, name: 'x' } })] }),
    'mappings[0].source',
    'expected exactly one of secretsManager, kubernetes, file, got kubernetes and file',
  ],
  [
    'an in-cluster source with an invalid data key',
    () => ({ mappings: [mapping({ kubernetes: { namespace: SOURCE_NS, name: 'good', key: 'a/b' } })] }),
    'mappings[0].source.kubernetes.key',
    '"a/b" is not valid (expected a secret data key',
  ],
  [
    'an unknown onConflict',
    (f) => ({ mappings: [mapping({ file: f }, { onConflict: 'overwrite' })] }),
    'mappings[0].onConflict',
    'expected one of "skip"|"adopt"',
  ],
  [
    'a retired secret name that a mapping still uses',
    (f) => ({ mappings: [mapping({ file: f })], retiredSecretNames: [SECRET] }),
    'retiredSecretNames[0]',
    `"${SECRET}" is the secretName of mappings[0]`,
  ],
  [
    'a mapping naming an unknown cluster',
    (f) => ({ mappings: [mapping({ file: f }, { clusters: ['nope'] })] }),
    'mappings[0].clusters[0]',
    'unknown cluster "nope"',
  ],
];

/** Configuration files the CLI must refuse (exit 2), naming `<file>: <field>` or `<file>:<line>:<column>`. */
const FILE_CASES: readonly [string, (source: string) => string, string, string][] = [
  [
    'a YAML indentation error',
    (s) => `mappings:\n  - secretName: ${SECRET}\n   source: {file: ${s}}\n`,
    ':3:1',
    'Sequence item without - indicator',
  ],
  [
    'a YAML tab indentation',
    (s) => `mappings:\n\t- secretName: ${SECRET}\n\t  source: {file: ${s}}\n`,
    ':2:1',
    'Tabs are not allowed',
  ],
  [
    'an unclosed YAML flow sequence',
    (s) => `mappings: [{secretName: ${SECRET}, source: {file: ${s}}}\n`,
    ':2:1',
    'end with a ]',
  ],
  [
    'a duplicated YAML key',
    (s) => `mappings:\n  - secretName: ${SECRET}\n    secretName: other\n    source: {file: ${s}}\n`,
    ':3:5',
    'unique',
  ],
  [
    'a JSON syntax error',
    (s) => `{"mappings": [{"secretName": "${SECRET}", "source": {"file": "${s}"}]}`,
    ':1:',
    '',
  ],
  ['an empty file', () => '# nothing here\n', '', 'the configuration is empty'],
  [
    'a cluster with neither kube nor eks',
    (s) => `clusters:\n  - name: a\nmappings:\n  - secretName: ${SECRET}\n    source: {file: ${s}}\n`,
    ': clusters[0]',
    'expected exactly one of kube, eks',
  ],
  [
    'a cluster with both kube and eks',
    (s) =>
      `clusters:\n  - {name: a, kube: {}, eks: {name: a, region: eu-west-1}}\nmappings:\n  - secretName: ${SECRET}\n    source: {file: ${s}}\n`,
    ': clusters[0]',
    'got kube and eks',
  ],
  [
    'an EKS cluster in an invalid region',
    (s) =>
      `clusters:\n  - {name: a, eks: {name: a, region: Ireland}}\nmappings:\n  - secretName: ${SECRET}\n    source: {file: ${s}}\n`,
    ': clusters[0].eks.region',
    'an AWS region',
  ],
  [
    'an EKS cluster with an invalid role ARN',
    (s) =>
      `clusters:\n  - {name: a, eks: {name: a, region: eu-west-1, roleArn: patcher}}\nmappings:\n  - secretName: ${SECRET}\n    source: {file: ${s}}\n`,
    ': clusters[0].eks.roleArn',
    'an IAM role ARN',
  ],
  [
    'two clusters with one name',
    (s) =>
      `clusters:\n  - {name: a, kube: {}}\n  - {name: a, kube: {context: b}}\nmappings:\n  - secretName: ${SECRET}\n    source: {file: ${s}}\n`,
    ': clusters[1].name',
    'duplicate cluster name "a" (also clusters[0])',
  ],
  [
    'an empty kubeconfig path',
    (s) =>
      `clusters:\n  - {name: a, kube: {kubeconfig: ""}}\nmappings:\n  - secretName: ${SECRET}\n    source: {file: ${s}}\n`,
    ': clusters[0].kube.kubeconfig',
    'must not be empty',
  ],
  [
    'an empty cluster list',
    (s) => `clusters: []\nmappings:\n  - secretName: ${SECRET}\n    source: {file: ${s}}\n`,
    ': clusters',
    'expected array to have >=1 items',
  ],
  [
    'an unknown key in an EKS cluster',
    (s) =>
      `clusters:\n  - {name: a, eks: {name: a, region: eu-west-1, role: x}}\nmappings:\n  - secretName: ${SECRET}\n    source: {file: ${s}}\n`,
    ': clusters[0].eks.role',
    'unknown key',
  ],
];

/** [what is wrong, source content from a fake credential, the field in the message, a fragment of the problem] */
const SOURCE_CASES: readonly [string, (c: FakeRegistryCredential) => string, string, string][] = [
  [
    'a source that is not JSON',
    (c) => JSON.stringify({ registry: c.registry, username: c.username, password: c.password }).slice(0, -1),
    '',
    'not valid JSON',
  ],
  [
    'a docker config without auths (a typo)',
    (c) => JSON.stringify({ auth: { [c.registry]: { auth: c.auth } } }),
    '',
    'expected {"auths": {...}}, {registry, username, password} or a list of those',
  ],
  [
    'a docker CLI config with a credential helper instead of auths',
    () => JSON.stringify({ credsStore: 'desktop' }),
    '',
    'expected {"auths": {...}}',
  ],
  ['empty auths', () => JSON.stringify({ auths: {} }), 'auths', 'is empty: expected at least one registry'],
  [
    'a password pasted into auth (not base64)',
    (c) => JSON.stringify({ auths: { [c.registry]: { auth: c.password } } }),
    `auths["${REGISTRY}"].auth`,
    'not valid base64',
  ],
  [
    'auth with a stray character',
    (c) => JSON.stringify({ auths: { [c.registry]: { auth: `${c.auth}!` } } }),
    `auths["${REGISTRY}"].auth`,
    'not valid base64',
  ],
  [
    'auth without a colon',
    (c) => JSON.stringify({ auths: { [c.registry]: { auth: b64(`${c.username}${c.password}`) } } }),
    `auths["${REGISTRY}"].auth`,
    'does not decode to "username:password"',
  ],
  [
    'auth that disagrees with username and password',
    (c) =>
      JSON.stringify({
        auths: { [c.registry]: { username: c.username, password: c.password, auth: b64(`x:${c.password}`) } },
      }),
    `auths["${REGISTRY}"].auth`,
    'does not match "username" and "password"',
  ],
  [
    'a misspelt key in the registry form',
    (c) => JSON.stringify({ registry: c.registry, username: c.username, pasword: c.password }),
    '',
    'unknown key "pasword" (expected registry, username, password, email)',
  ],
  [
    'both shapes mixed',
    (c) => JSON.stringify({ auths: { [c.registry]: { auth: c.auth } }, password: c.password }),
    'password',
    'not allowed beside "auths"',
  ],
  [
    'a username with a colon',
    (c) => JSON.stringify({ registry: c.registry, username: `${c.username}:x`, password: c.password }),
    'username',
    'must not contain ":"',
  ],
  [
    'a registry listed twice',
    (c) =>
      JSON.stringify([
        { registry: c.registry, username: c.username, password: c.password },
        { registry: c.registry, username: 'other', password: c.password },
      ]),
    '[1].registry',
    `duplicate registry "${REGISTRY}" (also [0])`,
  ],
  [
    'a registry with whitespace',
    (c) => JSON.stringify({ registry: `${c.registry} `, username: c.username, password: c.password }),
    'registry',
    'must not contain whitespace',
  ],
  [
    'a password longer than 64 KiB',
    (c) =>
      JSON.stringify({
        registry: c.registry,
        username: c.username,
        password: c.password.padEnd(DOCKER_CONFIG_LIMITS.maxValueBytes + 1, 'x'),
      }),
    'password',
    'longer than 64 KiB',
  ],
  [
    'a source larger than 512 KiB',
    (c) =>
      JSON.stringify({ registry: c.registry, username: c.username, password: c.password }).padEnd(
        DOCKER_CONFIG_LIMITS.maxTotalBytes + 1,
        ' ',
      ),
    '',
    'larger than 512 KiB',
  ],
  [
    'a docker config larger than 512 KiB in total',
    (c) =>
      JSON.stringify(
        Array.from({ length: 6 }, (_, i) => ({
          registry: `r${i}.example.com`,
          username: c.username,
          password: `${c.password}${'x'.repeat(60_000)}`,
        })),
      ),
    '',
    'docker config is larger than 512 KiB',
  ],
];

describe('malformed configuration and sources: rejected, naming the field, with no write', () => {
  let rig: Rig;
  let core: CoreV1Api;
  let p: Patcher;
  let baseline: string;
  const dir = tempDir();
  /** A valid source: configuration errors must be reported before it is read. */
  let good: { path: string; password: string };
  /** The in-cluster source secrets' credentials, by secret name. */
  const inCluster = new Map<string, FakeRegistryCredential>();

  /** Every secret and service account in the test namespaces, and every copy of our secret anywhere. */
  async function clusterState(): Promise<string> {
    const state: Record<string, unknown> = {};
    for (const namespace of [...TARGETS, SOURCE_NS]) {
      const secrets = await core.listNamespacedSecret({ namespace });
      state[`${namespace} secrets`] = secrets.items.map((s) => [
        s.metadata?.name,
        s.metadata?.resourceVersion,
      ]);
      const accounts = await core.listNamespacedServiceAccount({ namespace });
      state[`${namespace} service accounts`] = accounts.items.map((sa) => [
        sa.metadata?.name,
        sa.metadata?.resourceVersion,
        sa.imagePullSecrets ?? [],
      ]);
    }
    const copies = await core.listSecretForAllNamespaces({ fieldSelector: `metadata.name=${SECRET}` });
    state.copies = copies.items.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`);
    return JSON.stringify(state, null, 1);
  }

  async function assertUnchanged(): Promise<void> {
    assert.equal(await clusterState(), baseline, 'the cluster changed');
  }

  /** Neither the message nor anything else the run returned holds the credential or its auth. */
  function assertNoCredential(text: string, ...credentials: { password: string; auth?: string }[]): void {
    for (const c of credentials) {
      assert.ok(!text.includes(c.password), 'the password is in the message');
      if (c.auth) assert.ok(!text.includes(c.auth), 'the base64 auth is in the message');
    }
  }

  /** The report of a run whose source is invalid: not converged, no write, one mapping error. */
  function sourceErrorOf(report: ClusterReport): string {
    assert.equal(report.converged, false);
    assert.equal(writes(report), 0, JSON.stringify(report.requests));
    assert.deepEqual(report.writes, []);
    const errors = report.mappings.flatMap((m) => m.errors.map((e) => e.reason));
    assert.equal(errors.length, 1, errors.join('\n'));
    assert.match(errors[0]!, /; nothing written for this mapping$/);
    return errors[0]!;
  }

  before(async () => {
    rig = await startRig({ clusters: 1 });
    core = adminApi(rig.clusters[0]!).core;
    p = patcher(rig.clusters[0]!);
    await createNamespaces(
      rig.clusters[0]!,
      [...TARGETS, SOURCE_NS].map((name) => ({ name })),
    );
    good = credentialFile(dir, 'mal-good');

    // In-cluster sources, as a user would have made them (admin). The API server checks that a
    // dockerconfigjson secret holds JSON, so the one that is not JSON is Opaque.
    const sources: [string, string, (c: FakeRegistryCredential) => string][] = [
      [
        'not-json',
        'Opaque',
        (c) => JSON.stringify({ auths: { [c.registry]: { auth: c.auth } } }).slice(0, -2),
      ],
      [
        'bad-auth',
        'kubernetes.io/dockerconfigjson',
        (c) => JSON.stringify({ auths: { [c.registry]: { username: c.username, auth: c.password } } }),
      ],
      [
        'good',
        'kubernetes.io/dockerconfigjson',
        (c) => JSON.stringify({ auths: { [c.registry]: { auth: c.auth } } }),
      ],
    ];
    for (const [name, type, render] of sources) {
      const credential = fakeCredential(`mal-${name}`);
      inCluster.set(name, credential);
      await core.createNamespacedSecret({
        namespace: SOURCE_NS,
        body: { metadata: { name }, type, data: { '.dockerconfigjson': b64(render(credential)) } },
      });
    }
    const custom = fakeCredential('mal-custom-key');
    inCluster.set('custom-key', custom);
    await core.createNamespacedSecret({
      namespace: SOURCE_NS,
      body: {
        metadata: { name: 'custom-key' },
        type: 'Opaque',
        data: {
          'config.json': b64(
            JSON.stringify({
              auths: { [custom.registry]: { auth: b64(`${custom.username}${custom.password}`) } },
            }),
          ),
        },
      },
    });
    await core.createNamespacedSecret({
      namespace: SOURCE_NS,
      body: { metadata: { name: 'other-key' }, type: 'Opaque', data: { token: b64('not a docker config') } },
    });
    baseline = await clusterState();
  });
  after(async () => rig?.stop());

  describe('configuration values (the fixture, as the restricted identity)', () => {
    for (const [description, build, field, fragment] of CONFIG_CASES) {
      it(`${description}: names ${field}`, async () => {
        await assert.rejects(p.reconcile(build(good.path) as ConfigInput), (error: unknown) => {
          assert.ok(error instanceof ConfigError, String(error));
          const line = error.message.split('\n').find((l) => l.startsWith(`test: ${field}: `));
          assert.ok(line, `no line for ${field} in:\n${error.message}`);
          assert.ok(line.includes(fragment), `expected "${fragment}" in:\n${error.message}`);
          assertNoCredential(error.message, good);
          return true;
        });
        await assertUnchanged();
      });
    }
  });

  describe('configuration files (the CLI, as the restricted identity)', () => {
    /** Runs the CLI in process with the restricted identity's kubeconfig. */
    async function cli(config: string): Promise<{ code: number; stdout: string; stderr: string }> {
      let stdout = '';
      let stderr = '';
      const code = await main(
        ['--config', config, '--kubeconfig', p.identityKubeconfig, '--output', 'json'],
        {
          stdout: (t) => {
            stdout += t;
          },
          stderr: (t) => {
            stderr += t;
          },
          env: {},
        },
      );
      return { code, stdout, stderr };
    }

    FILE_CASES.forEach(([description, render, where, fragment], i) => {
      it(`${description}: names ${where || 'the file'}`, async () => {
        const file = join(dir, `config-${i}.yaml`);
        writeFileSync(file, render(good.path));
        const { code, stdout, stderr } = await cli(file);
        assert.equal(code, 2, stderr);
        assert.equal(stdout, '');
        assert.ok(stderr.startsWith(`CONFIG_INVALID: ${file}${where}`), stderr);
        assert.ok(stderr.includes(fragment), `expected "${fragment}" in:\n${stderr}`);
        assertNoCredential(stderr, good);
        await assertUnchanged();
      });
    });

    it('an invalid source in a valid file: exit 1, the report names the source and field, no write', async () => {
      const bad = credentialFileWith(dir, 'mal-cli', (c) =>
        JSON.stringify({ auths: { [c.registry]: { auth: c.password } } }),
      );
      const file = join(dir, 'config-source.yaml');
      writeFileSync(file, `mappings:\n  - secretName: ${SECRET}\n    source: {file: ${bad.path}}\n`);
      const config = await loadConfig(file);
      await applyRbac(rig.clusters[0]!, config);
      const { code, stdout, stderr } = await cli(file);
      assert.equal(code, 1, stderr);
      const [report] = (JSON.parse(stdout) as { clusters: ClusterReport[] }).clusters;
      const message = sourceErrorOf(report!);
      assert.ok(
        message.includes(`source "file:${bad.path}": auths["${REGISTRY}"].auth: not valid base64`),
        message,
      );
      assertNoCredential(`${stdout}${stderr}`, bad);
      await assertUnchanged();
    });
  });

  describe('credential files (the fixture, as the restricted identity)', () => {
    SOURCE_CASES.forEach(([description, render, field, fragment], i) => {
      it(`${description}: names ${field || 'the source'}`, async () => {
        const bad = credentialFileWith(dir, `mal-src-${i}`, render);
        const report = await p.reconcile({ mappings: [mapping({ file: bad.path })] });
        const message = sourceErrorOf(report);
        const expected = `source "file:${bad.path}": ${field === '' ? '' : `${field}: `}${fragment}`;
        assert.ok(message.includes(expected), `expected "${expected}" in:\n${message}`);
        assertNoCredential(JSON.stringify(report), bad);
        await assertUnchanged();
      });
    });

    it('a missing file: names the source and the error code', async () => {
      const path = join(dir, 'does-not-exist.json');
      const report = await p.reconcile({ mappings: [mapping({ file: path })] });
      const message = sourceErrorOf(report);
      assert.ok(message.includes(`source "file:${path}": cannot read the file (ENOENT)`), message);
      await assertUnchanged();
    });
  });

  describe('in-cluster source secrets (the fixture, as the restricted identity)', () => {
    /** [secret, data key (undefined: the default), field, problem] */
    const cases: readonly [string, string | undefined, string, string][] = [
      ['not-json', undefined, '', 'not valid JSON'],
      ['bad-auth', undefined, `auths["${REGISTRY}"].auth`, 'not valid base64'],
      ['other-key', undefined, '', 'has no key ".dockerconfigjson"'],
      ['custom-key', 'config.json', `auths["${REGISTRY}"].auth`, 'does not decode to "username:password"'],
    ];
    for (const [name, key, field, fragment] of cases) {
      const origin = `kubernetes:${SOURCE_NS}/${name}${key ? `[${key}]` : ''}`;
      it(`a source secret ${name}: names ${origin}${field ? ` and ${field}` : ''}`, async () => {
        const report = await p.reconcile({
          mappings: [mapping({ kubernetes: { namespace: SOURCE_NS, name, ...(key ? { key } : {}) } })],
        });
        const message = sourceErrorOf(report);
        const expected = `source "${origin}": ${field === '' ? '' : `${field}: `}${fragment}`;
        assert.ok(message.includes(expected), `expected "${expected}" in:\n${message}`);
        assertNoCredential(JSON.stringify(report), ...inCluster.values());
        await assertUnchanged();
      });
    }
  });

  describe('valid parts that conflict at run time', () => {
    it('two named mappings of one secret name selecting the same namespaces: an error there, no write', async () => {
      const other = credentialFile(dir, 'mal-other');
      const report = await p.reconcile({
        mappings: [
          mapping({ file: good.path }, { name: 'first' }),
          mapping({ file: other.path }, { name: 'second' }),
        ],
      });
      assert.equal(report.converged, false);
      assert.equal(writes(report), 0, JSON.stringify(report.requests));
      for (const m of report.mappings) {
        assert.deepEqual(
          m.errors.map((e) => `${e.namespace}: ${e.reason}`).sort(),
          TARGETS.map((ns) => `${ns}: mappings first, second all select this namespace for secret ${SECRET}`),
        );
      }
      assertNoCredential(JSON.stringify(report), good, other);
      await assertUnchanged();
    });
  });
});
