import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { LabelSelector, LabelSelectorRequirement, NamespaceSelection } from '../lib/config.ts';
import { parseConfig } from '../lib/config.ts';
import { ConfigError } from '../lib/errors.ts';
import { compileGlob, globSyntaxError, isGlob, matchesGlob } from '../lib/glob.ts';
import {
  isOptedOut,
  matchesLabelSelector,
  type NamespaceInfo,
  SKIP_REASONS,
  type SkipReason,
  selectNamespace,
} from '../lib/namespaces.ts';
import { EXCLUDE_ANNOTATION, LEGACY_EXCLUDE_ANNOTATION } from '../lib/ownership.ts';

// ---------------------------------------------------------------------------
// Globs

describe('glob matching', () => {
  const cases: readonly [pattern: string, name: string, expected: boolean][] = [
    ['team-a*', 'team-a', true],
    ['team-a*', 'team-a-dev', true],
    ['team-a*', 'team-b', false],
    ['*-dev', 'team-a-dev', true],
    ['*', 'anything', true],
    ['team-?', 'team-a', true],
    ['team-?', 'team-ab', false],
    ['team-[ab]', 'team-b', true],
    ['team-[ab]', 'team-c', false],
    ['team-[a-c]', 'team-c', true],
    ['team-[!a-c]', 'team-c', false],
    ['team-[!a-c]', 'team-d', true],
    ['team-[^a]', 'team-b', true],
    ['ns-[0-9][0-9]', 'ns-42', true],
    ['a.b', 'a.b', true],
    ['a.b', 'axb', false],
    ['a[-.]b', 'a-b', true],
    ['a[.-]b', 'a.b', true],
    ['a**b', 'ab', true],
    ['kube-system', 'kube-system', true],
  ];
  for (const [pattern, name, expected] of cases) {
    it(`${expected ? 'matches' : 'does not match'} ${name} against ${pattern}`, () => {
      assert.equal(matchesGlob(name, pattern), expected);
    });
  }

  it('tells names from globs', () => {
    assert.equal(isGlob('team-a'), false);
    assert.equal(isGlob('team-*'), true);
    assert.equal(isGlob('team-?'), true);
    assert.equal(isGlob('team-[ab]'), true);
  });
});

describe('glob syntax errors', () => {
  const bad: readonly [pattern: string, problem: string][] = [
    ['team-[ab', 'unbalanced "[" at position 5'],
    ['team-]', 'unbalanced "]" at position 5'],
    ['team-[]', 'empty character class'],
    ['team-[!]', 'empty character class'],
    ['team-[z-a]', 'reversed range "z-a"'],
    ['Team-*', 'character "T" cannot appear in a Kubernetes name'],
    ['team_*', 'character "_" cannot appear'],
    ['team-[A-Z]', 'character "A" cannot appear'],
    ['team/*', 'character "/" cannot appear'],
    ['', 'empty pattern'],
  ];
  for (const [pattern, problem] of bad) {
    it(`rejects ${JSON.stringify(pattern)}`, () => {
      assert.ok(globSyntaxError(pattern)?.includes(problem), globSyntaxError(pattern));
      assert.throws(() => compileGlob(pattern), ConfigError);
    });
  }
});

const nameChar = fc.constantFrom('a', 'b', 'c', '0', '1', '-', '.');
const nameArb = fc
  .tuple(fc.constantFrom('a', 'b', 'c', '0'), fc.array(nameChar, { maxLength: 10 }))
  .map(([first, rest]) => first + rest.join(''));
const classArb = fc
  .tuple(
    fc.boolean(),
    fc.array(fc.constantFrom('a', 'b', 'c', '0', '1', 'a-c', '0-9', '.'), { minLength: 1, maxLength: 3 }),
  )
  .map(([negate, items]) => `[${negate ? '!' : ''}${items.join('')}]`);
const tokenArb = fc.oneof(nameChar, nameChar, fc.constant('*'), fc.constant('?'), classArb);
// Start like a name: minimatch (the reference) treats a leading "." specially.
const patternArb = fc
  .tuple(fc.oneof(fc.constantFrom('a', 'b', '0', '*', '?'), classArb), fc.array(tokenArb, { maxLength: 6 }))
  .map(([first, rest]) => first + rest.join(''));

describe('glob properties', () => {
  it('agree with path.matchesGlob on generated names', () => {
    fc.assert(
      fc.property(patternArb, nameArb, (pattern, name) => {
        assert.equal(globSyntaxError(pattern), undefined);
        assert.equal(matchesGlob(name, pattern), path.matchesGlob(name, pattern), `${name} vs ${pattern}`);
      }),
      { numRuns: 2000 },
    );
  });

  it('match every name against itself, as a plain name', () => {
    fc.assert(fc.property(nameArb, (name) => matchesGlob(name, name)));
  });
});

// ---------------------------------------------------------------------------
// Label selectors

const selector = (partial: Partial<LabelSelector>): LabelSelector => ({
  matchLabels: {},
  matchExpressions: [],
  ...partial,
});
const req = (key: string, operator: LabelSelectorRequirement['operator'], values: string[] = []) => ({
  key,
  operator,
  values,
});

describe('label selector semantics', () => {
  const labels = { team: 'b', tier: 'prod' };
  const cases: readonly [string, LabelSelector, Record<string, string>, boolean][] = [
    ['an empty selector matches anything', selector({}), {}, true],
    ['matchLabels matches an equal value', selector({ matchLabels: { team: 'b' } }), labels, true],
    ['matchLabels does not match another value', selector({ matchLabels: { team: 'a' } }), labels, false],
    ['matchLabels does not match an absent key', selector({ matchLabels: { team: 'b' } }), {}, false],
    ['matchLabels needs every pair', selector({ matchLabels: { team: 'b', tier: 'dev' } }), labels, false],
    [
      'In matches a listed value',
      selector({ matchExpressions: [req('team', 'In', ['a', 'b'])] }),
      labels,
      true,
    ],
    [
      'In does not match an absent key',
      selector({ matchExpressions: [req('team', 'In', ['a'])] }),
      {},
      false,
    ],
    [
      'NotIn matches when the key is absent',
      selector({ matchExpressions: [req('team', 'NotIn', ['b'])] }),
      {},
      true,
    ],
    [
      'NotIn does not match a listed value',
      selector({ matchExpressions: [req('team', 'NotIn', ['b'])] }),
      labels,
      false,
    ],
    [
      'NotIn matches another value',
      selector({ matchExpressions: [req('team', 'NotIn', ['a'])] }),
      labels,
      true,
    ],
    [
      'Exists matches an empty value',
      selector({ matchExpressions: [req('team', 'Exists')] }),
      { team: '' },
      true,
    ],
    [
      'Exists does not match an absent key',
      selector({ matchExpressions: [req('team', 'Exists')] }),
      {},
      false,
    ],
    [
      'DoesNotExist matches an absent key',
      selector({ matchExpressions: [req('team', 'DoesNotExist')] }),
      {},
      true,
    ],
    [
      'DoesNotExist does not match a present key',
      selector({ matchExpressions: [req('team', 'DoesNotExist')] }),
      labels,
      false,
    ],
    [
      'does not find inherited properties',
      selector({ matchExpressions: [req('constructor', 'Exists')] }),
      {},
      false,
    ],
    [
      'needs matchLabels and every expression',
      selector({
        matchLabels: { team: 'b' },
        matchExpressions: [req('tier', 'In', ['prod']), req('x', 'Exists')],
      }),
      labels,
      false,
    ],
  ];
  for (const [description, sel, nsLabels, expected] of cases) {
    it(description, () => assert.equal(matchesLabelSelector(nsLabels, sel), expected));
  }
});

const keyArb = fc.constantFrom('team', 'tier', 'app.kubernetes.io/name', 'constructor');
const valueArb = fc.constantFrom('', 'a', 'b', 'prod');
const labelsArb = fc.dictionary(keyArb, valueArb);
const valuesArb = fc.uniqueArray(valueArb, { minLength: 1, maxLength: 3 });
const requirementArb: fc.Arbitrary<LabelSelectorRequirement> = fc.oneof(
  fc.record({ key: keyArb, operator: fc.constantFrom('In' as const, 'NotIn' as const), values: valuesArb }),
  fc.record({
    key: keyArb,
    operator: fc.constantFrom('Exists' as const, 'DoesNotExist' as const),
    values: fc.constant([]),
  }),
);

describe('label selector properties', () => {
  it('NotIn is the negation of In, and DoesNotExist of Exists', () => {
    fc.assert(
      fc.property(labelsArb, keyArb, valuesArb, (labels, key, values) => {
        const inSel = matchesLabelSelector(labels, selector({ matchExpressions: [req(key, 'In', values)] }));
        const notIn = matchesLabelSelector(
          labels,
          selector({ matchExpressions: [req(key, 'NotIn', values)] }),
        );
        assert.equal(notIn, !inSel);
        const exists = matchesLabelSelector(labels, selector({ matchExpressions: [req(key, 'Exists')] }));
        const missing = matchesLabelSelector(
          labels,
          selector({ matchExpressions: [req(key, 'DoesNotExist')] }),
        );
        assert.equal(missing, !exists);
        assert.equal(exists, Object.hasOwn(labels, key));
      }),
    );
  });

  it('matchLabels {k: v} means In(k, [v])', () => {
    fc.assert(
      fc.property(labelsArb, keyArb, valueArb, (labels, key, value) => {
        assert.equal(
          matchesLabelSelector(labels, selector({ matchLabels: { [key]: value } })),
          matchesLabelSelector(labels, selector({ matchExpressions: [req(key, 'In', [value])] })),
        );
      }),
    );
  });

  it('a selector matches exactly when each of its requirements does', () => {
    fc.assert(
      fc.property(labelsArb, fc.array(requirementArb, { maxLength: 4 }), (labels, requirements) => {
        const whole = matchesLabelSelector(labels, selector({ matchExpressions: requirements }));
        const each = requirements.every((r) =>
          matchesLabelSelector(labels, selector({ matchExpressions: [r] })),
        );
        assert.equal(whole, each);
      }),
    );
  });
});

// ---------------------------------------------------------------------------
// selectNamespace

/** A selection as the configuration produces it, from the YAML-level fields. */
function selection(namespaces: Record<string, unknown> = {}): NamespaceSelection {
  const config = parseConfig(
    { mappings: [{ secretName: 'regcred', source: { file: 'x' }, namespaces }] },
    'test',
  );
  return config.mappings[0]!.namespaces;
}

const ns = (name: string, more: Partial<NamespaceInfo> = {}): NamespaceInfo => ({
  name,
  labels: {},
  annotations: {},
  terminating: false,
  ...more,
});

describe('selectNamespace', () => {
  const cases: readonly [string, NamespaceInfo, NamespaceSelection, true | SkipReason][] = [
    ['selects an ordinary namespace by default', ns('team-a'), selection(), true],
    ['selects default by default', ns('default'), selection(), true],
    [
      'skips a terminating namespace quietly',
      ns('team-a', { terminating: true }),
      selection(),
      'terminating',
    ],
    [
      'skips a terminating namespace even when it is included by name',
      ns('team-a', { terminating: true }),
      selection({ include: ['team-a'] }),
      'terminating',
    ],
    [
      'honours the opt-out annotation',
      ns('team-a', { annotations: { [EXCLUDE_ANNOTATION]: 'true' } }),
      selection(),
      'opted-out',
    ],
    [
      "honours the original tool's opt-out annotation",
      ns('team-a', { annotations: { [LEGACY_EXCLUDE_ANNOTATION]: 'true' } }),
      selection(),
      'opted-out',
    ],
    [
      'ignores an opt-out annotation that is not exactly "true"',
      ns('team-a', { annotations: { [EXCLUDE_ANNOTATION]: 'yes' } }),
      selection(),
      true,
    ],
    [
      'lets opt-out win over an explicit include',
      ns('team-a', { annotations: { [EXCLUDE_ANNOTATION]: 'true' } }),
      selection({ include: ['team-a'] }),
      'opted-out',
    ],
    ['excludes by name', ns('team-a'), selection({ exclude: ['team-a'] }), 'excluded'],
    ['excludes by glob', ns('team-a-dev'), selection({ exclude: ['*-dev'] }), 'excluded'],
    [
      'lets exclude win over include',
      ns('team-a'),
      selection({ include: ['team-*'], exclude: ['team-a'] }),
      'excluded',
    ],
    ['skips kube-system by default', ns('kube-system'), selection(), 'system'],
    ['skips kube-public by default', ns('kube-public'), selection(), 'system'],
    ['skips kube-node-lease by default', ns('kube-node-lease'), selection(), 'system'],
    [
      'selects kube-system when named exactly in include',
      ns('kube-system'),
      selection({ include: ['kube-system'] }),
      true,
    ],
    [
      'does not bring kube-system in with a glob',
      ns('kube-system'),
      selection({ include: ['kube-*'] }),
      'system',
    ],
    [
      'selects kube-system when excludeSystem is false',
      ns('kube-system'),
      selection({ excludeSystem: false }),
      true,
    ],
    ['does not treat other kube-* namespaces as system', ns('kube-flannel'), selection(), true],
    ['skips a namespace outside include', ns('team-b'), selection({ include: ['team-a*'] }), 'not-included'],
    [
      'selects a namespace matching an include glob',
      ns('team-a-dev'),
      selection({ include: ['team-a*'] }),
      true,
    ],
    [
      'skips a namespace whose labels do not match the selector',
      ns('team-b', { labels: { team: 'a' } }),
      selection({ selector: { matchLabels: { team: 'b' } } }),
      'selector',
    ],
    [
      'selects a namespace whose labels match the selector',
      ns('anything', { labels: { team: 'b' } }),
      selection({ selector: { matchLabels: { team: 'b' } } }),
      true,
    ],
    [
      'needs both include and selector to match',
      ns('team-a', { labels: { team: 'b' } }),
      selection({ include: ['team-b*'], selector: { matchLabels: { team: 'b' } } }),
      'not-included',
    ],
  ];
  for (const [description, namespace, sel, expected] of cases) {
    it(description, () => {
      const decision = selectNamespace(namespace, sel);
      assert.deepEqual(
        decision,
        expected === true ? { selected: true } : { selected: false, reason: expected },
      );
    });
  }

  it('reports every skip reason from the published list', () => {
    assert.deepEqual(Object.values(SKIP_REASONS).sort(), [
      'excluded',
      'not-included',
      'opted-out',
      'selector',
      'system',
      'terminating',
    ]);
  });
});

describe('isOptedOut', () => {
  it('ignores the legacy annotation when asked to (service accounts)', () => {
    assert.equal(isOptedOut({ [LEGACY_EXCLUDE_ANNOTATION]: 'true' }, { legacy: false }), false);
    assert.equal(isOptedOut({ [EXCLUDE_ANNOTATION]: 'true' }, { legacy: false }), true);
  });
});
