/**
 * Locates the control-plane binaries and moto, building or installing them
 * into the cache on first use (see test/controlplane/build.sh and
 * test/aws/setup.sh). IPSP_CONTROLPLANE_DIR and IPSP_MOTO_VENV override.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const testDir = join(import.meta.dirname, '..');

function runSetup(script: string): string {
  const out = execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = out.trim().split('\n');
  return lines[lines.length - 1]!;
}

let controlPlaneDir: string | undefined;
let motoVenv: string | undefined;

export type ControlPlaneBinaries = { etcd: string; kubeApiserver: string; kubeControllerManager: string };

export function controlPlaneBinaries(): ControlPlaneBinaries {
  controlPlaneDir ??=
    process.env.IPSP_CONTROLPLANE_DIR || runSetup(join(testDir, 'controlplane', 'build.sh'));
  return {
    etcd: join(controlPlaneDir, 'etcd'),
    kubeApiserver: join(controlPlaneDir, 'kube-apiserver'),
    kubeControllerManager: join(controlPlaneDir, 'kube-controller-manager'),
  };
}

export function motoServerBinary(): string {
  motoVenv ??= process.env.IPSP_MOTO_VENV || runSetup(join(testDir, 'aws', 'setup.sh'));
  return join(motoVenv, 'bin', 'moto_server');
}
