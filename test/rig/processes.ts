/**
 * Child processes of the test rig: started with a parent-death signal so that
 * nothing outlives the process that started it, logged to a file, and stopped
 * on `stop()`, on process exit and on SIGINT/SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync } from 'node:fs';

export type RigProcess = {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  /** Resolves with the exit code (or signal) when the process ends. */
  readonly exited: Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<void>;
  isRunning(): boolean;
};

const running = new Set<ChildProcess>();
const cleanups = new Set<() => Promise<void>>();
let hooksInstalled = false;

function killAll(): void {
  for (const child of running) child.kill('SIGKILL');
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      // Graceful first (registered cleanups, 15 s at most), then nothing survives.
      const timeout = new Promise((resolve) => setTimeout(resolve, 15_000).unref());
      void Promise.race([Promise.allSettled([...cleanups].map((cleanup) => cleanup())), timeout]).finally(
        () => {
          killAll();
          process.exit(130);
        },
      );
    });
  }
}

/** Runs `cleanup` if this process is interrupted; returns a function that unregisters it. */
export function onInterrupt(cleanup: () => Promise<void>): () => void {
  installHooks();
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

const setpriv = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/** Starts `command args`, appending its stdout and stderr to `logPath`. */
export function startProcess(
  name: string,
  command: string,
  args: readonly string[],
  logPath: string,
): RigProcess {
  installHooks();
  const log = createWriteStream(logPath, { flags: 'a' });
  // --pdeathsig: the kernel kills the child if this process dies without cleaning up (SIGKILL, OOM).
  const [file, argv] = setpriv
    ? [setpriv, ['--pdeathsig', 'KILL', '--', command, ...args]]
    : [command, [...args]];
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  running.add(child);
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve(signal ?? String(code));
    });
  });
  if (child.pid === undefined) throw new Error(`could not start ${name} (${command})`);
  return {
    name,
    pid: child.pid,
    logPath,
    exited,
    isRunning: () => running.has(child),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!running.has(child)) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      if (!log.closed) {
        log.end();
        await once(log, 'close').catch(() => undefined);
      }
    },
  };
}
