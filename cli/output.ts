/** What the CLI and the demo share: where output goes, progress, the report, the exit code. */
import { type ClusterReport, clusterFailed, renderTable } from '../lib/report.ts';

export type CliIo = {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
};

/** Progress lines on stderr, at most one every 2 seconds per cluster, for long runs. */
export function progress(io: Pick<CliIo, 'stderr'>): (cluster: string, done: number, total: number) => void {
  const last = new Map<string, number>();
  return (cluster, done, total) => {
    const now = Date.now();
    if (done < total && now - (last.get(cluster) ?? 0) < 2000) return;
    last.set(cluster, now);
    io.stderr(`${cluster}: ${done}/${total} writes\n`);
  };
}

export function printReports(
  reports: readonly ClusterReport[],
  output: string,
  io: Pick<CliIo, 'stdout'>,
): void {
  io.stdout(
    output === 'json' ? `${JSON.stringify({ clusters: reports }, null, 2)}\n` : `${renderTable(reports)}\n`,
  );
}

export function exitCode(reports: readonly ClusterReport[]): number {
  return reports.some(clusterFailed) ? 1 : 0;
}
