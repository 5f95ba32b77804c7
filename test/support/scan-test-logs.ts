/**
 * `npm run test:scan`: fails when any credential a test registered appears in
 * anything the tests logged, or when there is nothing to scan (no registered
 * credential, no log), so it can never pass by looking at nothing. Prints
 * files, labels and counts, never the credential.
 *
 * `--reset` empties the log directory instead (the first step of `npm test`).
 */
import { formatScan, resetTestLogs, scanTestLogs, testLogDir } from './test-logs.ts';

const dir = testLogDir();
if (process.argv.includes('--reset')) {
  resetTestLogs(dir);
} else {
  const result = scanTestLogs(dir);
  const failed = result.vacuous !== undefined || result.findings.length > 0;
  (failed ? process.stderr : process.stdout).write(`${formatScan(result, dir)}\n`);
  process.exitCode = failed ? 1 : 0;
}
