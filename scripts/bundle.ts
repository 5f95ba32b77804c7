/**
 * Builds the Lambda artefact: functions/reconcile.ts bundled by esbuild into
 * one minified ESM file with a source map (`dist/reconcile.mjs`), plus the
 * patcher configuration copied beside it (`dist/imagepullsecret-patcher.yaml`,
 * where the handler looks by default). serverless.yml packages `dist/` as is.
 *
 *   node scripts/bundle.ts [--config imagepullsecret-patcher.yaml] [--outdir dist]
 *
 * Without --config, ./imagepullsecret-patcher.yaml is bundled when it exists.
 * The configuration is validated first, so a typo fails the build, not the
 * first invocation.
 */
import { copyFile, mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type BuildOptions, build } from 'esbuild';
import { loadConfig } from '../lib/config.ts';
import { describeError } from '../lib/errors.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The file name the handler reads by default (see functions/reconcile.ts). */
export const BUNDLED_CONFIG_NAME = 'imagepullsecret-patcher.yaml';

export type BundleOptions = {
  /** Output directory, emptied first; default `dist` in the project. */
  readonly outdir?: string | undefined;
  /** Patcher configuration to copy beside the bundle; default ./imagepullsecret-patcher.yaml if present. */
  readonly config?: string | undefined;
  readonly log?: ((line: string) => void) | undefined;
};

export type BundleResult = {
  readonly bundle: string;
  readonly bytes: number;
  readonly sourceMapBytes: number;
  /** The bundled configuration, when there is one. */
  readonly config?: string | undefined;
};

// Some CommonJS dependencies call require() for Node built-ins at run time;
// an ESM bundle has no require, so give it one.
const BANNER = [
  "import { createRequire as __bundleCreateRequire } from 'node:module';",
  'const require = __bundleCreateRequire(import.meta.url);',
].join('\n');

/** How the Lambda is built; `npm run bench` builds its workload the same way. */
export const BUILD_OPTIONS = {
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'esm',
  mainFields: ['module', 'main'],
  minify: true,
  legalComments: 'none',
  banner: { js: BANNER },
  logLevel: 'warning',
} as const satisfies BuildOptions;

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** Bundles the handler and copies the configuration; throws on a build or configuration error. */
export async function bundle(options: BundleOptions = {}): Promise<BundleResult> {
  const log = options.log ?? (() => {});
  const outdir = path.resolve(options.outdir ?? path.join(ROOT, 'dist'));
  const defaultConfig = path.resolve(BUNDLED_CONFIG_NAME);
  const config = options.config ?? ((await exists(defaultConfig)) ? defaultConfig : undefined);

  if (config) {
    const parsed = await loadConfig(config);
    const local = parsed.clusters.filter((c) => !('eks' in c)).map((c) => c.name);
    if (local.length > 0) {
      log(
        `warning: ${config}: cluster(s) ${local.join(', ')} use a kube context, which Lambda cannot reach; their runs will fail`,
      );
    }
  }

  await rm(outdir, { recursive: true, force: true });
  await mkdir(outdir, { recursive: true });
  const bundlePath = path.join(outdir, 'reconcile.mjs');
  await build({
    ...BUILD_OPTIONS,
    entryPoints: [path.join(ROOT, 'functions', 'reconcile.ts')],
    outfile: bundlePath,
    sourcemap: true,
    sourcesContent: false,
  });
  if (config) await copyFile(config, path.join(outdir, BUNDLED_CONFIG_NAME));
  const result: BundleResult = {
    bundle: bundlePath,
    bytes: (await stat(bundlePath)).size,
    sourceMapBytes: (await stat(`${bundlePath}.map`)).size,
    config,
  };
  log(
    `${path.relative(process.cwd(), bundlePath)}: ${(result.bytes / 1024).toFixed(0)} KiB ` +
      `(source map ${(result.sourceMapBytes / 1024).toFixed(0)} KiB)`,
  );
  log(
    config
      ? `configuration: ${path.relative(process.cwd(), config)} -> ${path.relative(process.cwd(), path.join(outdir, BUNDLED_CONFIG_NAME))}`
      : `warning: no configuration bundled (pass --config); the function needs PATCHER_CONFIG to point at one`,
  );
  return result;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { config: { type: 'string' }, outdir: { type: 'string' } },
    strict: true,
  });
  try {
    await bundle({ config: values.config, outdir: values.outdir, log: (line) => console.log(line) });
  } catch (error) {
    console.error(describeError(error));
    process.exitCode = 1;
  }
}
