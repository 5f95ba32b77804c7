/**
 * The configuration: one zod schema, strict everywhere (an unknown key is an
 * error, because a typo must not silently fall back to a default), with every
 * default written beside its field. It is parsed once into a deeply readonly
 * {@link Config}; no other module validates or defaults configuration.
 *
 * The reference for users is docs/configuration.md; keep the two in step.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { globSyntaxError, isGlob, shortestMatch } from './glob.ts';
import { DOCKER_CONFIG_KEY } from './ownership.ts';

// ---------------------------------------------------------------------------
// Kubernetes and AWS name rules

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** The "name" part of a label key, and a non-empty label value. */
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]{1,253}$/;
const CLUSTER_NAME = /^(?=.{1,100}$)[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const EKS_CLUSTER_NAME = /^(?=.{1,100}$)[0-9A-Za-z][A-Za-z0-9_-]*$/;
const AWS_REGION = /^[a-z]{2,4}(-[a-z]+)+-\d+$/;
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/;
const EXTERNAL_ID = /^[\w+=,.@:/-]{2,1224}$/;
const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;

/** Quotes a configuration value for a message (configuration holds no credentials), shortened if long. */
function quote(value: unknown): string {
  const text = String(value);
  return JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text);
}

function dnsLabelProblem(value: string): string | undefined {
  if (value.length <= 63 && DNS1123_LABEL.test(value)) return undefined;
  return `${quote(value)} is not a valid DNS-1123 label (at most 63 characters: lowercase letters, digits and "-", starting and ending with a letter or digit)`;
}

function dnsSubdomainProblem(value: string): string | undefined {
  if (value.length <= 253 && DNS1123_SUBDOMAIN.test(value)) return undefined;
  return `${quote(value)} is not a valid DNS-1123 subdomain (at most 253 characters: lowercase letters, digits, "-" and ".", starting and ending with a letter or digit)`;
}

/** Kubernetes label key rules: `[prefix/]name`, prefix a DNS subdomain, name at most 63 characters. */
function labelKeyProblem(key: string): string | undefined {
  const parts = key.split('/');
  const name = parts.length === 2 ? parts[1]! : parts[0]!;
  const prefix = parts.length === 2 ? parts[0]! : undefined;
  const valid =
    parts.length <= 2 &&
    name.length <= 63 &&
    QUALIFIED_NAME.test(name) &&
    (prefix === undefined || (prefix.length <= 253 && DNS1123_SUBDOMAIN.test(prefix)));
  if (valid) return undefined;
  return `${quote(key)} is not a valid label key (optional DNS subdomain prefix and "/", then at most 63 characters: letters, digits, "-", "_" and ".", starting and ending with a letter or digit)`;
}

function labelValueProblem(value: string): string | undefined {
  if (value === '' || (value.length <= 63 && QUALIFIED_NAME.test(value))) return undefined;
  return `${quote(value)} is not a valid label value (empty, or at most 63 characters: letters, digits, "-", "_" and ".", starting and ending with a letter or digit)`;
}

/** A plain name checked by `nameProblem`, or a glob that can match a name of at most `maxLength` characters. */
function patternProblem(nameProblem: (value: string) => string | undefined, maxLength: number) {
  return (value: string): string | undefined => {
    if (!isGlob(value)) return nameProblem(value);
    const problem = globSyntaxError(value);
    if (problem !== undefined) return `invalid glob ${quote(value)}: ${problem}`;
    const shortest = shortestMatch(value);
    if (shortest > maxLength) {
      return `glob ${quote(value)} never matches: it needs at least ${shortest} characters and a name has at most ${maxLength}`;
    }
    return undefined;
  };
}

function matching(regex: RegExp, expected: string) {
  return (value: string): string | undefined =>
    regex.test(value) ? undefined : `${quote(value)} is not valid (expected ${expected})`;
}

// ---------------------------------------------------------------------------
// Schema building blocks

/** A string checked by `problem`, which describes what is wrong or returns undefined. */
function checkedString(problem: (value: string) => string | undefined) {
  return z.string().superRefine((value, ctx) => {
    const message = problem(value);
    if (message !== undefined) ctx.addIssue({ code: 'custom', message });
  });
}

/** A strict object whose unknown-key error lists the allowed keys (see {@link formatIssue}). */
function strictObject<T extends z.ZodRawShape>(shape: T) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) => (issue.code === 'unrecognized_keys' ? allowed : undefined),
  });
}

/** Adds an issue unless exactly one of `keys` is set on `value`. */
function requireExactlyOne<K extends string>(
  value: Partial<Record<K, unknown>>,
  keys: readonly K[],
  ctx: z.RefinementCtx,
): void {
  const present = keys.filter((key) => value[key] !== undefined);
  if (present.length === 1) return;
  ctx.addIssue({
    code: 'custom',
    message:
      present.length === 0
        ? `expected exactly one of ${keys.join(', ')}`
        : `expected exactly one of ${keys.join(', ')}, got ${present.join(' and ')}`,
  });
}

const nonEmpty = () => z.string().min(1, 'must not be empty');
const dnsLabel = checkedString(dnsLabelProblem);
const dnsSubdomain = checkedString(dnsSubdomainProblem);
const labelValue = checkedString(labelValueProblem);
const region = checkedString(matching(AWS_REGION, 'an AWS region such as "eu-west-1"'));
const clusterName = checkedString(
  matching(
    CLUSTER_NAME,
    'at most 100 characters: letters, digits, "-", "_" and ".", starting and ending with a letter or digit',
  ),
);

// ---------------------------------------------------------------------------
// Clusters

/** Default cluster when `clusters` is omitted: the current kube context. */
export const DEFAULT_CLUSTER_NAME = 'current';
/** Default STS session name when a cluster assumes a role. */
export const DEFAULT_SESSION_NAME = 'imagepullsecret-patcher';

const kubeClusterSchema = strictObject({
  /** Path to a kubeconfig file; default: the kube client's default ($KUBECONFIG or ~/.kube/config, or in-cluster). */
  kubeconfig: nonEmpty().optional(),
  /** Context in that kubeconfig; default: its current context. */
  context: nonEmpty().optional(),
});

const eksClusterSchema = strictObject({
  /** The EKS cluster name, as in `aws eks describe-cluster --name`. */
  name: checkedString(
    matching(EKS_CLUSTER_NAME, 'an EKS cluster name: at most 100 letters, digits, "-" and "_"'),
  ),
  region,
  /** Role to assume before calling EKS (other accounts); default: the function's own identity. */
  roleArn: checkedString(
    matching(ROLE_ARN, 'an IAM role ARN such as "arn:aws:iam::123456789012:role/name"'),
  ).optional(),
  /** External ID for that role; its value is never echoed in messages. */
  externalId: z
    .string()
    .refine((v) => EXTERNAL_ID.test(v), 'expected 2 to 1224 characters: letters, digits and +=,.@:/-_')
    .optional(),
  sessionName: checkedString(
    matching(SESSION_NAME, '2 to 64 characters: letters, digits and +=,.@-_'),
  ).default(DEFAULT_SESSION_NAME),
});

const clusterSchema = strictObject({
  /** Our name for the cluster, used in mappings, reports and invoke payloads. */
  name: clusterName,
  kube: kubeClusterSchema.optional(),
  eks: eksClusterSchema.optional(),
})
  .superRefine((cluster, ctx) => requireExactlyOne(cluster, ['kube', 'eks'], ctx))
  .transform(
    (
      cluster,
    ):
      | { name: string; kube: z.output<typeof kubeClusterSchema> }
      | { name: string; eks: z.output<typeof eksClusterSchema> } =>
      cluster.kube !== undefined
        ? { name: cluster.name, kube: cluster.kube }
        : { name: cluster.name, eks: cluster.eks! },
  );

// ---------------------------------------------------------------------------
// Mappings

const secretsManagerSourceSchema = strictObject({
  /** Secret name or ARN. */
  secretId: nonEmpty().max(2048),
  /** Staging label; default AWSCURRENT when versionId is absent. */
  versionStage: nonEmpty().max(256).optional(),
  versionId: z.string().min(32).max(64).optional(),
  /** Region of the secret; default: the function's region (or an ARN's region). */
  region: region.optional(),
}).transform((source) =>
  source.versionId === undefined && source.versionStage === undefined
    ? { ...source, versionStage: 'AWSCURRENT' }
    : source,
);

const kubernetesSourceSchema = strictObject({
  namespace: dnsLabel,
  name: dnsSubdomain,
  /** Data key holding the credential. */
  key: checkedString(
    matching(SECRET_KEY, 'a secret data key: at most 253 letters, digits, "-", "_" and "."'),
  ).default(DOCKER_CONFIG_KEY),
});

const sourceSchema = strictObject({
  secretsManager: secretsManagerSourceSchema.optional(),
  kubernetes: kubernetesSourceSchema.optional(),
  /** Path to a file; relative paths resolve against the configuration file's directory. */
  file: nonEmpty().optional(),
})
  .superRefine((source, ctx) => requireExactlyOne(source, ['secretsManager', 'kubernetes', 'file'], ctx))
  .transform(
    (
      source,
    ):
      | { secretsManager: z.output<typeof secretsManagerSourceSchema> }
      | { kubernetes: z.output<typeof kubernetesSourceSchema> }
      | { file: string } => {
      if (source.secretsManager !== undefined) return { secretsManager: source.secretsManager };
      if (source.kubernetes !== undefined) return { kubernetes: source.kubernetes };
      return { file: source.file! };
    },
  );

/** Label selector operators, with Kubernetes semantics. */
export const LABEL_SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;
/** One of {@link LABEL_SELECTOR_OPERATORS}. */
export type LabelSelectorOperator = (typeof LABEL_SELECTOR_OPERATORS)[number];

const requirementSchema = strictObject({
  key: checkedString(labelKeyProblem),
  operator: z.enum(LABEL_SELECTOR_OPERATORS, {
    error: (issue) =>
      typeof issue.input === 'string'
        ? `unknown operator ${quote(issue.input)} (expected ${LABEL_SELECTOR_OPERATORS.join(', ')})`
        : undefined,
  }),
  values: z.array(labelValue).default([]),
}).superRefine((requirement, ctx) => {
  const needsValues = requirement.operator === 'In' || requirement.operator === 'NotIn';
  if (needsValues && requirement.values.length === 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['values'],
      message: `must not be empty for operator ${requirement.operator}`,
    });
  }
  if (!needsValues && requirement.values.length > 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['values'],
      message: `must be empty for operator ${requirement.operator}`,
    });
  }
});

const selectorSchema = strictObject({
  matchLabels: z
    .record(z.string(), z.string())
    .superRefine((labels, ctx) => {
      for (const [key, value] of Object.entries(labels)) {
        const message = labelKeyProblem(key) ?? labelValueProblem(value);
        if (message !== undefined) ctx.addIssue({ code: 'custom', path: [key], message });
      }
    })
    .default({}),
  matchExpressions: z.array(requirementSchema).default([]),
});

const namespacePattern = checkedString(patternProblem(dnsLabelProblem, 63));

const namespacesSchema = strictObject({
  /** Names or globs; empty means every namespace. */
  include: z.array(namespacePattern).default([]),
  /** Names or globs; always wins over include. */
  exclude: z.array(namespacePattern).default([]),
  /** Skip kube-system, kube-public and kube-node-lease unless named exactly in include. */
  excludeSystem: z.boolean().default(true),
  /** Kubernetes label selector on the namespace's labels; ANDed with include. */
  selector: selectorSchema.optional(),
}).prefault({});

/** What a mapping does with a same-named secret it does not own. */
export const ON_CONFLICT = { skip: 'skip', adopt: 'adopt' } as const;
/** One of {@link ON_CONFLICT}. */
export type OnConflict = (typeof ON_CONFLICT)[keyof typeof ON_CONFLICT];

const mappingSchema = strictObject({
  /** Unique mapping name; default: secretName. Written to the mapping annotation. */
  name: checkedString((v) =>
    v.length <= 63 && QUALIFIED_NAME.test(v)
      ? undefined
      : `${quote(v)} is not a valid mapping name (at most 63 characters: letters, digits, "-", "_" and ".", starting and ending with a letter or digit)`,
  ).optional(),
  /** Name of the secret created in each namespace. */
  secretName: dnsSubdomain,
  source: sourceSchema,
  /** Clusters (by name) this mapping applies to; default: all. */
  clusters: z.array(clusterName).min(1, 'must not be empty (omit it to mean every cluster)').optional(),
  namespaces: namespacesSchema,
  /** Service account names or globs; ["*"] = all, [] = none. */
  serviceAccounts: z.array(checkedString(patternProblem(dnsSubdomainProblem, 253))).default(['default']),
  onConflict: z.enum([ON_CONFLICT.skip, ON_CONFLICT.adopt]).default(ON_CONFLICT.skip),
  /** Remove our secrets (and service-account entries) where this mapping no longer applies. */
  prune: z.boolean().default(true),
}).transform(({ name, ...rest }) => ({ name: name ?? rest.secretName, ...rest }));

const settingsSchema = strictObject({
  /** Parallel API writes per cluster. */
  concurrency: z.number().int().min(1).max(64).default(8),
  /** Retries of a failed API call (throttling, conflicts, 5xx). */
  maxRetries: z.number().int().min(0).max(20).default(5),
  /** Clusters reconciled in parallel. */
  clusterConcurrency: z.number().int().min(1).max(32).default(4),
  /**
   * `limit` of each LIST call; 0 (the default) lists each collection in one
   * request, which the API server serves from its watch cache.
   */
  pageSize: z.number().int().min(0).max(5000).default(0),
}).prefault({});

// ---------------------------------------------------------------------------
// The whole configuration and its cross-field rules

type PathSegment = string | number;

function firstIndexes<T>(items: readonly T[], key: (item: T) => string): Map<number, number> {
  const seen = new Map<string, number>();
  const duplicates = new Map<number, number>();
  items.forEach((item, index) => {
    const k = key(item);
    const first = seen.get(k);
    if (first === undefined) seen.set(k, index);
    else duplicates.set(index, first);
  });
  return duplicates;
}

const configSchema = strictObject({
  clusters: z
    .array(clusterSchema)
    .min(1)
    .prefault([{ name: DEFAULT_CLUSTER_NAME, kube: {} }]),
  mappings: z.array(mappingSchema).min(1, 'must list at least one mapping'),
  /** Secret names of removed mappings whose copies are still pruned. */
  retiredSecretNames: z.array(dnsSubdomain).default([]),
  settings: settingsSchema,
}).superRefine((config, ctx) => {
  const issue = (path: PathSegment[], message: string) => ctx.addIssue({ code: 'custom', path, message });

  for (const [index, first] of firstIndexes(config.clusters, (c) => c.name)) {
    issue(
      ['clusters', index, 'name'],
      `duplicate cluster name ${quote(config.clusters[index]!.name)} (also clusters[${first}])`,
    );
  }

  for (const [index, first] of firstIndexes(config.mappings, (m) => m.name)) {
    const mapping = config.mappings[index]!;
    const hint =
      mapping.name === mapping.secretName ? '; name defaults to secretName, so set distinct names' : '';
    issue(
      ['mappings', index, 'name'],
      `duplicate mapping name ${quote(mapping.name)} (also mappings[${first}])${hint}`,
    );
  }

  const clusterNames = [...new Set(config.clusters.map((c) => c.name))];
  config.mappings.forEach((mapping, m) => {
    const clusters = mapping.clusters ?? [];
    clusters.forEach((name, c) => {
      if (!clusterNames.includes(name)) {
        issue(
          ['mappings', m, 'clusters', c],
          `unknown cluster ${quote(name)} (defined: ${clusterNames.join(', ')})`,
        );
      }
    });
    for (const [index, first] of firstIndexes(clusters, (name) => name)) {
      issue(
        ['mappings', m, 'clusters', index],
        `duplicate cluster ${quote(clusters[index])} (also clusters[${first}])`,
      );
    }
  });

  for (const [index, first] of firstIndexes(config.retiredSecretNames, (name) => name)) {
    issue(['retiredSecretNames', index], `duplicate name (also retiredSecretNames[${first}])`);
  }
  config.retiredSecretNames.forEach((name, r) => {
    const active = config.mappings.findIndex((mapping) => mapping.secretName === name);
    if (active !== -1) {
      issue(
        ['retiredSecretNames', r],
        `${quote(name)} is the secretName of mappings[${active}]; a retired name must not be in use`,
      );
    }
  });
});

// ---------------------------------------------------------------------------
// Types

/** Makes every property and array of `T` readonly, through unions. */
type DeepReadonly<T> = T extends readonly (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/** The validated configuration, defaults applied. Frozen at runtime. */
export type Config = DeepReadonly<z.output<typeof configSchema>>;
/** The configuration as written (before defaults); handy for building configs in tests. */
export type ConfigInput = z.input<typeof configSchema>;
/** A cluster: the local kube context (`kube`) or an EKS cluster (`eks`). */
export type ClusterConfig = Config['clusters'][number];
export type KubeClusterConfig = Extract<ClusterConfig, { readonly kube: unknown }>;
export type EksClusterConfig = Extract<ClusterConfig, { readonly eks: unknown }>;
/** One mapping: source credential → secret name → namespaces → service accounts. */
export type MappingConfig = Config['mappings'][number];
/** Where a mapping's credential comes from: exactly one of secretsManager, kubernetes, file. */
export type SourceConfig = MappingConfig['source'];
/** Which namespaces a mapping targets. */
export type NamespaceSelection = MappingConfig['namespaces'];
export type LabelSelector = NonNullable<NamespaceSelection['selector']>;
export type LabelSelectorRequirement = LabelSelector['matchExpressions'][number];
export type Settings = Config['settings'];

// ---------------------------------------------------------------------------
// Parsing

/** `mappings[1].namespaces.selector.matchLabels["app.kubernetes.io/name"]` */
function formatPath(segments: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z_$][\w$]*$/.test(segment))
      out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out;
}

/** One line per problem: `path: message`; an unknown key becomes its own path. */
function formatIssue(issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map(
      (key) => `${formatPath([...issue.path, key])}: unknown key (expected one of: ${issue.message})`,
    );
  }
  const where = formatPath(issue.path);
  return [where === '' ? issue.message : `${where}: ${issue.message}`];
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** Makes relative `file` sources and kubeconfig paths absolute against `baseDir`. */
function resolvePaths(config: z.output<typeof configSchema>, baseDir: string): z.output<typeof configSchema> {
  return {
    ...config,
    clusters: config.clusters.map((cluster) =>
      'kube' in cluster && cluster.kube.kubeconfig !== undefined
        ? {
            ...cluster,
            kube: { ...cluster.kube, kubeconfig: path.resolve(baseDir, cluster.kube.kubeconfig) },
          }
        : cluster,
    ),
    mappings: config.mappings.map((mapping) =>
      'file' in mapping.source
        ? { ...mapping, source: { file: path.resolve(baseDir, mapping.source.file) } }
        : mapping,
    ),
  };
}

function build(value: unknown, origin: string, baseDir: string | undefined): Config {
  const result = configSchema.safeParse(value, {
    error: (issue) => (issue.code === 'invalid_type' && issue.input === undefined ? 'required' : undefined),
  });
  if (!result.success) {
    const lines = result.error.issues.flatMap(formatIssue).map((line) => `${origin}: ${line}`);
    throw new ConfigError(lines.join('\n'));
  }
  return deepFreeze(baseDir === undefined ? result.data : resolvePaths(result.data, baseDir));
}

/**
 * Validates an already-parsed configuration value and applies defaults.
 * Throws {@link ConfigError} listing every problem, one per line, as
 * `<origin>: <path>: <message>`, e.g.
 * `config.yaml: mappings[1].namespaces.selector.matchExpressions[0].operator: unknown operator "Inn" (expected In, NotIn, Exists, DoesNotExist)`.
 * Relative `file` paths are left as written.
 */
export function parseConfig(value: unknown, origin: string): Config {
  return build(value, origin, undefined);
}

/** Parses YAML text into a plain value; a syntax error names its line and column. */
function parseYaml(text: string, origin: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const lines = doc.errors.map((error) => {
      const { line, col } = lineCounter.linePos(error.pos[0]);
      return `${origin}:${line}:${col}: ${error.message.split('\n')[0]}`;
    });
    throw new ConfigError(lines.join('\n'));
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    throw new ConfigError(`${origin}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  if (value === null || value === undefined) throw new ConfigError(`${origin}: the configuration is empty`);
  return value;
}

/**
 * Parses configuration text (YAML, or JSON, which is YAML too) and validates it
 * like {@link parseConfig}. Relative `file` paths resolve against `baseDir`
 * when given and are left as written otherwise.
 */
export function parseConfigText(text: string, origin: string, baseDir?: string): Config {
  return build(parseYaml(text, origin), origin, baseDir);
}

/**
 * Reads and validates a configuration file (YAML or JSON). Relative `file`
 * sources and `kubeconfig` paths resolve against the file's directory, so a
 * configuration means the same thing whatever the working directory.
 */
export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = error instanceof Error && 'code' in error ? ` (${String(error.code)})` : '';
    throw new ConfigError(`cannot read configuration file ${quote(file)}${code}`, { cause: error });
  }
  return parseConfigText(text, file, path.dirname(path.resolve(file)));
}

/**
 * The mappings that apply to one cluster: those without `clusters` and those
 * naming it. Throws {@link ConfigError} for a cluster the configuration does
 * not define (e.g. a typo in an invoke payload).
 */
export function resolveMappingsForCluster(config: Config, clusterName: string): readonly MappingConfig[] {
  if (!config.clusters.some((cluster) => cluster.name === clusterName)) {
    const defined = config.clusters.map((cluster) => cluster.name).join(', ');
    throw new ConfigError(`unknown cluster ${quote(clusterName)} (defined: ${defined})`);
  }
  return config.mappings.filter(
    (mapping) => mapping.clusters === undefined || mapping.clusters.includes(clusterName),
  );
}
