import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type ConfigInput, parseConfig } from '../lib/config.ts';
import type { NamespaceInfo, SecretInfo, ServiceAccountInfo } from '../lib/kube.ts';
import {
  CONTENT_HASH_ANNOTATION,
  DOCKER_CONFIG_KEY,
  DOCKER_CONFIG_TYPE,
  EXCLUDE_ANNOTATION,
  LEGACY_EXCLUDE_ANNOTATION,
  MANAGED_LABEL,
  MAPPING_ANNOTATION,
  SOURCE_VERSION_ANNOTATION,
} from '../lib/ownership.ts';
import {
  type Action,
  type DesiredContent,
  type DesiredMapping,
  desiredManifest,
  desiredMapping,
  isOurs,
  isWrite,
  type Observed,
  type PlanInput,
  plan,
  pruneCandidates,
} from '../lib/plan.ts';
import { registerCredential } from './support/test-logs.ts';

// ---------------------------------------------------------------------------
// Factories: the desired side (through the configuration schema, for its defaults) and the observed side.

function content(tag: string): DesiredContent {
  const auth = Buffer.from(`robot:password-${tag}`).toString('base64');
  const dockerConfigJson = JSON.stringify({ auths: { 'registry.example.com': { auth } } });
  registerCredential({
    label: `plan.test.ts ${tag}`,
    username: 'robot',
    password: `password-${tag}`,
    encoded: { 'base64(secret data)': base64(dockerConfigJson) },
  });
  return {
    dockerConfigJson,
    contentHash: `hash-${tag}`,
    sourceVersion: `version-${tag}`,
  };
}

const V1 = content('v1');
const V2 = content('v2');

type MappingInput = Partial<Omit<ConfigInput['mappings'][number], 'source'>>;

/** A mapping as the engine sees it: configuration defaults applied, content loaded (V1 unless given). */
function mapping(
  input: MappingInput = {},
  loaded: { content?: DesiredContent | undefined } = {},
): DesiredMapping {
  const config = parseConfig(
    { mappings: [{ secretName: 'regcred', source: { file: 'regcred.json' }, ...input }] },
    'test',
  );
  return desiredMapping(config.mappings[0]!, 'content' in loaded ? loaded.content : V1);
}

function namespace(name: string, extra: Partial<Omit<NamespaceInfo, 'name'>> = {}): NamespaceInfo {
  return { name, labels: {}, annotations: {}, terminating: false, ...extra };
}

function optedOutNamespace(name: string, annotation = EXCLUDE_ANNOTATION): NamespaceInfo {
  return namespace(name, { annotations: { [annotation]: 'true' } });
}

function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

/** A secret carrying our marks, as a previous run of `mapping` with `content` left it. */
function ours(
  ns: string,
  options: { secretName?: string; mapping?: string; content?: DesiredContent; type?: string } = {},
): SecretInfo {
  const secretName = options.secretName ?? 'regcred';
  const written = options.content ?? V1;
  return {
    namespace: ns,
    name: secretName,
    uid: `uid-${ns}-${secretName}`,
    resourceVersion: '7',
    type: options.type ?? DOCKER_CONFIG_TYPE,
    labels: { [MANAGED_LABEL]: 'true', app: 'kept' },
    annotations: {
      [MAPPING_ANNOTATION]: options.mapping ?? secretName,
      [SOURCE_VERSION_ANNOTATION]: written.sourceVersion,
      [CONTENT_HASH_ANNOTATION]: written.contentHash,
    },
    data: { [DOCKER_CONFIG_KEY]: base64(written.dockerConfigJson) },
  };
}

/** A secret of the same name that someone else made. */
function foreign(ns: string, options: { secretName?: string; type?: string } = {}): SecretInfo {
  const secretName = options.secretName ?? 'regcred';
  const type = options.type ?? DOCKER_CONFIG_TYPE;
  return {
    namespace: ns,
    name: secretName,
    uid: `uid-${ns}-${secretName}`,
    resourceVersion: '3',
    type,
    labels: { owner: 'someone-else' },
    annotations: {},
    data:
      type === DOCKER_CONFIG_TYPE
        ? { [DOCKER_CONFIG_KEY]: base64('{"auths":{"their.registry":{}}}') }
        : { token: base64('theirs') },
  };
}

function account(
  ns: string,
  name = 'default',
  options: { refs?: string[]; annotations?: Record<string, string> } = {},
): ServiceAccountInfo {
  return {
    namespace: ns,
    name,
    resourceVersion: '5',
    annotations: options.annotations ?? {},
    imagePullSecrets: options.refs ?? [],
  };
}

function optedOutAccount(ns: string, name: string): ServiceAccountInfo {
  return account(ns, name, { annotations: { [EXCLUDE_ANNOTATION]: 'true' } });
}

type World = {
  namespaces: NamespaceInfo[];
  secrets?: SecretInfo[];
  accounts?: ServiceAccountInfo[];
  /** Secret names listed, even with no copy anywhere (observe lists every configured name). */
  secretNames?: string[];
};

function observed(world: World): Observed {
  const secrets = new Map<string, Map<string, SecretInfo>>();
  for (const name of world.secretNames ?? []) secrets.set(name, new Map());
  for (const s of world.secrets ?? []) {
    const byNamespace = secrets.get(s.name) ?? new Map<string, SecretInfo>();
    byNamespace.set(s.namespace, s);
    secrets.set(s.name, byNamespace);
  }
  const serviceAccounts = new Map<string, ServiceAccountInfo[]>();
  for (const sa of world.accounts ?? []) {
    serviceAccounts.set(sa.namespace, [...(serviceAccounts.get(sa.namespace) ?? []), sa]);
  }
  return { namespaces: world.namespaces, secrets, serviceAccounts, allServiceAccounts: true };
}

type Case = World & {
  name: string;
  mappings: DesiredMapping[];
  retired?: string[];
  onlyNamespaces?: string[];
  onlyMappings?: string[];
  /** The plan, one line per action, in order (see {@link show}). */
  expect: string[];
};

function input(c: Omit<Case, 'name' | 'expect'>): PlanInput {
  return {
    observed: observed(c),
    mappings: c.mappings,
    retiredSecretNames: c.retired ?? [],
    onlyNamespaces: c.onlyNamespaces ? new Set(c.onlyNamespaces) : undefined,
    onlyMappings: c.onlyMappings ? new Set(c.onlyMappings) : undefined,
  };
}

/** `sa-add team-a/regcred sa/default by regcred: add regcred to imagePullSecrets` */
function show(action: Action): string {
  const sa = 'serviceAccount' in action ? ` sa/${action.serviceAccount}` : '';
  return `${action.kind} ${action.namespace}/${action.secretName}${sa} by ${action.mapping}: ${action.reason}`;
}

function runTable(cases: readonly Case[]): void {
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(plan(input(c)).map(show), c.expect);
    });
  }
}

const ADD = 'add regcred to imagePullSecrets';
const UNMANAGED = 'a secret of this name exists and is not managed by the patcher';

// ---------------------------------------------------------------------------

describe('desiredManifest', () => {
  it('marks the secret as ours, names the mapping and source version, and base64-encodes the config', () => {
    const m = mapping({ name: 'team-a-pull', secretName: 'regcred' });
    assert.deepEqual(desiredManifest(m, V1), {
      name: 'regcred',
      type: DOCKER_CONFIG_TYPE,
      labels: { [MANAGED_LABEL]: 'true' },
      annotations: {
        [MAPPING_ANNOTATION]: 'team-a-pull',
        [SOURCE_VERSION_ANNOTATION]: 'version-v1',
        [CONTENT_HASH_ANNOTATION]: 'hash-v1',
      },
      data: { [DOCKER_CONFIG_KEY]: base64(V1.dockerConfigJson) },
    });
  });
});

describe('plan: the secret in a selected namespace', () => {
  runTable([
    {
      name: 'creates the secret where it is missing and references it from the default service account',
      mappings: [mapping()],
      namespaces: [namespace('team-a')],
      accounts: [account('team-a')],
      expect: [
        'create team-a/regcred by regcred: missing',
        `sa-add team-a/regcred sa/default by regcred: ${ADD}`,
      ],
    },
    {
      name: 'does nothing when in sync',
      mappings: [mapping()],
      namespaces: [namespace('team-a')],
      secrets: [ours('team-a')],
      accounts: [account('team-a', 'default', { refs: ['regcred'] })],
      expect: ['noop team-a/regcred by regcred: in sync'],
    },
    {
      name: 'updates in place when the content differs from the source',
      mappings: [mapping({}, { content: V2 })],
      namespaces: [namespace('team-a')],
      secrets: [ours('team-a', { content: V1 })],
      accounts: [account('team-a', 'default', { refs: ['regcred'] })],
      expect: ['update team-a/regcred by regcred: content differs from the source'],
    },
    {
      name: 'does not rewrite when only the source version changed but the content is the same',
      mappings: [mapping({}, { content: { ...V1, sourceVersion: 'version-v1-again' } })],
      namespaces: [namespace('team-a')],
      secrets: [ours('team-a')],
      accounts: [account('team-a', 'default', { refs: ['regcred'] })],
      expect: ['noop team-a/regcred by regcred: in sync'],
    },
    {
      name: 'leaves a user-owned same-name secret alone and adds no reference to it',
      mappings: [mapping()],
      namespaces: [namespace('team-a')],
      secrets: [foreign('team-a')],
      accounts: [account('team-a')],
      expect: [`conflict team-a/regcred by regcred: ${UNMANAGED}`],
    },
    {
      name: 'adopts a user-owned secret of the right type when onConflict is adopt',
      mappings: [mapping({ onConflict: 'adopt' })],
      namespaces: [namespace('team-a')],
      secrets: [foreign('team-a')],
      accounts: [account('team-a')],
      expect: [
        'adopt team-a/regcred by regcred: adopting the existing secret (onConflict: adopt)',
        `sa-add team-a/regcred sa/default by regcred: ${ADD}`,
      ],
    },
    {
      name: 'refuses to adopt an Opaque secret, whose type cannot change',
      mappings: [mapping({ onConflict: 'adopt' })],
      namespaces: [namespace('team-a')],
      secrets: [foreign('team-a', { type: 'Opaque' })],
      accounts: [account('team-a')],
      expect: [
        `conflict team-a/regcred by regcred: cannot adopt: type is Opaque, not ${DOCKER_CONFIG_TYPE} (a secret's type cannot change)`,
      ],
    },
    {
      name: 'reports our own secret of the wrong type as a conflict instead of patching it',
      mappings: [mapping()],
      namespaces: [namespace('team-a')],
      secrets: [ours('team-a', { type: 'Opaque' })],
      accounts: [account('team-a')],
      expect: [
        'conflict team-a/regcred by regcred: ours but of type Opaque; delete it to let the patcher recreate it',
      ],
    },
    {
      name: 'skips a terminating namespace quietly: no write and no prune; says so only where it targets or holds a copy',
      mappings: [mapping({ namespaces: { include: ['team-*'] } })],
      namespaces: [
        namespace('team-a', { terminating: true }),
        namespace('team-b', { terminating: true, annotations: { [EXCLUDE_ANNOTATION]: 'true' } }),
        namespace('other', { terminating: true }),
      ],
      secrets: [ours('team-b')],
      accounts: [account('team-a'), account('team-b', 'default', { refs: ['regcred'] })],
      expect: ['skip team-a/regcred by regcred: terminating', 'skip team-b/regcred by regcred: terminating'],
    },
  ]);

  it('updates the observed object in place, carrying its uid and resourceVersion, never delete-then-create', () => {
    const actions = plan(
      input({
        mappings: [mapping({}, { content: V2 })],
        namespaces: [namespace('team-a')],
        secrets: [ours('team-a')],
        accounts: [account('team-a', 'default', { refs: ['regcred'] })],
      }),
    );
    assert.equal(actions.length, 1);
    const [update] = actions;
    assert.ok(update?.kind === 'update');
    assert.equal(update.current.uid, 'uid-team-a-regcred');
    assert.equal(update.current.resourceVersion, '7');
    assert.equal(update.manifest.data[DOCKER_CONFIG_KEY], base64(V2.dockerConfigJson));
    assert.equal(update.manifest.annotations[SOURCE_VERSION_ANNOTATION], 'version-v2');
  });

  it('does nothing when in sync: zero writes', () => {
    const actions = plan(
      input({
        mappings: [mapping({ serviceAccounts: ['*'] })],
        namespaces: [namespace('team-a'), namespace('team-b')],
        secrets: [ours('team-a'), ours('team-b')],
        accounts: [
          account('team-a', 'default', { refs: ['regcred'] }),
          account('team-b', 'builder', { refs: ['other', 'regcred'] }),
        ],
      }),
    );
    assert.deepEqual(actions.filter(isWrite), []);
    assert.deepEqual(
      actions.map((a) => a.kind),
      ['noop', 'noop'],
    );
  });
});

describe('plan: namespaces a mapping does not select', () => {
  runTable([
    {
      name: 'prunes our copy in an opted-out namespace, dropping references before the secret',
      mappings: [mapping()],
      namespaces: [optedOutNamespace('team-a')],
      secrets: [ours('team-a')],
      accounts: [
        account('team-a', 'default', { refs: ['theirs', 'regcred'] }),
        account('team-a', 'builder', { refs: ['theirs'] }),
      ],
      expect: [
        'skip team-a/regcred by regcred: opted-out',
        'sa-remove team-a/regcred sa/default by regcred: drop regcred from imagePullSecrets: namespace no longer selected',
        'prune team-a/regcred by regcred: namespace no longer selected',
      ],
    },
    {
      name: "honours the original tool's opt-out annotation on a namespace",
      mappings: [mapping()],
      namespaces: [optedOutNamespace('team-a', LEGACY_EXCLUDE_ANNOTATION)],
      secrets: [ours('team-a')],
      accounts: [account('team-a', 'default', { refs: ['regcred'] })],
      expect: [
        'skip team-a/regcred by regcred: opted-out',
        'sa-remove team-a/regcred sa/default by regcred: drop regcred from imagePullSecrets: namespace no longer selected',
        'prune team-a/regcred by regcred: namespace no longer selected',
      ],
    },
    {
      name: 'skips an excluded namespace and prunes our copy there',
      mappings: [mapping({ namespaces: { exclude: ['team-*'] } })],
      namespaces: [namespace('team-a')],
      secrets: [ours('team-a')],
      accounts: [account('team-a')],
      expect: [
        'skip team-a/regcred by regcred: excluded',
        'prune team-a/regcred by regcred: namespace no longer selected',
      ],
    },
    {
      name: 'skips a system namespace by default',
      mappings: [mapping()],
      namespaces: [namespace('kube-system')],
      accounts: [account('kube-system')],
      expect: ['skip kube-system/regcred by regcred: system'],
    },
    {
      name: 'skips a namespace not in include',
      mappings: [mapping({ namespaces: { include: ['team-b'] } })],
      namespaces: [namespace('team-a')],
      accounts: [account('team-a')],
      expect: ['skip team-a/regcred by regcred: not-included'],
    },
    {
      name: 'skips a namespace whose labels do not match the selector',
      mappings: [mapping({ namespaces: { selector: { matchLabels: { team: 'b' } } } })],
      namespaces: [
        namespace('team-a', { labels: { team: 'a' } }),
        namespace('team-b', { labels: { team: 'b' } }),
      ],
      accounts: [account('team-a'), account('team-b')],
      expect: [
        'skip team-a/regcred by regcred: selector',
        'create team-b/regcred by regcred: missing',
        `sa-add team-b/regcred sa/default by regcred: ${ADD}`,
      ],
    },
    {
      name: 'keeps the copy when prune is disabled',
      mappings: [mapping({ prune: false })],
      namespaces: [optedOutNamespace('team-a')],
      secrets: [ours('team-a')],
      accounts: [account('team-a', 'default', { refs: ['regcred'] })],
      expect: ['skip team-a/regcred by regcred: opted-out'],
    },
    {
      name: 'never prunes a same-name secret we do not own',
      mappings: [mapping()],
      namespaces: [optedOutNamespace('team-a')],
      secrets: [foreign('team-a')],
      accounts: [account('team-a', 'default', { refs: ['regcred'] })],
      expect: ['skip team-a/regcred by regcred: opted-out'],
    },
    {
      name: 'prunes the copy of a removed mapping whose secret name another mapping still uses',
      mappings: [mapping({ namespaces: { include: ['team-a'] } })],
      namespaces: [namespace('team-a'), namespace('team-b')],
      secrets: [ours('team-a'), ours('team-b', { mapping: 'old-mapping' })],
      accounts: [
        account('team-a', 'default', { refs: ['regcred'] }),
        account('team-b', 'default', { refs: ['regcred'] }),
      ],
      expect: [
        'noop team-a/regcred by regcred: in sync',
        'skip team-b/regcred by regcred: not-included',
        'sa-remove team-b/regcred sa/default by old-mapping: drop regcred from imagePullSecrets: mapping "old-mapping" removed',
        'prune team-b/regcred by old-mapping: mapping "old-mapping" removed',
      ],
    },
    {
      name: 'prunes copies of a retired secret name everywhere, leaving same-name secrets of others alone',
      mappings: [mapping()],
      retired: ['oldcred'],
      namespaces: [namespace('team-a'), optedOutNamespace('team-b'), namespace('team-c')],
      secrets: [
        ours('team-a'),
        ours('team-a', { secretName: 'oldcred', mapping: 'old' }),
        ours('team-b', { secretName: 'oldcred', mapping: 'old' }),
        foreign('team-c', { secretName: 'oldcred' }),
        ours('team-c'),
      ],
      accounts: [
        account('team-a', 'default', { refs: ['oldcred', 'regcred'] }),
        account('team-c', 'default', { refs: ['oldcred', 'regcred'] }),
      ],
      expect: [
        'noop team-a/regcred by regcred: in sync',
        'skip team-b/regcred by regcred: opted-out',
        'noop team-c/regcred by regcred: in sync',
        'sa-remove team-a/oldcred sa/default by old: drop oldcred from imagePullSecrets: secret name retired',
        'prune team-a/oldcred by old: secret name retired',
        'prune team-b/oldcred by old: secret name retired',
      ],
    },
  ]);
});

describe('plan: several mappings', () => {
  const a = mapping({ name: 'a', namespaces: { include: ['team-a'] } });
  const b = mapping({ name: 'b', namespaces: { include: ['team-b'] } });
  runTable([
    {
      name: 're-labels the owner when another mapping of the same secret name now selects the namespace',
      mappings: [a, b],
      namespaces: [namespace('team-a'), namespace('team-b')],
      secrets: [ours('team-a', { mapping: 'a' }), ours('team-b', { mapping: 'a' })],
      accounts: [
        account('team-a', 'default', { refs: ['regcred'] }),
        account('team-b', 'default', { refs: ['regcred'] }),
      ],
      expect: [
        'noop team-a/regcred by a: in sync',
        'update team-b/regcred by b: owned by mapping "a", now b',
      ],
    },
    {
      name: 'updates the content and the owner together when the new owner has other content',
      mappings: [a, mapping({ name: 'b', namespaces: { include: ['team-b'] } }, { content: V2 })],
      namespaces: [namespace('team-b')],
      secrets: [ours('team-b', { mapping: 'a' })],
      accounts: [account('team-b', 'default', { refs: ['regcred'] })],
      expect: ['update team-b/regcred by b: content differs from the source'],
    },
    {
      name: 'reports an error and writes nothing where two mappings of one secret name select the namespace',
      mappings: [mapping({ name: 'a' }), mapping({ name: 'b', namespaces: { include: ['team-*'] } })],
      namespaces: [namespace('team-a'), namespace('ops')],
      secrets: [ours('team-a', { mapping: 'a', content: V2 })],
      accounts: [account('team-a'), account('ops')],
      expect: [
        'error team-a/regcred by a: mappings a, b all select this namespace for secret regcred',
        'error team-a/regcred by b: mappings a, b all select this namespace for secret regcred',
        'create ops/regcred by a: missing',
        `sa-add ops/regcred sa/default by a: ${ADD}`,
      ],
    },
    {
      name: 'creates both secrets where two mappings with different secret names select one namespace',
      mappings: [mapping({ name: 'a' }), mapping({ name: 'b', secretName: 'othercred' })],
      namespaces: [namespace('team-a')],
      accounts: [account('team-a')],
      expect: [
        'create team-a/regcred by a: missing',
        `sa-add team-a/regcred sa/default by a: ${ADD}`,
        'create team-a/othercred by b: missing',
        'sa-add team-a/othercred sa/default by b: add othercred to imagePullSecrets',
      ],
    },
  ]);
});

describe('plan: service-account references', () => {
  const accounts = (ns: string) => [
    account(ns, 'default'),
    account(ns, 'builder'),
    account(ns, 'deployer', { refs: ['theirs'] }),
  ];
  const cases: {
    name: string;
    serviceAccounts: string[];
    accounts: ServiceAccountInfo[];
    added: string[];
  }[] = [
    {
      name: 'references only default by default',
      serviceAccounts: ['default'],
      accounts: accounts('t'),
      added: ['default'],
    },
    {
      name: 'references the listed service accounts',
      serviceAccounts: ['builder', 'deployer'],
      accounts: accounts('t'),
      added: ['builder', 'deployer'],
    },
    {
      name: 'references every service account for *',
      serviceAccounts: ['*'],
      accounts: accounts('t'),
      added: ['default', 'builder', 'deployer'],
    },
    {
      name: 'references service accounts matching a glob',
      serviceAccounts: ['*er'],
      accounts: accounts('t'),
      added: ['builder', 'deployer'],
    },
    { name: 'references none for []', serviceAccounts: [], accounts: accounts('t'), added: [] },
    {
      name: 'never adds a reference a service account already has',
      serviceAccounts: ['*'],
      accounts: [
        account('t', 'default', { refs: ['regcred'] }),
        account('t', 'builder', { refs: ['x', 'regcred'] }),
      ],
      added: [],
    },
    {
      name: 'never references an opted-out service account',
      serviceAccounts: ['*'],
      accounts: [account('t'), optedOutAccount('t', 'builder')],
      added: ['default'],
    },
    {
      name: 'treats an opt-out annotation other than "true" as not opted out',
      serviceAccounts: ['*'],
      accounts: [account('t', 'builder', { annotations: { [EXCLUDE_ANNOTATION]: 'false' } })],
      added: ['builder'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const actions = plan(
        input({
          mappings: [mapping({ serviceAccounts: c.serviceAccounts })],
          namespaces: [namespace('t')],
          secrets: [ours('t')],
          accounts: c.accounts,
        }),
      );
      const added = actions.flatMap((a) => (a.kind === 'sa-add' ? [a.serviceAccount] : []));
      assert.deepEqual(added, c.added);
      assert.deepEqual(actions.filter((a) => a.kind !== 'sa-add').map(show), [
        'noop t/regcred by regcred: in sync',
      ]);
    });
  }

  it('the sa-add carries the observed service account, for the resourceVersion guard', () => {
    const sa = account('t', 'default', { refs: ['theirs'] });
    const [, add] = plan(input({ mappings: [mapping()], namespaces: [namespace('t')], accounts: [sa] }));
    assert.ok(add?.kind === 'sa-add');
    assert.equal(add.current, sa);
  });

  runTable([
    {
      name: 'reports a missing default service account as a skip, still creating the secret',
      mappings: [mapping()],
      namespaces: [namespace('team-a')],
      accounts: [account('team-a', 'builder')],
      expect: [
        'create team-a/regcred by regcred: missing',
        'skip team-a/regcred by regcred: service account default not found (yet)',
      ],
    },
    {
      name: 'reports each missing listed service account, but not unmatched globs',
      mappings: [mapping({ serviceAccounts: ['builder', 'deploy*'] })],
      namespaces: [namespace('team-a')],
      secrets: [ours('team-a')],
      expect: [
        'noop team-a/regcred by regcred: in sync',
        'skip team-a/regcred by regcred: service account builder not found (yet)',
      ],
    },
  ]);
});

describe('plan: sources and partial runs', () => {
  runTable([
    {
      name: 'plans nothing in selected namespaces for a mapping whose source failed',
      mappings: [mapping({}, { content: undefined })],
      namespaces: [namespace('team-a'), namespace('team-b')],
      secrets: [ours('team-b', { content: V2 })],
      accounts: [account('team-a'), account('team-b')],
      expect: [],
    },
    {
      name: 'a failed source does not stop the other mappings',
      mappings: [
        mapping({ name: 'a' }, { content: undefined }),
        mapping({ name: 'b', secretName: 'othercred' }),
      ],
      namespaces: [namespace('team-a')],
      accounts: [account('team-a', 'default', { refs: ['othercred'] })],
      expect: ['create team-a/othercred by b: missing'],
    },
    {
      name: 'restricts the plan to onlyNamespaces, pruning nowhere else',
      mappings: [mapping()],
      onlyNamespaces: ['team-b'],
      namespaces: [namespace('team-a'), namespace('team-b'), optedOutNamespace('team-c')],
      secrets: [ours('team-c')],
      accounts: [account('team-a'), account('team-b'), account('team-c', 'default', { refs: ['regcred'] })],
      expect: [
        'create team-b/regcred by regcred: missing',
        `sa-add team-b/regcred sa/default by regcred: ${ADD}`,
      ],
    },
    {
      name: "onlyMappings: neither writes nor prunes in the other mapping's namespaces",
      mappings: [
        mapping({ name: 'a', namespaces: { include: ['team-a', 'team-d'] } }),
        mapping({ name: 'b', namespaces: { include: ['team-b'] } }, { content: V2 }),
        mapping({ name: 'c', secretName: 'othercred' }),
      ],
      onlyMappings: ['a'],
      namespaces: [
        namespace('team-a'),
        namespace('team-b'),
        namespace('team-c'),
        optedOutNamespace('team-e'),
      ],
      secrets: [
        // b wants this copy now: a partial run for a must neither prune nor re-label it.
        ours('team-b', { mapping: 'a' }),
        ours('team-c', { mapping: 'b' }),
        ours('team-e', { mapping: 'a' }),
      ],
      accounts: [
        account('team-a'),
        account('team-b'),
        account('team-c'),
        account('team-e', 'default', { refs: ['regcred'] }),
      ],
      expect: [
        'create team-a/regcred by a: missing',
        `sa-add team-a/regcred sa/default by a: ${ADD}`,
        'skip team-c/regcred by a: not-included',
        'skip team-e/regcred by a: opted-out',
        'sa-remove team-e/regcred sa/default by a: drop regcred from imagePullSecrets: namespace no longer selected',
        'prune team-e/regcred by a: namespace no longer selected',
      ],
    },
    {
      name: 'a partial run does not prune the copy of a removed mapping',
      mappings: [mapping({ name: 'a', namespaces: { include: ['team-a'] } })],
      onlyMappings: ['a'],
      namespaces: [namespace('team-b')],
      secrets: [ours('team-b', { mapping: 'old' })],
      accounts: [account('team-b', 'default', { refs: ['regcred'] })],
      expect: ['skip team-b/regcred by a: not-included'],
    },
  ]);

  it('writes nothing anywhere for a mapping whose source failed, not even a prune', () => {
    const actions = plan(
      input({
        mappings: [mapping({}, { content: undefined })],
        namespaces: [optedOutNamespace('team-a')],
        secrets: [ours('team-a')],
        accounts: [account('team-a', 'default', { refs: ['regcred'] })],
      }),
    );
    assert.deepEqual(actions.filter(isWrite).map(show), []);
  });
});

describe('pruneCandidates', () => {
  const cases: { name: string; world: Omit<Case, 'name' | 'expect'>; expect: string[] }[] = [
    {
      name: 'lists each namespace where a copy would be pruned, once',
      world: {
        mappings: [mapping({ namespaces: { exclude: ['team-c'] } })],
        retired: ['oldcred'],
        namespaces: [
          namespace('team-a'),
          optedOutNamespace('team-b'),
          namespace('team-c'),
          namespace('team-d'),
        ],
        secrets: [
          ours('team-a'),
          ours('team-b'),
          ours('team-b', { secretName: 'oldcred' }),
          ours('team-c'),
          foreign('team-d', { secretName: 'oldcred' }),
        ],
      },
      expect: ['team-b', 'team-c'],
    },
    {
      name: 'is empty when nothing would be pruned',
      world: {
        mappings: [mapping({ prune: false })],
        namespaces: [optedOutNamespace('team-a'), namespace('team-b')],
        secrets: [ours('team-a'), foreign('team-b')],
      },
      expect: [],
    },
    {
      name: 'honours onlyNamespaces',
      world: {
        mappings: [mapping()],
        onlyNamespaces: ['team-b'],
        namespaces: [optedOutNamespace('team-a'), optedOutNamespace('team-b')],
        secrets: [ours('team-a'), ours('team-b')],
      },
      expect: ['team-b'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(pruneCandidates(input(c.world)), c.expect);
    });
  }
});

// ---------------------------------------------------------------------------
// Properties over random clusters and configurations

/** The cluster after the plan's writes, applied the way the API applies them (merge patches). */
function applyToObserved(before: Observed, actions: readonly Action[]): Observed {
  const secrets = new Map([...before.secrets].map(([name, byNs]) => [name, new Map(byNs)]));
  const accounts = new Map([...before.serviceAccounts].map(([ns, list]) => [ns, [...list]]));
  const copies = (name: string) => {
    const byNs = secrets.get(name) ?? new Map<string, SecretInfo>();
    secrets.set(name, byNs);
    return byNs;
  };
  const setRefs = (ns: string, name: string, change: (refs: readonly string[]) => string[]) => {
    accounts.set(
      ns,
      (accounts.get(ns) ?? []).map((sa) =>
        sa.name === name ? { ...sa, imagePullSecrets: change(sa.imagePullSecrets) } : sa,
      ),
    );
  };
  for (const a of actions) {
    switch (a.kind) {
      case 'create':
        copies(a.secretName).set(a.namespace, {
          namespace: a.namespace,
          name: a.secretName,
          uid: 'created',
          resourceVersion: '1',
          type: a.manifest.type,
          labels: { ...a.manifest.labels },
          annotations: { ...a.manifest.annotations },
          data: { ...a.manifest.data },
        });
        break;
      case 'update':
      case 'adopt': {
        const current = copies(a.secretName).get(a.namespace) ?? a.current;
        copies(a.secretName).set(a.namespace, {
          ...current,
          resourceVersion: `${current.resourceVersion}+`,
          labels: { ...current.labels, ...a.manifest.labels },
          annotations: { ...current.annotations, ...a.manifest.annotations },
          data: { ...current.data, ...a.manifest.data },
        });
        break;
      }
      case 'prune':
        copies(a.secretName).delete(a.namespace);
        break;
      case 'sa-add':
        setRefs(a.namespace, a.serviceAccount, (refs) => [...refs, a.secretName]);
        break;
      case 'sa-remove':
        setRefs(a.namespace, a.serviceAccount, (refs) => refs.filter((r) => r !== a.secretName));
        break;
    }
  }
  return { ...before, secrets, serviceAccounts: accounts };
}

const NAMESPACES = ['team-a', 'team-b', 'ops', 'kube-system'] as const;
const SECRET_NAMES = ['regcred', 'othercred'] as const;
const RETIRED = 'oldcred';
const ACCOUNTS = ['default', 'builder', 'deployer'] as const;
const MAPPING_NAMES = ['m0', 'm1', 'm2'] as const;
const CONTENTS: Record<string, DesiredContent> = { v1: V1, v2: V2 };

function mostlyUndefined<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  return fc.oneof({ arbitrary: fc.constant(undefined), weight: 2 }, { arbitrary: arb, weight: 1 });
}

const mappingArb = (name: string) =>
  fc
    .record({
      secretName: fc.constantFrom(...SECRET_NAMES),
      include: fc.oneof(fc.constant<string[]>([]), fc.subarray(['team-*', 'ops', 'kube-system'])),
      exclude: fc.subarray(['team-b']),
      excludeSystem: fc.boolean(),
      team: mostlyUndefined(fc.constantFrom('a', 'b')),
      serviceAccounts: fc.constantFrom<string[]>(['default'], ['*'], [], ['builder', 'deployer'], ['*er']),
      onConflict: fc.constantFrom('skip' as const, 'adopt' as const),
      prune: fc.boolean(),
      content: fc.constantFrom('v1', 'v2', 'v1', 'v2', 'failed'),
    })
    .map((m) =>
      mapping(
        {
          name,
          secretName: m.secretName,
          namespaces: {
            include: m.include,
            exclude: m.exclude,
            excludeSystem: m.excludeSystem,
            ...(m.team ? { selector: { matchLabels: { team: m.team } } } : {}),
          },
          serviceAccounts: m.serviceAccounts,
          onConflict: m.onConflict,
          prune: m.prune,
        },
        { content: CONTENTS[m.content] },
      ),
    );

const secretArb = (ns: string, secretName: string) =>
  fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 2 },
    fc
      .record({
        mapping: fc.constantFrom(...MAPPING_NAMES, 'gone'),
        content: fc.constantFrom(V1, V2),
        type: fc.constantFrom(DOCKER_CONFIG_TYPE, DOCKER_CONFIG_TYPE, 'Opaque'),
      })
      .map((o) => ours(ns, { secretName, ...o })),
    fc.constantFrom(DOCKER_CONFIG_TYPE, 'Opaque').map((type) => foreign(ns, { secretName, type })),
  );

const accountArb = (ns: string, name: string) =>
  fc
    .record({
      refs: fc.subarray([...SECRET_NAMES, RETIRED, 'theirs']),
      optedOut: fc.constantFrom(false, false, false, true),
    })
    .map((o) =>
      account(ns, name, {
        refs: o.refs,
        annotations: o.optedOut ? { [EXCLUDE_ANNOTATION]: 'true' } : {},
      }),
    );

const namespaceStateArb = (name: string) =>
  fc.record({
    namespace: fc
      .record({
        team: fc.option(fc.constantFrom('a', 'b'), { nil: undefined }),
        optOut: fc.constantFrom(
          undefined,
          undefined,
          undefined,
          EXCLUDE_ANNOTATION,
          LEGACY_EXCLUDE_ANNOTATION,
        ),
        terminating: fc.constantFrom(false, false, false, false, true),
      })
      .map((o) =>
        namespace(name, {
          labels: o.team ? { team: o.team } : {},
          annotations: o.optOut ? { [o.optOut]: 'true' } : {},
          terminating: o.terminating,
        }),
      ),
    secrets: fc.tuple(...[...SECRET_NAMES, RETIRED].map((secretName) => secretArb(name, secretName))),
    accounts: fc.tuple(...ACCOUNTS.map((sa) => fc.option(accountArb(name, sa), { nil: undefined }))),
  });

const worldArb = fc
  .record({
    mappingCount: fc.integer({ min: 1, max: 3 }),
    mappings: fc.tuple(...MAPPING_NAMES.map(mappingArb)),
    states: fc
      .subarray(NAMESPACES.map(String), { minLength: 1 })
      .chain((names) => fc.tuple(...names.map(namespaceStateArb))),
    retired: fc.boolean(),
    // Mostly full runs: a partial run is the exception.
    onlyNamespaces: mostlyUndefined(fc.subarray(NAMESPACES.map(String))),
    onlyMappings: mostlyUndefined(fc.subarray(MAPPING_NAMES.map(String), { minLength: 1 })),
  })
  .map((w): PlanInput => {
    const world: World = {
      namespaces: w.states.map((s) => s.namespace),
      secrets: w.states.flatMap((s) => s.secrets.filter((x) => x !== undefined)),
      accounts: w.states.flatMap((s) => s.accounts.filter((x) => x !== undefined)),
      secretNames: [...SECRET_NAMES, RETIRED],
    };
    return {
      observed: observed(world),
      mappings: w.mappings.slice(0, w.mappingCount),
      retiredSecretNames: w.retired ? [RETIRED] : [],
      onlyNamespaces: w.onlyNamespaces ? new Set(w.onlyNamespaces) : undefined,
      onlyMappings: w.onlyMappings ? new Set(w.onlyMappings) : undefined,
    };
  });

describe('plan: properties', () => {
  it('is idempotent: planning again after applying the writes plans no writes', () => {
    fc.assert(
      fc.property(worldArb, (planInput) => {
        const first = plan(planInput);
        const after = applyToObserved(planInput.observed, first);
        const second = plan({ ...planInput, observed: after });
        assert.deepEqual(second.filter(isWrite).map(show), []);
      }),
      { numRuns: 1000 },
    );
  });

  it('plans the same actions whatever order the namespaces were listed in', () => {
    fc.assert(
      fc.property(worldArb, fc.nat(), (planInput, seed) => {
        const namespaces = planInput.observed.namespaces;
        const k = namespaces.length === 0 ? 0 : seed % namespaces.length;
        const reordered = [...namespaces.slice(k), ...namespaces.slice(0, k)].reverse();
        const again = plan({ ...planInput, observed: { ...planInput.observed, namespaces: reordered } });
        assert.deepEqual(again.map(show).sort(), plan(planInput).map(show).sort());
      }),
      { numRuns: 500 },
    );
  });

  it('writes only what it owns, in namespaces it may touch, at most once per secret', () => {
    fc.assert(
      fc.property(worldArb, (planInput) => {
        const { observed: o, onlyNamespaces, onlyMappings } = planInput;
        const seen = new Set<string>();
        for (const a of plan(planInput).filter(isWrite)) {
          const ns = o.namespaces.find((n) => n.name === a.namespace);
          assert.ok(ns && !ns.terminating, `write in a terminating namespace: ${show(a)}`);
          assert.ok(!onlyNamespaces || onlyNamespaces.has(a.namespace), `outside onlyNamespaces: ${show(a)}`);
          assert.ok(!onlyMappings || onlyMappings.has(a.mapping), `outside onlyMappings: ${show(a)}`);
          const existing = o.secrets.get(a.secretName)?.get(a.namespace);
          if (a.kind === 'update' || a.kind === 'prune') assert.ok(existing && isOurs(existing), show(a));
          if (a.kind === 'sa-remove') assert.ok(existing && isOurs(existing), show(a));
          if (a.kind === 'adopt') {
            assert.ok(existing && !isOurs(existing) && existing.type === DOCKER_CONFIG_TYPE, show(a));
            assert.equal(planInput.mappings.find((m) => m.name === a.mapping)?.onConflict, 'adopt');
          }
          if (a.kind === 'create' || a.kind === 'update' || a.kind === 'adopt' || a.kind === 'prune') {
            const key = `${a.namespace}/${a.secretName}`;
            assert.ok(!seen.has(key), `two writes of ${key}`);
            seen.add(key);
          }
        }
      }),
      { numRuns: 1000 },
    );
  });
});
