import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { LabelSelector, LabelSelectorRequirement, NamespaceSelection } from '../lib/config.ts';
import { parseConfig } from '../lib/config.ts';
import { ConfigError } from '../lib/errors.ts';
import { compileGlob, globSyntaxError, isGlob, matchesGlob, shortestMatch } from '../lib/glob.ts';
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

// ---------------------------------------------------------------------------
// Properties of the selection, against a reference written from the documented rules

/**
 * Kubernetes label selector semantics on the set of (key, value) pairs, the
 * way the API reference states them: In holds when some listed value is paired
 * with the key, NotIn when none is, Exists when the key has any pair,
 * DoesNotExist when it has none, and matchLabels {k: v} is In(k, [v]).
 */
function referenceSelector(labels: Record<string, string>, sel: LabelSelector): boolean {
  const pairs = Object.entries(labels);
  const paired = (key: string, values: readonly string[]) =>
    pairs.some(([k, v]) => k === key && values.includes(v));
  const present = (key: string) => pairs.some(([k]) => k === key);
  const holds = (r: LabelSelectorRequirement) =>
    ({
      In: () => paired(r.key, r.values),
      NotIn: () => !paired(r.key, r.values),
      Exists: () => present(r.key),
      DoesNotExist: () => !present(r.key),
    })[r.operator]();
  return (
    Object.entries(sel.matchLabels).every(([key, value]) => paired(key, [value])) &&
    sel.matchExpressions.every(holds)
  );
}

const SYSTEM = ['kube-system', 'kube-public', 'kube-node-lease'];
const OPT_OUTS = [EXCLUDE_ANNOTATION, LEGACY_EXCLUDE_ANNOTATION];

/** docs/configuration.md's rules in order, with path.matchesGlob for the globs. */
function referenceDecision(namespace: NamespaceInfo, sel: NamespaceSelection): true | SkipReason {
  const matches = (patterns: readonly string[]) => patterns.some((p) => path.matchesGlob(namespace.name, p));
  if (namespace.terminating) return 'terminating';
  if (Object.entries(namespace.annotations).some(([k, v]) => OPT_OUTS.includes(k) && v === 'true'))
    return 'opted-out';
  if (matches(sel.exclude)) return 'excluded';
  if (sel.excludeSystem && SYSTEM.includes(namespace.name) && !sel.include.includes(namespace.name))
    return 'system';
  if (sel.include.length > 0 && !matches(sel.include)) return 'not-included';
  if (sel.selector && !referenceSelector({ ...namespace.labels }, sel.selector)) return 'selector';
  return true;
}

const labelKeyArb = fc.constantFrom('team', 'tier', 'app.kubernetes.io/name', 'constructor', 'toString');
const labelValueArb = fc.constantFrom('', 'a', 'b', 'prod');
const anyRequirementArb: fc.Arbitrary<LabelSelectorRequirement> = fc.oneof(
  fc.record({
    key: labelKeyArb,
    operator: fc.constantFrom('In' as const, 'NotIn' as const),
    values: fc.uniqueArray(labelValueArb, { minLength: 1, maxLength: 3 }),
  }),
  fc.record({
    key: labelKeyArb,
    operator: fc.constantFrom('Exists' as const, 'DoesNotExist' as const),
    values: fc.constant([]),
  }),
);
const labelSelectorArb: fc.Arbitrary<LabelSelector> = fc.record({
  matchLabels: fc.dictionary(labelKeyArb, labelValueArb, { maxKeys: 2 }),
  matchExpressions: fc.array(anyRequirementArb, { maxLength: 3 }),
});
const namespaceNameArb = fc.oneof(nameArb, fc.constantFrom(...SYSTEM, 'kube-flannel', 'default'));
const annotationsArb = fc.dictionary(
  fc.constantFrom(EXCLUDE_ANNOTATION, LEGACY_EXCLUDE_ANNOTATION, 'other.example.com/note'),
  fc.constantFrom('true', 'false', 'True', ''),
  { maxKeys: 2 },
);
const namespaceArb: fc.Arbitrary<NamespaceInfo> = fc.record({
  name: namespaceNameArb,
  labels: fc.dictionary(labelKeyArb, labelValueArb, { maxKeys: 3 }),
  annotations: annotationsArb,
  terminating: fc.constantFrom(false, false, false, true),
});
const patternsArb = fc.array(fc.oneof(patternArb, namespaceNameArb), { maxLength: 3 });
const selectionArb: fc.Arbitrary<NamespaceSelection> = fc
  .record({
    include: patternsArb,
    exclude: patternsArb,
    excludeSystem: fc.boolean(),
    selector: fc.option(labelSelectorArb, { nil: undefined }),
  })
  .map(({ selector, ...rest }) => (selector === undefined ? rest : { ...rest, selector }));

describe('selection properties', () => {
  it('label selectors agree with the reference evaluation for every operator', () => {
    fc.assert(
      fc.property(fc.dictionary(labelKeyArb, labelValueArb), labelSelectorArb, (labels, sel) => {
        assert.equal(matchesLabelSelector(labels, sel), referenceSelector(labels, sel));
      }),
      { numRuns: 2000 },
    );
  });

  it('selectNamespace agrees with the documented rules, reason and all', () => {
    fc.assert(
      fc.property(namespaceArb, selectionArb, (namespace, sel) => {
        const expected = referenceDecision(namespace, sel);
        assert.deepEqual(
          selectNamespace(namespace, sel),
          expected === true ? { selected: true } : { selected: false, reason: expected },
        );
      }),
      { numRuns: 3000 },
    );
  });

  it('exclude always wins, whatever include, excludeSystem and the selector say', () => {
    fc.assert(
      fc.property(
        namespaceArb,
        selectionArb,
        fc.constantFrom('name', '*', 'prefix'),
        (namespace, sel, how) => {
          const pattern =
            how === 'name' ? namespace.name : how === '*' ? '*' : `${namespace.name.slice(0, 1)}*`;
          const decision = selectNamespace(namespace, {
            ...sel,
            include: [...sel.include, namespace.name],
            exclude: [...sel.exclude, pattern],
          });
          assert.equal(decision.selected, false);
        },
      ),
    );
  });

  it('an opt-out annotation set to "true" always excludes, even a namespace named in include', () => {
    fc.assert(
      fc.property(namespaceArb, selectionArb, fc.constantFrom(...OPT_OUTS), (namespace, sel, annotation) => {
        const optedOut = { ...namespace, annotations: { ...namespace.annotations, [annotation]: 'true' } };
        const decision = selectNamespace(optedOut, { ...sel, include: [namespace.name], exclude: [] });
        assert.deepEqual(decision, {
          selected: false,
          reason: namespace.terminating ? 'terminating' : 'opted-out',
        });
      }),
    );
  });

  it('a decision depends on the namespace alone, not on the others or their order', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(namespaceArb, { selector: (n) => n.name, maxLength: 8 }),
        selectionArb,
        fc.integer({ min: 0 }),
        (namespaces, sel, seed) => {
          const selected = (list: readonly NamespaceInfo[]) =>
            list
              .filter((n) => selectNamespace(n, sel).selected)
              .map((n) => n.name)
              .sort();
          const k = namespaces.length === 0 ? 0 : seed % namespaces.length;
          const reordered = [...namespaces.slice(k), ...namespaces.slice(0, k)].reverse();
          assert.deepEqual(selected(reordered), selected(namespaces));
        },
      ),
    );
  });
});

describe('shortestMatch', () => {
  it('counts every token but *', () => {
    assert.equal(shortestMatch('team-[ab]*'), 6);
    assert.equal(shortestMatch('*'), 0);
    assert.equal(shortestMatch('a?[!a-c]**b'), 4);
  });

  it('is a lower bound on the length of every name a glob matches, and is reached', () => {
    fc.assert(
      fc.property(patternArb, nameArb, (pattern, name) => {
        if (matchesGlob(name, pattern))
          assert.ok(name.length >= shortestMatch(pattern), `${name} vs ${pattern}`);
        // Dropping the stars and picking one character per other token gives a match of exactly that length.
        const witness = pattern
          .replaceAll('*', '')
          .replace(/\[(!?)([^\]]*)\]|\?/g, (token, negate: string | undefined, body: string | undefined) => {
            if (token === '?') return 'a';
            const candidates = ['a', 'b', 'c', '0', '1', '9', '.', 'x', 'z'];
            return candidates.find((c) => matchesGlob(c, `[${negate ?? ''}${body ?? ''}]`)) ?? 'a';
          });
        assert.equal(witness.length, shortestMatch(pattern));
        assert.ok(matchesGlob(witness, pattern), `${witness} vs ${pattern}`);
      }),
      { numRuns: 1000 },
    );
  });
});
