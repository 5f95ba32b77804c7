import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ActionResult, Outcome } from '../lib/apply.ts';
import type { RequestStats, SecretInfo, SecretManifest, ServiceAccountInfo } from '../lib/kube.ts';
import {
  DOCKER_CONFIG_KEY,
  DOCKER_CONFIG_TYPE,
  MANAGED_LABEL,
  MAPPING_ANNOTATION,
} from '../lib/ownership.ts';
import type { Action, ActionKind } from '../lib/plan.ts';
import { buildReport, type CountName, type ReportInput, renderTable } from '../lib/report.ts';
import { registerCredential } from './support/test-logs.ts';

// A recognisable credential, so a leak into a report is easy to spot.
const PASSWORD = 'hunter2-Sup3rS3cret-Leak';
const AUTH = Buffer.from(`robot:${PASSWORD}`).toString('base64');
const DOCKER_CONFIG = JSON.stringify({
  auths: { 'registry.example.com': { username: 'robot', password: PASSWORD, auth: AUTH } },
});
const DATA = Buffer.from(DOCKER_CONFIG).toString('base64');
registerCredential({
  label: 'report.test.ts robot',
  registry: 'registry.example.com',
  username: 'robot',
  password: PASSWORD,
  encoded: { 'base64(secret data)': DATA },
});

const manifest: SecretManifest = {
  name: 'regcred',
  type: DOCKER_CONFIG_TYPE,
  labels: { [MANAGED_LABEL]: 'true' },
  annotations: { [MAPPING_ANNOTATION]: 'regcred' },
  data: { [DOCKER_CONFIG_KEY]: DATA },
};

function secret(namespace: string): SecretInfo {
  return {
    namespace,
    name: 'regcred',
    uid: `uid-${namespace}`,
    resourceVersion: '1',
    type: DOCKER_CONFIG_TYPE,
    labels: { [MANAGED_LABEL]: 'true' },
    annotations: { [MAPPING_ANNOTATION]: 'regcred' },
    data: { [DOCKER_CONFIG_KEY]: DATA },
  };
}

function serviceAccount(namespace: string): ServiceAccountInfo {
  return { namespace, name: 'default', resourceVersion: '1', annotations: {}, imagePullSecrets: ['regcred'] };
}

const base = (namespace: string) => ({ namespace, secretName: 'regcred', mapping: 'regcred' });

const create: Action = { ...base('team-a'), kind: 'create', reason: 'missing', manifest };
const update: Action = {
  ...base('team-b'),
  kind: 'update',
  reason: 'content differs from the source',
  manifest,
  current: secret('team-b'),
};
const adopt: Action = {
  ...base('team-c'),
  kind: 'adopt',
  reason: 'adopting the existing secret (onConflict: adopt)',
  manifest,
  current: secret('team-c'),
};
const noop: Action = { ...base('team-d'), kind: 'noop', reason: 'in sync' };
const conflict: Action = { ...base('team-e'), kind: 'conflict', reason: 'not managed by the patcher' };
const skips: Action[] = [
  { ...base('team-f'), kind: 'skip', reason: 'opted-out' },
  { ...base('kube-system'), kind: 'skip', reason: 'system' },
  { ...base('kube-public'), kind: 'skip', reason: 'system' },
];
const saAdd: Action = {
  ...base('team-a'),
  kind: 'sa-add',
  serviceAccount: 'default',
  reason: 'add regcred to imagePullSecrets',
  current: serviceAccount('team-a'),
};
const saRemove: Action = {
  ...base('team-g'),
  kind: 'sa-remove',
  serviceAccount: 'default',
  reason: 'drop regcred from imagePullSecrets: namespace no longer selected',
  current: serviceAccount('team-g'),
};
const prune: Action = {
  ...base('team-g'),
  kind: 'prune',
  reason: 'namespace no longer selected',
  current: secret('team-g'),
};
const error: Action = { ...base('team-h'), kind: 'error', reason: 'mappings a, b all select this namespace' };

const ALL: Action[] = [create, update, adopt, noop, conflict, ...skips, saAdd, saRemove, prune, error];
const WRITES: Action[] = [create, update, adopt, saAdd, saRemove, prune];

function requests(byVerb: Partial<RequestStats['byVerb']> = {}): RequestStats {
  const verbs = { list: 0, get: 0, create: 0, patch: 0, delete: 0, ...byVerb };
  return { total: Object.values(verbs).reduce((a, b) => a + b, 0), retries: 0, byVerb: verbs };
}

function report(over: Partial<ReportInput> = {}) {
  return buildReport({
    cluster: 'prod',
    dryRun: true,
    startedAt: 1_000,
    finishedAt: 2_500,
    requests: requests({ list: 4, create: 1, patch: 2 }),
    mappings: [
      { name: 'regcred', secretName: 'regcred' },
      { name: 'idle', secretName: 'othercred' },
    ],
    actions: ALL,
    errors: [],
    ...over,
  });
}

function counts(partial: Partial<Record<CountName, number>>): Record<CountName, number> {
  return {
    created: 0,
    updated: 0,
    adopted: 0,
    unchanged: 0,
    referencesAdded: 0,
    referencesRemoved: 0,
    pruned: 0,
    conflicts: 0,
    errors: 0,
    skipped: 0,
    ...partial,
  };
}

describe('buildReport: dry run', () => {
  it('counts every planned action by kind, per mapping', () => {
    const r = report();
    const [regcred, idle] = r.mappings;
    assert.deepEqual(
      regcred?.counts,
      counts({
        created: 1,
        updated: 1,
        adopted: 1,
        unchanged: 1,
        referencesAdded: 1,
        referencesRemoved: 1,
        pruned: 1,
        conflicts: 1,
        errors: 1,
        skipped: 3,
      }),
    );
    assert.deepEqual(regcred?.skipped, { 'opted-out': 1, system: 2 });
    assert.deepEqual(regcred?.conflicts, [{ namespace: 'team-e', reason: 'not managed by the patcher' }]);
    assert.deepEqual(regcred?.errors, [
      { namespace: 'team-h', reason: 'mappings a, b all select this namespace' },
    ]);
    assert.deepEqual(idle, {
      mapping: 'idle',
      secretName: 'othercred',
      counts: counts({}),
      conflicts: [],
      errors: [],
      skipped: {},
    });
    assert.equal(r.durationMs, 1_500);
    assert.equal(r.notDone, 0);
  });

  it('lists the planned writes with their reasons, and nothing else', () => {
    assert.deepEqual(report().writes, [
      { kind: 'create', namespace: 'team-a', secretName: 'regcred', mapping: 'regcred', reason: 'missing' },
      {
        kind: 'update',
        namespace: 'team-b',
        secretName: 'regcred',
        mapping: 'regcred',
        reason: 'content differs from the source',
      },
      {
        kind: 'adopt',
        namespace: 'team-c',
        secretName: 'regcred',
        mapping: 'regcred',
        reason: 'adopting the existing secret (onConflict: adopt)',
      },
      {
        kind: 'sa-add',
        namespace: 'team-a',
        secretName: 'regcred',
        mapping: 'regcred',
        serviceAccount: 'default',
        reason: 'add regcred to imagePullSecrets',
      },
      {
        kind: 'sa-remove',
        namespace: 'team-g',
        secretName: 'regcred',
        mapping: 'regcred',
        serviceAccount: 'default',
        reason: 'drop regcred from imagePullSecrets: namespace no longer selected',
      },
      {
        kind: 'prune',
        namespace: 'team-g',
        secretName: 'regcred',
        mapping: 'regcred',
        reason: 'namespace no longer selected',
      },
    ]);
  });

  const cases: { name: string; over: Partial<ReportInput>; converged: boolean }[] = [
    {
      name: 'not converged while the plan still has writes to make',
      over: { actions: [create, noop, ...skips] },
      converged: false,
    },
    {
      name: 'converged when the plan has only noops and skips',
      over: { actions: [noop, ...skips] },
      converged: true,
    },
    { name: 'not converged with a conflict', over: { actions: [create, conflict] }, converged: false },
    { name: 'not converged with an error action', over: { actions: [create, error] }, converged: false },
    {
      name: 'not converged with a cluster error',
      over: { actions: [], errors: ['list namespaces: 403 Forbidden'] },
      converged: false,
    },
    {
      name: 'not converged when a mapping could not load its source',
      over: { actions: [], mappingErrors: new Map([['idle', 'SOURCE_INVALID: missing "auths"']]) },
      converged: false,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(report(c.over).converged, c.converged);
    });
  }

  it('records a mapping error once, without a namespace', () => {
    const r = report({ actions: [], mappingErrors: new Map([['idle', 'SOURCE_INVALID: missing "auths"']]) });
    const idle = r.mappings.find((m) => m.mapping === 'idle');
    assert.deepEqual(idle?.errors, [{ namespace: '', reason: 'SOURCE_INVALID: missing "auths"' }]);
    assert.equal(idle?.counts.errors, 1);
  });
});

describe('buildReport: results of apply', () => {
  const cases: {
    name: string;
    outcome: Outcome;
    kind?: ActionKind;
    detail?: string;
    counts: Partial<Record<CountName, number>>;
    converged: boolean;
    notDone?: number;
    written?: string;
  }[] = [
    { name: 'counts a done create as created', outcome: 'done', counts: { created: 1 }, converged: true },
    {
      name: 'counts the kind finally carried out (a create that met a stale copy became an update)',
      outcome: 'done',
      kind: 'update',
      counts: { updated: 1 },
      converged: true,
    },
    {
      name: 'counts a noop result as unchanged',
      outcome: 'noop',
      detail: 'already in sync after a concurrent write',
      counts: { unchanged: 1 },
      converged: true,
      written: 'noop: already in sync after a concurrent write',
    },
    {
      name: 'counts a conflict result and is not converged',
      outcome: 'conflict',
      kind: 'conflict',
      detail: 'no longer managed by the patcher; left alone',
      counts: { conflicts: 1 },
      converged: false,
      written: 'conflict: no longer managed by the patcher; left alone',
    },
    {
      name: 'counts a skipped result by its reason and stays converged',
      outcome: 'skipped',
      detail: 'namespace is terminating',
      counts: { skipped: 1 },
      converged: true,
      written: 'skipped: namespace is terminating',
    },
    {
      name: 'counts a failed result as an error and is not converged',
      outcome: 'failed',
      detail: 'create secret team-a/regcred: 403 Forbidden',
      counts: { errors: 1 },
      converged: false,
      written: 'failed: create secret team-a/regcred: 403 Forbidden',
    },
    {
      name: 'counts a write not started as not done, and is not converged',
      outcome: 'not-started',
      counts: {},
      converged: false,
      notDone: 1,
      written: 'not-started',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const result: ActionResult = {
        action: create,
        kind: c.kind ?? 'create',
        outcome: c.outcome,
        ...(c.detail ? { detail: c.detail } : {}),
      };
      const r = report({ dryRun: false, actions: [create, noop], results: [result] });
      const regcred = r.mappings[0];
      assert.deepEqual(regcred?.counts, counts({ ...c.counts, unchanged: (c.counts.unchanged ?? 0) + 1 }));
      assert.equal(r.converged, c.converged);
      assert.equal(r.notDone, c.notDone ?? 0);
      assert.deepEqual(
        r.writes.map((w) => w.outcome),
        [c.written],
      );
      if (c.outcome === 'skipped') assert.deepEqual(regcred?.skipped, { [c.detail!]: 1 });
      if (c.outcome === 'failed')
        assert.deepEqual(regcred?.errors, [{ namespace: 'team-a', reason: c.detail }]);
      if (c.outcome === 'conflict')
        assert.deepEqual(regcred?.conflicts, [{ namespace: 'team-a', reason: c.detail }]);
    });
  }
});

describe('renderTable', () => {
  it('states the cluster, its outcome, duration and API requests by verb', () => {
    const text = renderTable([report({ dryRun: false, actions: [create, noop], results: [] })]);
    assert.match(text, /^cluster prod: converged in 1\.50 s, 7 API requests \(list 4, create 1, patch 2\)$/m);
  });

  it('says "none" when no request was made', () => {
    const text = renderTable([report({ requests: requests(), actions: [] })]);
    assert.match(text, /^cluster prod: dry run, nothing written in 1\.50 s, 0 API requests \(none\)$/m);
  });

  it('has one row per mapping with its counts', () => {
    const text = renderTable([report()]);
    assert.match(
      text,
      /mapping\s+secret\s+created\s+updated\s+adopted\s+unchanged\s+SA refs \+\s+SA refs -\s+pruned/,
    );
    assert.match(text, /^\s+regcred\s+regcred\s+1\s+1\s+1\s+1\s+1\s+1\s+1\s+1\s+1\s+3$/m);
    assert.match(text, /^\s+idle\s+othercred(\s+0){10}$/m);
  });

  it('lists conflicts, errors and skip reasons, and what a dry run would do', () => {
    const text = renderTable([report()]);
    for (const line of [
      '  conflict regcred team-e/regcred: not managed by the patcher',
      '  error regcred team-h: mappings a, b all select this namespace',
      '  skipped regcred: opted-out 1, system 2',
      '  would create team-a/regcred: missing',
      '  would sa-add team-a/regcred (service account default): add regcred to imagePullSecrets',
      '  would prune team-g/regcred: namespace no longer selected',
    ]) {
      assert.ok(text.split('\n').includes(line), `missing line ${JSON.stringify(line)} in\n${text}`);
    }
  });

  it('flags a run that did not converge, with its cluster errors and writes left undone', () => {
    const text = renderTable([
      report({
        dryRun: false,
        actions: [create],
        results: [{ action: create, kind: 'create', outcome: 'not-started' }],
        errors: ['list secrets named regcred: 503 ServiceUnavailable'],
      }),
    ]);
    assert.match(text, /^cluster prod: NOT converged in/m);
    assert.match(text, /^ {2}error: list secrets named regcred: 503 ServiceUnavailable$/m);
    assert.match(text, /^ {2}not started \(deadline near, or API server unreachable\): 1 writes$/m);
    assert.doesNotMatch(text, /would /);
  });
});

describe('reports never contain the credential', () => {
  const leaks = [DATA, PASSWORD, AUTH, DOCKER_CONFIG];
  const failed = (action: Action): ActionResult => ({
    action,
    kind: action.kind,
    outcome: 'failed',
    detail: 'patch secret: 422 Invalid',
  });
  const cases: { name: string; over: Partial<ReportInput> }[] = [
    { name: 'in a dry run', over: {} },
    {
      name: 'after apply',
      over: {
        dryRun: false,
        results: WRITES.map((a) => ({ action: a, kind: a.kind, outcome: 'done' as const })),
      },
    },
    { name: 'after failed writes', over: { dryRun: false, results: WRITES.map(failed) } },
  ];
  for (const c of cases) {
    it(`${c.name}: neither the JSON nor the table holds the secret data or its password`, () => {
      const r = report(c.over);
      const json = JSON.stringify(r);
      const text = renderTable([r]);
      for (const leak of leaks) {
        assert.ok(!json.includes(leak), 'the JSON report contains the credential');
        assert.ok(!text.includes(leak), 'the table contains the credential');
      }
      // The report still says what happened to the secret.
      assert.match(json, /team-a/);
    });
  }
});
