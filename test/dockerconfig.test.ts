import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { contentHash, parseDockerConfig, serializeDockerConfig } from '../lib/dockerconfig.ts';
import { SourceError } from '../lib/errors.ts';

const ORIGIN = 'secretsManager:prod/regcred';
const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/** Runs `fn`, expecting a SourceError, and returns its message. */
function sourceErrorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof SourceError, `expected SourceError, got ${String(error)}`);
    assert.equal(error.code, 'SOURCE_INVALID');
    return error.message;
  }
  assert.fail('expected parseDockerConfig to throw');
}

describe('parseDockerConfig accepts', () => {
  it('a full docker config with auth only', () => {
    const cfg = parseDockerConfig(
      JSON.stringify({ auths: { 'ghcr.io': { auth: b64('bot:s3cret') } } }),
      ORIGIN,
    );
    assert.deepEqual(cfg, { auths: { 'ghcr.io': { auth: b64('bot:s3cret') } } });
  });

  it('a full docker config with username and password, adding auth', () => {
    const cfg = parseDockerConfig({ auths: { 'ghcr.io': { username: 'bot', password: 's3cret' } } }, ORIGIN);
    assert.deepEqual(cfg.auths['ghcr.io'], { username: 'bot', password: 's3cret', auth: b64('bot:s3cret') });
  });

  it('auth beside username and password when they agree', () => {
    const entry = { username: 'bot', password: 'p:w', email: 'a@b.c', auth: b64('bot:p:w') };
    const cfg = parseDockerConfig({ auths: { 'ghcr.io': entry } }, ORIGIN);
    assert.deepEqual(cfg.auths['ghcr.io'], entry);
  });

  it('the {registry, username, password, email} form', () => {
    const cfg = parseDockerConfig(
      '{"registry":"registry.example.com:5000","username":"u","password":"p","email":"u@example.com"}',
      ORIGIN,
    );
    assert.deepEqual(cfg, {
      auths: {
        'registry.example.com:5000': {
          username: 'u',
          password: 'p',
          email: 'u@example.com',
          auth: b64('u:p'),
        },
      },
    });
  });

  it('a list of registries', () => {
    const cfg = parseDockerConfig(
      [
        { registry: 'ghcr.io', username: 'a', password: 'pa' },
        { registry: 'docker.io', username: 'b', password: 'pb' },
      ],
      ORIGIN,
    );
    assert.deepEqual(Object.keys(cfg.auths).sort(), ['docker.io', 'ghcr.io']);
  });

  it('a docker CLI config.json, dropping settings that are not credentials', () => {
    const cfg = parseDockerConfig(
      { auths: { 'ghcr.io': { auth: b64('u:p'), identitytoken: 'x' } }, HttpHeaders: { 'User-Agent': 'x' } },
      ORIGIN,
    );
    assert.deepEqual(cfg, { auths: { 'ghcr.io': { auth: b64('u:p') } } });
  });

  it('a registry named like an integer or __proto__ as plain data', () => {
    const cfg = parseDockerConfig('{"auths":{"__proto__":{"auth":"dTpw"},"5000":{"auth":"dTpw"}}}', ORIGIN);
    assert.deepEqual(Object.keys(cfg.auths).sort(), ['5000', '__proto__']);
    assert.equal(
      serializeDockerConfig(cfg),
      '{"auths":{"5000":{"auth":"dTpw"},"__proto__":{"auth":"dTpw"}}}',
    );
  });
});

const big = 'x'.repeat(64 * 1024 + 1);

/** [description, input, path expected in the message, problem expected in the message] */
const malformed: readonly [string, unknown, string, string][] = [
  ['text that is not JSON', '{"auths": {', '', 'not valid JSON'],
  ['empty text', '', '', 'not valid JSON'],
  ['a JSON string', '"hello"', '', 'expected a JSON object or array, got a string'],
  ['a number', 42, '', 'got a number'],
  ['null', null, '', 'got null'],
  ['an object of neither form', { foo: 1 }, '', 'expected {"auths"'],
  ['auths that is not an object', { auths: [] }, 'auths: ', 'expected an object, got an array'],
  ['empty auths', { auths: {} }, 'auths: ', 'is empty'],
  [
    'an auths entry that is a string',
    { auths: { 'ghcr.io': 'dTpw' } },
    'auths["ghcr.io"]: ',
    'expected an object',
  ],
  [
    'an auths entry without credentials',
    { auths: { 'ghcr.io': { email: 'e' } } },
    'auths["ghcr.io"]: ',
    'missing',
  ],
  [
    'auth that is not base64',
    { auths: { 'ghcr.io': { auth: 'not base64!' } } },
    'auths["ghcr.io"].auth: ',
    'not valid base64',
  ],
  [
    'auth without padding',
    { auths: { 'ghcr.io': { auth: 'dTpwdw' } } },
    'auths["ghcr.io"].auth: ',
    'not valid base64',
  ],
  [
    'auth without a colon',
    { auths: { 'ghcr.io': { auth: b64('nocolon') } } },
    'auths["ghcr.io"].auth: ',
    'username:password',
  ],
  [
    'auth with an empty user',
    { auths: { 'ghcr.io': { auth: b64(':pw') } } },
    'auths["ghcr.io"].auth: ',
    'empty username',
  ],
  [
    'auth with an empty password',
    { auths: { 'ghcr.io': { auth: b64('u:') } } },
    'auths["ghcr.io"].auth: ',
    'empty password',
  ],
  ['empty auth', { auths: { 'ghcr.io': { auth: '' } } }, 'auths["ghcr.io"].auth: ', 'must not be empty'],
  [
    'auth that is not UTF-8',
    { auths: { r: { auth: Buffer.from([0xff, 0x3a, 0x61]).toString('base64') } } },
    'auths["r"].auth: ',
    'UTF-8',
  ],
  [
    'auth that disagrees with username and password',
    { auths: { 'ghcr.io': { username: 'u', password: 'p', auth: b64('u:q') } } },
    'auths["ghcr.io"].auth: ',
    'does not match',
  ],
  [
    'a password without a username',
    { auths: { 'ghcr.io': { password: 'p' } } },
    'auths["ghcr.io"].username: ',
    'missing',
  ],
  [
    'a non-string username',
    { auths: { 'ghcr.io': { username: 1, password: 'p' } } },
    'auths["ghcr.io"].username: ',
    'expected a string',
  ],
  [
    'a non-string email',
    { registry: 'r', username: 'u', password: 'p', email: null },
    'email: ',
    'expected a string',
  ],
  [
    'a registry key with whitespace',
    { auths: { 'ghcr.io ': { auth: b64('u:p') } } },
    'auths["ghcr.io "]: ',
    'whitespace',
  ],
  ['an empty registry key', { auths: { '': { auth: b64('u:p') } } }, 'auths[""]: ', 'must not be empty'],
  [
    'forms mixed at the top level',
    { auths: { r: { auth: b64('u:p') } }, username: 'u' },
    'username: ',
    'not allowed',
  ],
  ['a missing password', { registry: 'r', username: 'u' }, 'password: ', 'missing'],
  ['a missing registry in a list item', [{ username: 'u', password: 'p' }], '[0].registry: ', 'missing'],
  ['an empty registry', { registry: '', username: 'u', password: 'p' }, 'registry: ', 'must not be empty'],
  [
    'a registry with whitespace',
    { registry: 'ghcr .io', username: 'u', password: 'p' },
    'registry: ',
    'whitespace',
  ],
  ['an empty username', { registry: 'r', username: '', password: 'p' }, 'username: ', 'must not be empty'],
  ['an empty password', { registry: 'r', username: 'u', password: '' }, 'password: ', 'must not be empty'],
  [
    'a username with a colon',
    { registry: 'r', username: 'a:b', password: 'p' },
    'username: ',
    'must not contain ":"',
  ],
  [
    'an unknown key',
    { registry: 'r', username: 'u', password: 'p', server: 'x' },
    '',
    'unknown key "server"',
  ],
  ['a misspelt password key', { registry: 'r', username: 'u', pasword: 'p' }, '', 'unknown key "pasword"'],
  ['an empty list', [], '', 'empty list'],
  [
    'a sparse list (an already-parsed value)',
    Object.assign([] as unknown[], { 1: { registry: 'r', username: 'u', password: 'p' } }),
    '[0]: ',
    'expected an object, got undefined',
  ],
  [
    'a list holding a non-object',
    [{ registry: 'r', username: 'u', password: 'p' }, 'x'],
    '[1]: ',
    'expected an object',
  ],
  [
    'an unknown key in a list item',
    [{ registry: 'r', username: 'u', password: 'p', auth: 'x' }],
    '[0]: ',
    'unknown key "auth"',
  ],
  [
    'a duplicate registry in a list',
    [
      { registry: 'r', username: 'u', password: 'p' },
      { registry: 'r', username: 'v', password: 'q' },
    ],
    '[1].registry: ',
    'duplicate registry "r" (also [0])',
  ],
  [
    'a value longer than 64 KiB',
    { registry: 'r', username: 'u', password: big },
    'password: ',
    'longer than 64 KiB',
  ],
  ['text larger than 512 KiB', ' '.repeat(512 * 1024 + 1), '', 'larger than 512 KiB'],
  [
    'a config larger than 512 KiB in total',
    Array.from({ length: 10 }, (_, i) => ({
      registry: `r${i}`,
      username: 'u',
      password: 'p'.repeat(60_000),
    })),
    '',
    'larger than 512 KiB',
  ],
];

describe('parseDockerConfig rejects', () => {
  for (const [description, input, path, problem] of malformed) {
    it(`${description}, naming the field`, () => {
      const message = sourceErrorOf(() => parseDockerConfig(input, ORIGIN));
      assert.ok(message.startsWith(`source "${ORIGIN}": ${path}`), message);
      assert.ok(message.includes(problem), message);
    });
  }

  it('invalid JSON without quoting the text or keeping the parser error as cause', () => {
    const text = '{"registry":"r","username":"u","password":"hunter2hunter2"';
    try {
      parseDockerConfig(text, ORIGIN);
      assert.fail('expected a SourceError');
    } catch (error) {
      assert.ok(error instanceof SourceError);
      assert.ok(!error.message.includes('hunter2'));
      assert.equal(error.cause, undefined);
    }
  });

  it('a password pasted into auth without echoing it', () => {
    const message = sourceErrorOf(() =>
      parseDockerConfig({ auths: { r: { auth: 'Sup3r$ecret!' } } }, ORIGIN),
    );
    assert.ok(!message.includes('Sup3r'), message);
  });
});

// ---------------------------------------------------------------------------
// Properties

const registryArb = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,20}(:[0-9]{1,5})?$/);
/** Non-empty text, may hold ':' and any Unicode. */
const secretTextArb = fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' });
const credentialArb = fc.record(
  {
    registry: registryArb,
    username: fc.string({ minLength: 1, maxLength: 20 }).filter((u) => !u.includes(':')),
    password: secretTextArb,
    email: fc.emailAddress(),
  },
  { requiredKeys: ['registry', 'username', 'password'] },
);
const credentialListArb = fc.uniqueArray(credentialArb, {
  minLength: 1,
  maxLength: 5,
  selector: (c) => c.registry,
});

describe('parseDockerConfig properties', () => {
  it('serialize after parse round-trips and is a fixed point', () => {
    fc.assert(
      fc.property(credentialListArb, (credentials) => {
        const cfg = parseDockerConfig(credentials, ORIGIN);
        const text = serializeDockerConfig(cfg);
        const again = parseDockerConfig(text, ORIGIN);
        assert.deepEqual(again, cfg);
        assert.equal(serializeDockerConfig(again), text);
      }),
    );
  });

  it('gives byte-identical output whatever the order and shape of the input', () => {
    fc.assert(
      fc.property(credentialListArb, fc.integer(), (credentials, seed) => {
        const shuffled = [...credentials].sort(
          (a, b) => ((a.registry.length * seed) % 7) - ((b.registry.length * seed) % 7),
        );
        const auths = Object.fromEntries(shuffled.map(({ registry, ...entry }) => [registry, entry]));
        const fromList = serializeDockerConfig(parseDockerConfig(credentials, ORIGIN));
        assert.equal(serializeDockerConfig(parseDockerConfig(shuffled, ORIGIN)), fromList);
        assert.equal(serializeDockerConfig(parseDockerConfig({ auths }, ORIGIN)), fromList);
        assert.equal(
          contentHash(serializeDockerConfig(parseDockerConfig(JSON.stringify({ auths }), ORIGIN))),
          contentHash(fromList),
        );
      }),
    );
  });

  it('never throws anything but SourceError on arbitrary JSON', () => {
    const nearMiss = fc.oneof(
      fc.jsonValue(),
      fc.record({ auths: fc.dictionary(fc.string(), fc.jsonValue()) }),
      fc.record({
        auths: fc.dictionary(
          fc.string(),
          fc.dictionary(fc.constantFrom('auth', 'username', 'password', 'email'), fc.jsonValue()),
        ),
      }),
      fc.array(
        fc.dictionary(fc.constantFrom('registry', 'username', 'password', 'email', 'x'), fc.jsonValue()),
      ),
    );
    fc.assert(
      fc.property(nearMiss, fc.boolean(), (value, asText) => {
        try {
          parseDockerConfig(asText ? JSON.stringify(value) : value, ORIGIN);
        } catch (error) {
          assert.ok(error instanceof SourceError, String(error));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('never throws anything but SourceError on arbitrary text', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        try {
          parseDockerConfig(text, ORIGIN);
        } catch (error) {
          assert.ok(error instanceof SourceError, String(error));
        }
      }),
    );
  });

  it('never puts the password, or its auth, in an error message', () => {
    // The marker keeps the generated password from colliding with message words.
    const passwordArb = secretTextArb.map((s) => `Þ${s}`);
    const corruptions: readonly ((c: { registry: string; username: string; password: string }) => unknown)[] =
      [
        (c) => ({ ...c, extra: c.password }),
        (c) => ({ ...c, email: 7 }),
        (c) => ({ ...c, username: '' }),
        (c) => [c, c],
        (c) => ({
          auths: {
            [c.registry]: {
              username: c.username,
              password: c.password,
              auth: b64(`x${c.username}:${c.password}`),
            },
          },
        }),
        (c) => ({ auths: { [c.registry]: { auth: c.password } } }),
        (c) => ({ auths: { [c.registry]: { auth: `${b64(`${c.username}:${c.password}`)}!` } } }),
        (c) => ({ auths: { [c.registry]: { auth: b64(c.password.replaceAll(':', '')) } } }),
        (c) => JSON.stringify(c).slice(0, -1),
        (c) => `${JSON.stringify(c)}${c.password}`,
        (c) => ({ auths: { [c.registry]: { password: c.password } } }),
        (c) => ({ ...c, password: `${c.password}${'x'.repeat(64 * 1024)}` }),
      ];
    fc.assert(
      fc.property(
        credentialArb,
        passwordArb,
        fc.nat(corruptions.length - 1),
        (credential, password, which) => {
          const c = { ...credential, password };
          const message = sourceErrorOf(() => parseDockerConfig(corruptions[which]!(c), ORIGIN));
          assert.ok(!message.includes(password), message);
          assert.ok(!message.includes(b64(`${c.username}:${password}`)), message);
        },
      ),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------
// Round trips through every accepted shape

type Credential = { registry: string; username: string; password: string; email?: string };

/** The shapes a source may hold the same credentials in (the registry forms only without auth fields). */
const SHAPES = {
  'auths with auth': (cs: readonly Credential[]) => ({
    auths: Object.fromEntries(
      cs.map((c) => [
        c.registry,
        { auth: b64(`${c.username}:${c.password}`), ...(c.email !== undefined && { email: c.email }) },
      ]),
    ),
  }),
  'auths with username and password': (cs: readonly Credential[]) => ({
    auths: Object.fromEntries(cs.map(({ registry, ...entry }) => [registry, entry])),
  }),
  'auths with auth, username and password': (cs: readonly Credential[]) => ({
    auths: Object.fromEntries(
      cs.map(({ registry, ...entry }) => [
        registry,
        { ...entry, auth: b64(`${entry.username}:${entry.password}`) },
      ]),
    ),
  }),
  'a list of registries': (cs: readonly Credential[]) => cs,
  'one registry object': (cs: readonly Credential[]) => cs[0]!,
} as const;
type Shape = keyof typeof SHAPES;
const shapeArb = fc.constantFrom(...(Object.keys(SHAPES) as Shape[]));

/** Re-serialises a value with the keys of every object in a random order. */
function withShuffledKeys(value: unknown, order: (keys: string[]) => string[]): string {
  if (Array.isArray(value)) return `[${value.map((v) => withShuffledKeys(v, order)).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    const parts = order(Object.keys(record)).map(
      (k) => `${JSON.stringify(k)}:${withShuffledKeys(record[k], order)}`,
    );
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(value);
}

describe('parseDockerConfig round trips every shape', () => {
  it('parse(render(credentials)) holds exactly the rendered credentials, from a value or from JSON text', () => {
    fc.assert(
      fc.property(credentialListArb, shapeArb, fc.boolean(), (credentials, shape, asText) => {
        const used = shape === 'one registry object' ? credentials.slice(0, 1) : credentials;
        const rendered = SHAPES[shape](used);
        const cfg = parseDockerConfig(asText ? JSON.stringify(rendered) : rendered, ORIGIN);
        assert.deepEqual(Object.keys(cfg.auths).sort(), used.map((c) => c.registry).sort());
        const withNames = shape !== 'auths with auth';
        for (const c of used) {
          const entry = cfg.auths[c.registry]!;
          assert.equal(Buffer.from(entry.auth, 'base64').toString('utf8'), `${c.username}:${c.password}`);
          assert.equal(entry.auth, b64(`${c.username}:${c.password}`));
          assert.equal(entry.email, c.email);
          assert.equal(entry.username, withNames ? c.username : undefined);
          assert.equal(entry.password, withNames ? c.password : undefined);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('canonical output is a fixed point, and the same whatever the key order of the text', () => {
    fc.assert(
      fc.property(credentialListArb, shapeArb, fc.integer(), (credentials, shape, seed) => {
        const rendered = SHAPES[shape](credentials);
        const canonical = serializeDockerConfig(parseDockerConfig(rendered, ORIGIN));
        assert.equal(serializeDockerConfig(parseDockerConfig(canonical, ORIGIN)), canonical);
        // A deterministic shuffle from the seed: rotate and maybe reverse.
        const order = (keys: string[]) => {
          const k = keys.length === 0 ? 0 : Math.abs(seed) % keys.length;
          const rotated = [...keys.slice(k), ...keys.slice(0, k)];
          return seed % 2 === 0 ? rotated : rotated.reverse();
        };
        const shuffled = withShuffledKeys(rendered, order);
        assert.equal(serializeDockerConfig(parseDockerConfig(shuffled, ORIGIN)), canonical);
      }),
      { numRuns: 300 },
    );
  });

  it('normalises an auth whose unused padding bits are set, so equal credentials hash equally', () => {
    const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    fc.assert(
      fc.property(credentialArb, fc.integer({ min: 1, max: 15 }), (c, bits) => {
        const canonicalAuth = b64(`${c.username}:${c.password}`);
        const padding = canonicalAuth.endsWith('==') ? 2 : canonicalAuth.endsWith('=') ? 1 : 0;
        fc.pre(padding > 0);
        // The last data character carries 4 (with "==") or 2 (with "=") bits that decode to nothing.
        const unused = padding === 2 ? 4 : 2;
        const at = canonicalAuth.length - padding - 1;
        const index = ALPHABET.indexOf(canonicalAuth[at]!) | (bits % (1 << unused) || 1);
        const noisy = `${canonicalAuth.slice(0, at)}${ALPHABET[index]}${canonicalAuth.slice(at + 1)}`;
        assert.notEqual(noisy, canonicalAuth);
        const cfg = parseDockerConfig({ auths: { [c.registry]: { auth: noisy } } }, ORIGIN);
        assert.equal(cfg.auths[c.registry]!.auth, canonicalAuth);
      }),
      { numRuns: 300 },
    );
  });

  it('never throws anything but SourceError on any JavaScript value', () => {
    const anything = fc.anything({
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withObjectString: true,
      withSparseArray: true,
      withTypedArray: true,
      withUnicodeString: true,
    });
    fc.assert(
      fc.property(fc.oneof(anything, fc.array(anything), fc.record({ auths: anything })), (value) => {
        try {
          parseDockerConfig(value, ORIGIN);
        } catch (error) {
          assert.ok(error instanceof SourceError, String(error));
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('serializeDockerConfig and contentHash', () => {
  it('orders registries and fields canonically', () => {
    const cfg = {
      auths: {
        'z.io': { auth: 'eDp5', email: 'e', password: 'y', username: 'x' },
        'a.io': { auth: 'dTpw' },
      },
    };
    assert.equal(
      serializeDockerConfig(cfg),
      '{"auths":{"a.io":{"auth":"dTpw"},"z.io":{"username":"x","password":"y","email":"e","auth":"eDp5"}}}',
    );
  });

  it('hashes to 16 hex characters that change with the content', () => {
    const a = contentHash('{"auths":{"a":{"auth":"dTpw"}}}');
    const b = contentHash('{"auths":{"a":{"auth":"dTpx"}}}');
    assert.match(a, /^[0-9a-f]{16}$/);
    assert.notEqual(a, b);
    assert.equal(a, contentHash('{"auths":{"a":{"auth":"dTpw"}}}'));
  });
});
