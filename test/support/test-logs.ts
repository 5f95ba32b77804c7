/**
 * Everything the tests log, and the fake credentials they make, in one
 * directory, so a last step can check that no credential reached a log.
 *
 * - Tests register every credential they create ({@link registerCredential}):
 *   the password and the encoded forms it travels in (base64 of
 *   `user:password`, base64 of the rendered `.dockerconfigjson`) are appended
 *   to {@link REGISTRY_FILE} in the log directory.
 * - The capture reporter (capture-reporter.ts) writes every test's stdout,
 *   stderr, diagnostics and failures to `*.log` files in the same directory.
 * - `npm run test:scan` ({@link scanTestLogs}) fails when any registered value
 *   appears in any log, and when there is nothing to scan.
 *
 * The directory is `$IPSP_TEST_LOG_DIR`, or `<repo>/.tmp/test-logs` (gitignored).
 */
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseDockerConfig, serializeDockerConfig } from '../../lib/dockerconfig.ts';

/** The registry of credentials, one JSON object per line; never scanned itself. */
export const REGISTRY_FILE = 'credentials.jsonl';
/** Shorter values would match by accident; every fake credential is longer. */
export const MIN_REGISTERED_LENGTH = 8;

const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');

/** The log directory: `$IPSP_TEST_LOG_DIR` (relative to the working directory) or `<repo>/.tmp/test-logs`. */
export function testLogDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.IPSP_TEST_LOG_DIR
    ? path.resolve(env.IPSP_TEST_LOG_DIR)
    : path.join(REPO_ROOT, '.tmp', 'test-logs');
}

/** One registered value: what it is (`form`) and whose (`label`), both safe to print; `value` is not. */
export type RegisteredValue = { readonly label: string; readonly form: string; readonly value: string };

export type FakeCredential = {
  /** Names the credential in scan findings, e.g. `credentialFile a1`; printed, so never secret. */
  readonly label: string;
  readonly password: string;
  readonly username?: string | undefined;
  readonly registry?: string | undefined;
  /** Other encodings this test writes somewhere (e.g. a secret's base64 data), by form name. */
  readonly encoded?: Readonly<Record<string, string>> | undefined;
};

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/** The forms a credential can reach a log in. */
export function credentialForms(credential: FakeCredential): RegisteredValue[] {
  const { label, password, username, registry } = credential;
  const forms: [string, string][] = [['password', password]];
  if (username !== undefined) {
    forms.push(['base64(user:password)', b64(`${username}:${password}`)]);
    if (registry !== undefined) {
      const rendered = serializeDockerConfig(parseDockerConfig({ registry, username, password }, label));
      forms.push(['base64(.dockerconfigjson)', b64(rendered)]);
    }
  }
  forms.push(...Object.entries(credential.encoded ?? {}));
  return forms.map(([form, value]) => {
    if (value.length < MIN_REGISTERED_LENGTH) {
      throw new Error(
        `${label}: ${form} is shorter than ${MIN_REGISTERED_LENGTH} characters; use a longer fake`,
      );
    }
    return { label, form, value };
  });
}

/**
 * Registers a fake credential a test creates, so the final scan looks for it
 * in every log. Call it where the credential is made, before it is used.
 * Returns the credential unchanged, for chaining.
 */
export function registerCredential<T extends FakeCredential>(credential: T, dir = testLogDir()): T {
  const lines = credentialForms(credential).map((v) => `${JSON.stringify(v)}\n`);
  mkdirSync(dir, { recursive: true });
  // One append per credential: O_APPEND keeps lines from parallel test processes whole.
  appendFileSync(path.join(dir, REGISTRY_FILE), lines.join(''));
  return credential;
}

/** Reads the registry, one entry per distinct value. Missing registry: none. */
export function readRegistry(dir: string): RegisteredValue[] {
  let text: string;
  try {
    text = readFileSync(path.join(dir, REGISTRY_FILE), 'utf8');
  } catch {
    return [];
  }
  const byValue = new Map<string, RegisteredValue>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const entry = JSON.parse(line) as RegisteredValue;
    if (!byValue.has(entry.value)) byValue.set(entry.value, entry);
  }
  return [...byValue.values()];
}

/** Every `*.log` file under `dir`, recursively, sorted. */
export function logFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir, { recursive: true, encoding: 'utf8' });
  } catch {
    return [];
  }
  return entries.filter((name) => name.endsWith('.log') && statSync(path.join(dir, name)).isFile()).sort();
}

export type Finding = {
  readonly file: string;
  readonly label: string;
  readonly form: string;
  readonly count: number;
};

export type ScanResult = {
  readonly registered: number;
  readonly files: number;
  readonly bytes: number;
  readonly findings: readonly Finding[];
  /** Why the scan proves nothing (empty registry, no logs), or undefined. */
  readonly vacuous: string | undefined;
};

function occurrences(haystack: string, needle: string): number {
  let count = 0;
  for (let at = haystack.indexOf(needle); at !== -1; at = haystack.indexOf(needle, at + needle.length))
    count++;
  return count;
}

/** Looks for every registered value in every log under `dir`. */
export function scanTestLogs(dir: string): ScanResult {
  const registry = readRegistry(dir);
  const files = logFiles(dir);
  const findings: Finding[] = [];
  let bytes = 0;
  for (const file of files) {
    const text = readFileSync(path.join(dir, file), 'utf8');
    bytes += Buffer.byteLength(text);
    for (const { label, form, value } of registry) {
      const count = occurrences(text, value);
      if (count > 0) findings.push({ file, label, form, count });
    }
  }
  const vacuous =
    registry.length === 0
      ? `no credential registered in ${path.join(dir, REGISTRY_FILE)}`
      : files.length === 0 || bytes === 0
        ? `no test log (*.log) with content in ${dir}`
        : undefined;
  return { registered: registry.length, files: files.length, bytes, findings, vacuous };
}

/** A report of a scan that never contains a registered value: only labels, forms, files and counts. */
export function formatScan(result: ScanResult, dir: string): string {
  const header = `scanned ${result.files} log file(s), ${result.bytes} bytes, in ${dir} for ${result.registered} registered credential value(s)`;
  if (result.vacuous !== undefined) return `${header}\nFAILED: nothing to scan: ${result.vacuous}`;
  if (result.findings.length === 0) return `${header}\nno registered credential appears in any test log`;
  const total = result.findings.reduce((sum, f) => sum + f.count, 0);
  const lines = result.findings.map(
    (f) => `  ${f.file}: ${f.count} occurrence(s) of the ${f.form} of ${JSON.stringify(f.label)}`,
  );
  return `${header}\nFAILED: ${total} occurrence(s) of registered credentials in test logs:\n${lines.join('\n')}`;
}

/** Empties the log directory (the start of a full test run). */
export function resetTestLogs(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
}
