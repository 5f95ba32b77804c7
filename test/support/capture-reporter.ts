/**
 * A node:test reporter that keeps everything the tests log: each test file's
 * stdout, stderr, diagnostics, test names and failures (message, stack,
 * expected/actual, causes) go to `<log dir>/<file path with / as __>.log`,
 * events tied to no file to `runner.log`. It yields nothing, so it sits
 * beside the spec reporter:
 *
 *   node --test --test-reporter=spec --test-reporter-destination=stdout \
 *     --test-reporter=./test/support/capture-reporter.ts --test-reporter-destination=stdout ...
 *
 * The log directory is the one test-logs.ts names; `npm run test:scan` reads it.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { TestEvent } from 'node:test/reporters';
import { inspect } from 'node:util';
import { testLogDir } from './test-logs.ts';

const SHOW_ALL = { depth: 10, maxArrayLength: Infinity, maxStringLength: Infinity, breakLength: 120 };

function logName(file: string | undefined): string {
  if (file === undefined) return 'runner.log';
  const relative = path.relative(process.cwd(), path.resolve(file));
  return `${relative.replaceAll(path.sep, '__').replaceAll('..', '_')}.log`;
}

/** The text an event carries, or undefined for bookkeeping events (enqueue, plan, summary...). */
function render(event: TestEvent): string | undefined {
  switch (event.type) {
    case 'test:stdout':
      return `[stdout] ${event.data.message}`;
    case 'test:stderr':
      return `[stderr] ${event.data.message}`;
    case 'test:diagnostic':
      return `[diagnostic] ${event.data.message}\n`;
    case 'test:pass':
      return `[pass] ${event.data.name}\n`;
    case 'test:fail':
      return `[fail] ${event.data.name}\n${inspect(event.data.details.error, SHOW_ALL)}\n`;
    default:
      return undefined;
  }
}

export default async function* captureReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const dir = testLogDir();
  mkdirSync(dir, { recursive: true });
  for await (const event of source) {
    const text = render(event);
    if (text === undefined) continue;
    const file = event.data && 'file' in event.data ? event.data.file : undefined;
    appendFileSync(path.join(dir, logName(file)), text);
  }
  // Nothing for the destination: the spec reporter prints for people.
  yield* [];
}
