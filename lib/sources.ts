/**
 * Loads a mapping's credential from its source and turns it into the one
 * validated, canonical docker config the engine distributes. A source that
 * cannot be read or parsed is a {@link SourceError} naming the source, never
 * its value; the caller then writes nothing for that mapping.
 */
import { readFile } from 'node:fs/promises';
import {
  GetSecretValueCommand,
  type GetSecretValueCommandOutput,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import type { SourceConfig } from './config.ts';
import { contentHash, parseDockerConfig, serializeDockerConfig } from './dockerconfig.ts';
import { PatcherError, SourceError } from './errors.ts';
import type { KubeClient } from './kube.ts';
import { DOCKER_CONFIG_KEY } from './ownership.ts';
import type { DesiredContent } from './plan.ts';

/** A short, credential-free name for a source, used in messages and reports. */
export function describeSource(source: SourceConfig): string {
  if ('secretsManager' in source) {
    const sm = source.secretsManager;
    return `secretsManager:${sm.secretId}${sm.versionId ? `@${sm.versionId}` : sm.versionStage ? `:${sm.versionStage}` : ''}`;
  }
  if ('kubernetes' in source) {
    const { namespace, name, key } = source.kubernetes;
    // The data key is named when it is not the usual one, so a message about its content says which key.
    return `kubernetes:${namespace}/${name}${key === DOCKER_CONFIG_KEY ? '' : `[${key}]`}`;
  }
  return `file:${source.file}`;
}

export type SourceDeps = {
  /** A Secrets Manager client for a region (undefined = the default region). */
  readonly secretsManager?: ((region: string | undefined) => SecretsManagerClient) | undefined;
  /** The cluster being reconciled, for in-cluster sources. */
  readonly kube?: KubeClient | undefined;
};

function content(raw: unknown, origin: string, sourceVersion: string | undefined): DesiredContent {
  const dockerConfigJson = serializeDockerConfig(parseDockerConfig(raw, origin));
  const hash = contentHash(dockerConfigJson);
  return { dockerConfigJson, contentHash: hash, sourceVersion: sourceVersion ?? hash };
}

async function fromSecretsManager(
  source: Extract<SourceConfig, { secretsManager: unknown }>['secretsManager'],
  origin: string,
  deps: SourceDeps,
): Promise<DesiredContent> {
  if (!deps.secretsManager)
    throw new SourceError(`source "${origin}": Secrets Manager is not available here`);
  let output: GetSecretValueCommandOutput;
  try {
    output = await deps.secretsManager(source.region).send(
      new GetSecretValueCommand({
        SecretId: source.secretId,
        ...(source.versionId ? { VersionId: source.versionId } : {}),
        ...(source.versionStage ? { VersionStage: source.versionStage } : {}),
      }),
    );
  } catch (error) {
    // AWS error names and messages name the secret, never its value.
    const name = (error as { name?: string }).name ?? 'Error';
    throw new SourceError(`source "${origin}": GetSecretValue failed: ${name}`, { cause: error });
  }
  const raw =
    output.SecretString ??
    (output.SecretBinary ? Buffer.from(output.SecretBinary).toString('utf8') : undefined);
  if (raw === undefined) throw new SourceError(`source "${origin}": the secret version has no value`);
  return content(raw, origin, output.VersionId);
}

async function fromKubernetes(
  source: Extract<SourceConfig, { kubernetes: unknown }>['kubernetes'],
  origin: string,
  deps: SourceDeps,
): Promise<DesiredContent> {
  if (!deps.kube) throw new SourceError(`source "${origin}": no cluster to read it from`);
  let secret: Awaited<ReturnType<KubeClient['readSecret']>>;
  try {
    secret = await deps.kube.readSecret(source.namespace, source.name);
  } catch (error) {
    throw new SourceError(
      `source "${origin}": ${error instanceof PatcherError ? error.message : 'read failed'}`,
      { cause: error },
    );
  }
  if (!secret) throw new SourceError(`source "${origin}": secret not found`);
  const value = secret.data[source.key];
  if (value === undefined) throw new SourceError(`source "${origin}": has no key "${source.key}"`);
  return content(
    Buffer.from(value, 'base64').toString('utf8'),
    origin,
    `${secret.uid.slice(0, 8)}/${secret.resourceVersion}`,
  );
}

async function fromFile(path: string, origin: string): Promise<DesiredContent> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (error) {
    throw new SourceError(
      `source "${origin}": cannot read the file (${(error as { code?: string }).code ?? 'error'})`,
      { cause: error },
    );
  }
  return content(raw, origin, undefined);
}

/** Loads and validates one source. Throws SourceError. */
export function loadSource(source: SourceConfig, deps: SourceDeps): Promise<DesiredContent> {
  const origin = describeSource(source);
  if ('secretsManager' in source) return fromSecretsManager(source.secretsManager, origin, deps);
  if ('kubernetes' in source) return fromKubernetes(source.kubernetes, origin, deps);
  return fromFile(source.file, origin);
}

/**
 * Memoises the sources that are the same for every cluster (Secrets Manager
 * and files), so one invocation reads each once however many clusters use it.
 * In-cluster sources are read per cluster.
 */
export class SourceCache {
  readonly #loaded = new Map<string, Promise<DesiredContent>>();

  load(source: SourceConfig, deps: SourceDeps): Promise<DesiredContent> {
    if ('kubernetes' in source) return loadSource(source, deps);
    const key = JSON.stringify(source);
    let pending = this.#loaded.get(key);
    if (!pending) {
      pending = loadSource(source, deps);
      this.#loaded.set(key, pending);
    }
    return pending;
  }
}
