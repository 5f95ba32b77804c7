/**
 * Registry credentials: parse whatever shape a source holds into one
 * normalised docker config, and serialise it canonically so that equal
 * credentials always produce byte-identical `.dockerconfigjson` values (and so
 * the same content hash, which is how the planner decides nothing changed).
 *
 * Error messages name the source (`origin`, e.g. `secretsManager:prod/regcred`)
 * and the field path, never a value: a credential must not reach a log.
 */
import { createHash } from 'node:crypto';
import { SourceError } from './errors.ts';

/** One registry's credential, normalised: `auth` is always base64(`username:password`). */
export type DockerConfigEntry = {
  readonly username?: string;
  readonly password?: string;
  readonly auth: string;
  readonly email?: string;
};

/** The content of a `kubernetes.io/dockerconfigjson` secret. */
export type DockerConfig = { readonly auths: Readonly<Record<string, DockerConfigEntry>> };

/**
 * Size limits. Kubernetes caps a secret at 1 MiB; we stay well below so the
 * secret with its metadata always fits.
 */
export const DOCKER_CONFIG_LIMITS = {
  /** Longest accepted registry, username, password, auth or email, in UTF-8 bytes. */
  maxValueBytes: 64 * 1024,
  /** Largest accepted source text and serialised docker config, in UTF-8 bytes. */
  maxTotalBytes: 512 * 1024,
} as const;

/** Keys of the `{registry, username, password, email?}` form. */
const REGISTRY_FORM_KEYS = ['registry', 'username', 'password', 'email'] as const;
/** Keys of an `auths` entry that we read; others (identitytoken, serveraddress, ...) are dropped. */
const ENTRY_STRING_KEYS = ['username', 'password', 'auth', 'email'] as const;
/**
 * Top-level keys that mean the author mixed the two forms; any other top-level
 * key beside `auths` (credsStore, HttpHeaders, ...) is docker CLI settings and dropped.
 */
const MIXED_FORM_KEYS = ['registry', 'username', 'password', 'auth', 'email'] as const;

/** Strict standard base64 with padding, as kubelet decodes it (Go's StdEncoding). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const WHITESPACE = /\s/;

type Fail = (path: string, problem: string) => SourceError;

type RawEntry = { username?: string; password?: string; auth?: string; email?: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function typeName(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** Quotes a key for a message; keys are registry names or field names, never values. */
function quoteKey(key: string): string {
  return JSON.stringify(key.length > 100 ? `${key.slice(0, 100)}…` : key);
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function byteLength(value: string): number {
  return Buffer.byteLength(value, 'utf8');
}

function checkString(value: unknown, path: string, fail: Fail): string {
  if (typeof value !== 'string') throw fail(path, `expected a string, got ${typeName(value)}`);
  if (byteLength(value) > DOCKER_CONFIG_LIMITS.maxValueBytes) throw fail(path, 'longer than 64 KiB');
  return value;
}

function checkRegistry(value: unknown, path: string, fail: Fail): string {
  const registry = checkString(value, path, fail);
  if (registry === '') throw fail(path, 'must not be empty');
  if (WHITESPACE.test(registry)) throw fail(path, 'must not contain whitespace');
  return registry;
}

/** Decodes an `auth` value into its user and password, or says what is wrong. */
function decodeAuth(
  auth: string,
  path: string,
  fail: Fail,
): { user: string; password: string; canonical: string } {
  if (!BASE64.test(auth)) throw fail(path, 'not valid base64');
  const bytes = Buffer.from(auth, 'base64');
  let decoded: string;
  try {
    decoded = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw fail(path, 'does not decode to UTF-8 text');
  }
  const colon = decoded.indexOf(':');
  if (colon === -1) throw fail(path, 'does not decode to "username:password"');
  const user = decoded.slice(0, colon);
  const password = decoded.slice(colon + 1);
  if (user === '') throw fail(path, 'decodes to an empty username');
  if (password === '') throw fail(path, 'decodes to an empty password');
  // Re-encoding drops non-zero padding bits, so equal credentials serialise equally.
  return { user, password, canonical: bytes.toString('base64') };
}

function encodeAuth(username: string, password: string): string {
  return Buffer.from(`${username}:${password}`, 'utf8').toString('base64');
}

/**
 * Turns one entry's fields into a normalised entry with `auth` always set.
 * With `auth` given, any `username`/`password` beside it must agree with it;
 * without it, both are required.
 */
function normaliseEntry(raw: RawEntry, path: string, fail: Fail): DockerConfigEntry {
  const { username, password, auth, email } = raw;
  if (username === undefined && password === undefined && auth === undefined) {
    throw fail(path, 'missing credentials: expected "auth" or "username" and "password"');
  }
  if (username !== undefined) {
    if (username === '') throw fail(join(path, 'username'), 'must not be empty');
    if (username.includes(':')) throw fail(join(path, 'username'), 'must not contain ":"');
  }
  if (password === '') throw fail(join(path, 'password'), 'must not be empty');
  let canonicalAuth: string;
  if (auth === undefined) {
    if (username === undefined) throw fail(join(path, 'username'), 'missing');
    if (password === undefined) throw fail(join(path, 'password'), 'missing');
    canonicalAuth = encodeAuth(username, password);
  } else {
    if (auth === '') throw fail(join(path, 'auth'), 'must not be empty');
    const decoded = decodeAuth(auth, join(path, 'auth'), fail);
    if (
      (username !== undefined && decoded.user !== username) ||
      (password !== undefined && decoded.password !== password)
    ) {
      throw fail(join(path, 'auth'), 'does not match "username" and "password"');
    }
    canonicalAuth = decoded.canonical;
  }
  return {
    ...(username !== undefined && { username }),
    ...(password !== undefined && { password }),
    ...(email !== undefined && { email }),
    auth: canonicalAuth,
  };
}

function readEntryStrings(
  source: Record<string, unknown>,
  keys: readonly string[],
  path: string,
  fail: Fail,
): RawEntry {
  const out: Record<string, string> = {};
  for (const key of keys) {
    if (!Object.hasOwn(source, key)) continue;
    out[key] = checkString(source[key], join(path, key), fail);
  }
  return out;
}

/** `{registry, username, password, email?}`; `path` is '' for a lone object or `[i]` in a list. */
function fromRegistryForm(value: unknown, path: string, fail: Fail): [string, DockerConfigEntry] {
  if (!isRecord(value)) throw fail(path, `expected an object, got ${typeName(value)}`);
  for (const key of Object.keys(value)) {
    if (!(REGISTRY_FORM_KEYS as readonly string[]).includes(key)) {
      throw fail(path, `unknown key ${quoteKey(key)} (expected ${REGISTRY_FORM_KEYS.join(', ')})`);
    }
  }
  if (!Object.hasOwn(value, 'registry')) throw fail(join(path, 'registry'), 'missing');
  const registry = checkRegistry(value.registry, join(path, 'registry'), fail);
  for (const key of ['username', 'password'] as const) {
    if (!Object.hasOwn(value, key)) throw fail(join(path, key), 'missing');
  }
  const raw = readEntryStrings(value, ['username', 'password', 'email'], path, fail);
  return [registry, normaliseEntry(raw, path, fail)];
}

/** `{"auths": {registry: {auth?, username?, password?, email?, ...}}}`. */
function fromAuthsForm(value: Record<string, unknown>, fail: Fail): [string, DockerConfigEntry][] {
  for (const key of MIXED_FORM_KEYS) {
    if (Object.hasOwn(value, key)) {
      throw fail(
        key,
        'not allowed beside "auths" (use either {"auths": ...} or {registry, username, password})',
      );
    }
  }
  const auths = value.auths;
  if (!isRecord(auths)) throw fail('auths', `expected an object, got ${typeName(auths)}`);
  const registries = Object.keys(auths);
  if (registries.length === 0) throw fail('auths', 'is empty: expected at least one registry');
  return registries.map((registry) => {
    const path = `auths[${quoteKey(registry)}]`;
    checkRegistry(registry, path, fail);
    const entry = auths[registry];
    if (!isRecord(entry)) throw fail(path, `expected an object, got ${typeName(entry)}`);
    return [registry, normaliseEntry(readEntryStrings(entry, ENTRY_STRING_KEYS, path, fail), path, fail)];
  });
}

/**
 * Parses a registry credential in any accepted shape into a normalised
 * {@link DockerConfig}. `raw` is JSON text or an already-parsed value.
 *
 * Accepted shapes:
 * - a docker config: `{"auths": {"ghcr.io": {"auth": "..."}}}` (entries may
 *   carry `auth`, `username`/`password` or both, which must then agree; other
 *   top-level docker CLI keys such as `credsStore` are dropped);
 * - `{"registry": "ghcr.io", "username": "u", "password": "p", "email": "e"}`;
 * - a non-empty list of such objects, one per registry.
 *
 * Throws {@link SourceError} naming `origin` and the field path, e.g.
 * `source "secretsManager:prod/regcred": auths["ghcr.io"].auth: not valid base64`.
 * The message never contains any part of a credential.
 */
export function parseDockerConfig(raw: unknown, origin: string): DockerConfig {
  const fail: Fail = (path, problem) =>
    new SourceError(`source ${JSON.stringify(origin)}: ${path === '' ? '' : `${path}: `}${problem}`);

  let value = raw;
  if (typeof raw === 'string') {
    if (byteLength(raw) > DOCKER_CONFIG_LIMITS.maxTotalBytes) throw fail('', 'larger than 512 KiB');
    try {
      value = JSON.parse(raw);
    } catch {
      // No cause: the JSON parser's message quotes the input, which is the credential.
      throw fail('', 'not valid JSON');
    }
  }

  let entries: [string, DockerConfigEntry][];
  if (Array.isArray(value)) {
    if (value.length === 0)
      throw fail('', 'empty list: expected at least one {registry, username, password}');
    // Array.from visits holes of a sparse array (map would skip them and leave holes in entries).
    entries = Array.from(value, (item: unknown, i) => fromRegistryForm(item, `[${i}]`, fail));
    const firstIndex = new Map<string, number>();
    entries.forEach(([registry], i) => {
      const first = firstIndex.get(registry);
      if (first !== undefined) {
        throw fail(`[${i}].registry`, `duplicate registry ${quoteKey(registry)} (also [${first}])`);
      }
      firstIndex.set(registry, i);
    });
  } else if (isRecord(value) && Object.hasOwn(value, 'auths')) {
    entries = fromAuthsForm(value, fail);
  } else if (isRecord(value) && Object.hasOwn(value, 'registry')) {
    entries = [fromRegistryForm(value, '', fail)];
  } else if (isRecord(value)) {
    throw fail('', 'expected {"auths": {...}}, {registry, username, password} or a list of those');
  } else {
    throw fail('', `expected a JSON object or array, got ${typeName(value)}`);
  }

  // fromEntries defines own properties, so a registry named "__proto__" stays data.
  const config: DockerConfig = { auths: Object.fromEntries(entries) };
  if (byteLength(serializeDockerConfig(config)) > DOCKER_CONFIG_LIMITS.maxTotalBytes) {
    throw fail('', 'docker config is larger than 512 KiB');
  }
  return config;
}

/**
 * Serialises a docker config canonically: registries sorted by code unit,
 * fields in the order username, password, email, auth, no whitespace. Equal
 * configs give byte-identical output.
 *
 * The JSON is assembled by hand because `JSON.stringify` puts integer-like keys
 * first whatever the insertion order.
 */
export function serializeDockerConfig(cfg: DockerConfig): string {
  const registries = Object.keys(cfg.auths).sort();
  const parts = registries.map((registry) => {
    const e = cfg.auths[registry]!;
    const entry = JSON.stringify({
      ...(e.username !== undefined && { username: e.username }),
      ...(e.password !== undefined && { password: e.password }),
      ...(e.email !== undefined && { email: e.email }),
      auth: e.auth,
    });
    return `${JSON.stringify(registry)}:${entry}`;
  });
  return `{"auths":{${parts.join(',')}}}`;
}

/**
 * A short, stable fingerprint of a serialised docker config: the first 16 hex
 * characters of its sha256. Stored on the secrets we write so a run can tell
 * "in sync" without comparing (or logging) the credential.
 */
export function contentHash(serialized: string): string {
  return createHash('sha256').update(serialized, 'utf8').digest('hex').slice(0, 16);
}
