/**
 * The command line: `npm start -- [options]` reconciles once against the
 * current kube context (or the clusters in the config), prints a report per
 * cluster and exits 0 when everything converged, 1 when not, 2 on bad input.
 * With no config file and no kube context at all it runs the built-in demo on
 * a local cluster from the test rig.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createAwsClients } from '../lib/aws-clients.ts';
import { kubeConfigFor, kubeConnection } from '../lib/clusters.ts';
import { type ClusterConfig, type Config, loadConfig } from '../lib/config.ts';
import { ClusterAccessError, ConfigError, describeError } from '../lib/errors.ts';
import { renderRbac } from '../lib/rbac.ts';
import { run } from '../lib/run.ts';
import { type CliIo, exitCode, printReports, progress } from './output.ts';

export const DEFAULT_CONFIG_PATH = 'imagepullsecret-patcher.yaml';

const USAGE = `usage: npm start -- [command] [options]

commands:
  reconcile (default)   reconcile once and print a report per cluster
  rbac                  print the least-privilege RBAC for the config (kubectl apply -f -)
  demo                  start a local cluster, reconcile a demo config as the restricted identity, stop

options:
  --config PATH         configuration file (default: ./${DEFAULT_CONFIG_PATH})
  --context NAME        kube context for the default cluster (default: the current context)
  --kubeconfig PATH     kubeconfig for the default cluster (default: $KUBECONFIG or ~/.kube/config)
  --cluster NAME        only this configured cluster (repeatable)
  --mapping NAME        only this mapping (repeatable)
  --namespace NAME      only this namespace (repeatable)
  --dry-run             print the full plan with reasons; write nothing
  --output table|json   report format on stdout (default: table)
  --group NAME          the Kubernetes group in the RBAC (rbac command; default: imagepullsecret-patcher)
  -h, --help            this text

exit codes: 0 converged (or dry run planned), 1 errors or conflicts remain, 2 bad input`;

function hasKubeContext(env: NodeJS.ProcessEnv, kubeconfig: string | undefined): boolean {
  if (kubeconfig) return true;
  const paths = env.KUBECONFIG
    ? env.KUBECONFIG.split(':').filter(Boolean)
    : [join(env.HOME ?? homedir(), '.kube', 'config')];
  return paths.some((p) => existsSync(p)) || Boolean(env.KUBERNETES_SERVICE_HOST);
}

/** Applies --context/--kubeconfig to the clusters that use the local kube context. */
function withOverrides(config: Config, kubeconfig: string | undefined, context: string | undefined): Config {
  if (!kubeconfig && !context) return config;
  const clusters = config.clusters.map(
    (c): ClusterConfig =>
      'kube' in c
        ? {
            name: c.name,
            kube: { ...c.kube, ...(kubeconfig ? { kubeconfig } : {}), ...(context ? { context } : {}) },
          }
        : c,
  );
  return { ...config, clusters };
}

async function connectLocal(cluster: ClusterConfig) {
  if ('kube' in cluster) return kubeConnection(kubeConfigFor(cluster));
  const { eksConnection } = await import('../lib/eks.ts');
  return eksConnection(cluster, {});
}

/** Runs the CLI with `argv` (without node and script); returns the exit code. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (error) {
    io.stderr(`${(error as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = args;
  if (values.help) {
    io.stdout(`${USAGE}\n`);
    return 0;
  }
  const command = positionals[0] ?? 'reconcile';
  if (!['reconcile', 'rbac', 'demo'].includes(command) || positionals.length > 1) {
    io.stderr(`unknown command: ${positionals.join(' ')}\n\n${USAGE}\n`);
    return 2;
  }
  if (values.output !== 'table' && values.output !== 'json') {
    io.stderr(`--output: expected table or json, got "${values.output}"\n`);
    return 2;
  }
  const configPath = values.config ?? DEFAULT_CONFIG_PATH;
  const useDemo =
    command === 'demo' ||
    (command === 'reconcile' &&
      !values.config &&
      !existsSync(configPath) &&
      !hasKubeContext(io.env, values.kubeconfig));
  try {
    if (useDemo) {
      const { runDemo } = await import('./demo.ts');
      return await runDemo({ ...io, output: values.output, dryRun: values['dry-run'] });
    }
    if (!existsSync(configPath)) {
      throw new ConfigError(
        `no configuration file at ${configPath} (pass --config; see examples/ and docs/configuration.md)`,
      );
    }
    const config = withOverrides(await loadConfig(configPath), values.kubeconfig, values.context);
    if (command === 'rbac') {
      io.stdout(renderRbac(config, values.group));
      return 0;
    }
    const reports = await run(
      config,
      {
        trigger: 'manual',
        dryRun: values['dry-run'],
        ...(values.cluster ? { clusters: values.cluster } : {}),
        ...(values.mapping ? { mappings: values.mapping } : {}),
        ...(values.namespace ? { namespaces: values.namespace } : {}),
      },
      {
        connect: connectLocal,
        secretsManager: createAwsClients().secretsManager,
        onProgress: progress(io),
      },
    );
    printReports(reports, values.output, io);
    return exitCode(reports);
  } catch (error) {
    io.stderr(`${describeError(error)}\n`);
    return error instanceof ConfigError || error instanceof ClusterAccessError ? 2 : 1;
  }
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string' },
      context: { type: 'string' },
      kubeconfig: { type: 'string' },
      cluster: { type: 'string', multiple: true },
      mapping: { type: 'string', multiple: true },
      namespace: { type: 'string', multiple: true },
      'dry-run': { type: 'boolean', default: false },
      output: { type: 'string', default: 'table' },
      group: { type: 'string', default: 'imagepullsecret-patcher' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2), {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    env: process.env,
  });
  process.exitCode = code;
}
