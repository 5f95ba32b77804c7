/**
 * moto's server, the AWS wire protocol for tests (Secrets Manager, STS, EKS,
 * Lambda), on a free loopback port. Point SDK clients at `endpoint`.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { motoServerBinary } from './binaries.ts';
import { freePort, waitFor } from './ports.ts';
import { startProcess } from './processes.ts';

export type Moto = {
  readonly endpoint: string;
  /** Client settings for any AWS SDK v3 client: endpoint, region and dummy credentials. */
  readonly clientConfig: {
    endpoint: string;
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string };
  };
  /** Drops all state (moto's reset API). */
  reset(): Promise<void>;
  stop(): Promise<void>;
};

export async function startMoto(): Promise<Moto> {
  const bin = motoServerBinary();
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), 'ipsp-moto-'));
  const proc = startProcess('moto', bin, ['-H', '127.0.0.1', '-p', String(port)], join(dir, 'moto.log'));
  await waitFor('moto server', async () => (await fetch(`${endpoint}/moto-api/data.json`)).ok, 30_000);
  return {
    endpoint,
    clientConfig: {
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDTESTRIG000000000', secretAccessKey: 'rig-secret-access-key-not-real' },
    },
    reset: async () => {
      await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
    },
    stop: () => proc.stop(),
  };
}
