/**
 * The credential scan of the test logs must be able to fail: these tests
 * plant a registered credential in a log of a temporary log directory (never
 * the real one) and check the scan finds it, in each registered form, and
 * says where without printing it.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import {
  credentialForms,
  formatScan,
  readRegistry,
  registerCredential,
  resetTestLogs,
  scanTestLogs,
} from './test-logs.ts';

/** A fake credential made here and only here: not in the real registry, so never a finding of the real scan. */
const planted = () => ({
  label: 'planted',
  registry: 'registry.example.com',
  username: 'planted-user',
  password: `planted-${randomBytes(12).toString('hex')}`,
});

describe('the test-log credential scan', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'ipsp-scan-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('finds a registered password in a log and names the file, the form and the count, never the value', () => {
    const credential = registerCredential(planted(), dir);
    writeFileSync(
      path.join(dir, 'test__a.test.ts.log'),
      `[stdout] ok\n[stdout] leaked ${credential.password}\n`,
    );
    writeFileSync(path.join(dir, 'test__b.test.ts.log'), '[pass] fine\n');
    const result = scanTestLogs(dir);
    assert.equal(result.vacuous, undefined);
    assert.deepEqual(result.findings, [
      { file: 'test__a.test.ts.log', label: 'planted', form: 'password', count: 1 },
    ]);
    const text = formatScan(result, dir);
    assert.match(text, /FAILED: 1 occurrence/);
    assert.match(text, /test__a\.test\.ts\.log: 1 occurrence\(s\) of the password of "planted"/);
    assert.ok(!text.includes(credential.password));
  });

  it('finds every registered encoding, in nested directories too', () => {
    const credential = registerCredential(planted(), dir);
    const forms = credentialForms(credential);
    assert.deepEqual(
      forms.map((f) => f.form),
      ['password', 'base64(user:password)', 'base64(.dockerconfigjson)'],
    );
    mkdirSync(path.join(dir, 'rig'));
    for (const [i, form] of forms.slice(1).entries()) {
      writeFileSync(path.join(dir, 'rig', `${i}.log`), `data: ${form.value}\n`);
    }
    const result = scanTestLogs(dir);
    assert.deepEqual(
      result.findings.map((f) => [f.file, f.form]),
      [
        [path.join('rig', '0.log'), 'base64(user:password)'],
        [path.join('rig', '1.log'), 'base64(.dockerconfigjson)'],
      ],
    );
  });

  it('passes when no registered value appears', () => {
    registerCredential(planted(), dir);
    writeFileSync(path.join(dir, 'test__a.test.ts.log'), '[pass] a clean test\n');
    const result = scanTestLogs(dir);
    assert.equal(result.vacuous, undefined);
    assert.deepEqual(result.findings, []);
    assert.match(formatScan(result, dir), /no registered credential appears/);
  });

  it('does not scan the registry itself', () => {
    registerCredential(planted(), dir);
    writeFileSync(path.join(dir, 'runner.log'), '[diagnostic] tests 1\n');
    assert.deepEqual(scanTestLogs(dir).findings, []);
    assert.equal(readRegistry(dir).length, 3);
  });

  it('refuses to pass with nothing registered', () => {
    writeFileSync(path.join(dir, 'runner.log'), '[diagnostic] tests 1\n');
    const result = scanTestLogs(dir);
    assert.match(result.vacuous ?? '', /no credential registered/);
    assert.match(formatScan(result, dir), /FAILED: nothing to scan/);
  });

  it('refuses to pass with no log, or only empty logs', () => {
    registerCredential(planted(), dir);
    assert.match(scanTestLogs(dir).vacuous ?? '', /no test log/);
    writeFileSync(path.join(dir, 'runner.log'), '');
    assert.match(scanTestLogs(dir).vacuous ?? '', /no test log/);
  });

  it('rejects a fake credential too short to scan for without false alarms', () => {
    assert.throws(
      () => registerCredential({ label: 'short', password: 'p' }, dir),
      /password is shorter than 8 characters/,
    );
  });

  it('the scan command exits 1 with the count on a planted credential, 0 when clean, 1 when empty', () => {
    const scan = () =>
      spawnSync(process.execPath, [path.join(import.meta.dirname, 'scan-test-logs.ts')], {
        env: { ...process.env, IPSP_TEST_LOG_DIR: dir },
        encoding: 'utf8',
      });
    resetTestLogs(dir);
    const empty = scan();
    assert.equal(empty.status, 1, empty.stderr);
    assert.match(empty.stderr, /nothing to scan/);

    const credential = registerCredential(planted(), dir);
    writeFileSync(path.join(dir, 'runner.log'), '[diagnostic] tests 1\n');
    const clean = scan();
    assert.equal(clean.status, 0, clean.stderr);

    writeFileSync(path.join(dir, 'test__x.test.ts.log'), `${credential.password} ${credential.password}\n`);
    const leaked = scan();
    assert.equal(leaked.status, 1);
    assert.match(leaked.stderr, /FAILED: 2 occurrence/);
    assert.ok(!`${leaked.stdout}${leaked.stderr}`.includes(credential.password));
  });
});
