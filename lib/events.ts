/**
 * What starts a run: turns whatever invoked the Lambda into a {@link RunRequest}.
 * Pure parsing; no clients, no environment.
 *
 * Recognised invocations:
 * - EventBridge schedule (`source: aws.events`, `detail-type: Scheduled Event`) → `schedule`.
 * - Secrets Manager value changes → `secret-change` with the changed secret's ids:
 *   the native `Secret Label Updated` event (AWSCURRENT moved), and, through
 *   CloudTrail, `PutSecretValue`, `UpdateSecret`, `UpdateSecretVersionStage`
 *   (moving AWSCURRENT) and the `RotationSucceeded` service event.
 * - A manual invoke, or a schedule rule's constant input:
 *   `{ action?: 'reconcile', clusters?, mappings?, namespaces?, dryRun? }` → `manual`.
 * - The per-cluster fan-out invoke:
 *   `{ action: 'reconcile-cluster', cluster, mappings?, namespaces?, secretIds?, dryRun? }` → `cluster`.
 *
 * A recognised event that asks for no work (a failed API call, a label other
 * than AWSCURRENT, a rotation step that is not the last) is returned with
 * `ignored` set rather than thrown: it is not an error, and EventBridge would
 * only retry it. Anything unrecognised or malformed throws {@link ConfigError}.
 */
import { z } from 'zod';
import { ConfigError } from './errors.ts';

/** Why a run happens. */
export const Trigger = {
  schedule: 'schedule',
  secretChange: 'secret-change',
  manual: 'manual',
  /** The asynchronous per-cluster invoke the fan-out makes. */
  cluster: 'cluster',
} as const;
export type Trigger = (typeof Trigger)[keyof typeof Trigger];

/** The `action` of an invoke payload. */
export const InvokeAction = {
  reconcile: 'reconcile',
  reconcileCluster: 'reconcile-cluster',
} as const;
export type InvokeAction = (typeof InvokeAction)[keyof typeof InvokeAction];

/**
 * What a run should do. Every list is a filter: absent means "all", and a
 * present list is never empty except `mappings: []` on an ignored request.
 */
export type RunRequest = {
  readonly trigger: Trigger;
  /** Cluster names to reconcile; undefined = all configured clusters. */
  readonly clusters?: readonly string[];
  /** Mapping names to reconcile; undefined = all mappings. */
  readonly mappings?: readonly string[];
  /** Exact namespace names to limit the run to; undefined = every selected namespace. */
  readonly namespaces?: readonly string[];
  /**
   * For `secret-change` (and a fan-out carrying one): every identifier the event
   * gives for the changed secret(s), name and/or ARN, deduplicated. The engine
   * runs the mappings whose source matches any of them.
   */
  readonly secretIds?: readonly string[];
  /** Plan and report without writing. */
  readonly dryRun: boolean;
  /**
   * Set when the event was recognised but asks for no work; the text says why
   * (e.g. `label AWSPENDING is not AWSCURRENT`). Such a request also has
   * `mappings: []`, so an engine that forgot to check still selects nothing.
   */
  readonly ignored?: string;
};

/** The manual invoke payload (also a schedule rule's constant input). Unknown fields are rejected. */
export type ReconcilePayload = {
  /** Default `reconcile`. */
  readonly action?: typeof InvokeAction.reconcile;
  readonly clusters?: readonly string[];
  readonly mappings?: readonly string[];
  readonly namespaces?: readonly string[];
  /** Default false. */
  readonly dryRun?: boolean;
};

/** The payload of the per-cluster fan-out invoke; build it with {@link toClusterPayload}. */
export type ClusterPayload = {
  readonly action: typeof InvokeAction.reconcileCluster;
  readonly cluster: string;
  readonly mappings?: readonly string[];
  readonly namespaces?: readonly string[];
  readonly secretIds?: readonly string[];
  /** Default false. */
  readonly dryRun?: boolean;
};

const NON_EMPTY = 'expected a non-empty string';
const SECRETS_MANAGER_EVENT_SOURCE = 'secretsmanager.amazonaws.com';
const AWSCURRENT = 'AWSCURRENT';
// CloudTrail API calls that can change the AWSCURRENT value. UpdateSecret also covers
// metadata-only updates; those cost one no-op run, which is cheaper than missing a change.
const CHANGING_API_CALLS: ReadonlySet<string> = new Set([
  'PutSecretValue',
  'UpdateSecret',
  'UpdateSecretVersionStage',
]);

const nameSchema = z
  .string({ error: NON_EMPTY })
  .min(1, { error: NON_EMPTY, abort: true })
  .regex(/^\S+$/, { error: 'expected a name without whitespace' });
const namespaceSchema = z
  .string({ error: NON_EMPTY })
  .min(1, { error: NON_EMPTY, abort: true })
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, {
    error: 'expected a namespace name (a lowercase RFC 1123 label)',
  });
const listOf = (item: z.ZodType<string>) =>
  z
    .array(item, { error: 'expected an array of strings' })
    .min(1, { error: 'expected at least one entry; omit the field to mean all' });
const dryRunSchema = z.boolean({ error: 'expected true or false' }).default(false);

const reconcilePayloadSchema = z
  .object({
    action: z.literal(InvokeAction.reconcile).optional(),
    clusters: listOf(nameSchema).optional(),
    mappings: listOf(nameSchema).optional(),
    namespaces: listOf(namespaceSchema).optional(),
    dryRun: dryRunSchema,
  })
  .strict();

const clusterPayloadSchema = z
  .object({
    action: z.literal(InvokeAction.reconcileCluster),
    cluster: nameSchema,
    mappings: listOf(nameSchema).optional(),
    namespaces: listOf(namespaceSchema).optional(),
    secretIds: listOf(nameSchema).optional(),
    dryRun: dryRunSchema,
  })
  .strict();

// AWS adds fields over time, so event schemas check only what we read and ignore the rest.
const optionalString = z.string({ error: 'expected a string' }).optional();
const looseRecord = z.record(z.string(), z.unknown(), { error: 'expected an object' });

const labelUpdatedDetailSchema = z.object(
  {
    name: z.string({ error: NON_EMPTY }).min(1, { error: NON_EMPTY }),
    labelUpdated: optionalString,
    versionId: optionalString,
  },
  { error: 'expected an object' },
);

const cloudTrailDetailSchema = z.object(
  {
    eventSource: z.string({ error: NON_EMPTY }).min(1, { error: NON_EMPTY }),
    eventName: z.string({ error: NON_EMPTY }).min(1, { error: NON_EMPTY }),
    errorCode: optionalString,
    requestParameters: looseRecord.nullish(),
    responseElements: looseRecord.nullish(),
    additionalEventData: looseRecord.nullish(),
    serviceEventDetails: looseRecord.nullish(),
  },
  { error: 'expected an object' },
);
type CloudTrailDetail = z.output<typeof cloudTrailDetailSchema>;

/**
 * Parses the Lambda's invocation event into a {@link RunRequest}.
 *
 * @example parseInvocation({ source: 'aws.events', 'detail-type': 'Scheduled Event', ... })
 *   // { trigger: 'schedule', dryRun: false }
 * @example parseInvocation({ clusters: ['prod'], dryRun: true })
 *   // { trigger: 'manual', clusters: ['prod'], dryRun: true }
 * @throws ConfigError for an unrecognised event (naming its source and detail-type,
 *   never dumping it) or an invalid payload (naming the field, e.g.
 *   `payload.clusters[0]: expected a non-empty string`).
 */
export function parseInvocation(event: unknown): RunRequest {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    throw new ConfigError(`unrecognised event: expected a JSON object, got ${describeType(event)}`);
  }
  const record = event as Record<string, unknown>;
  if ('source' in record || 'detail-type' in record) return parseEventBridgeEvent(record);
  if ('Records' in record) {
    throw new ConfigError(
      'unrecognised event: a "Records" batch (SQS, SNS, S3 ...) is not a supported trigger',
    );
  }
  if (record.action === InvokeAction.reconcileCluster) {
    const payload = parseWith(clusterPayloadSchema, record, 'payload');
    return withoutUndefined({
      trigger: Trigger.cluster,
      clusters: [payload.cluster],
      mappings: unique(payload.mappings),
      namespaces: unique(payload.namespaces),
      secretIds: unique(payload.secretIds),
      dryRun: payload.dryRun,
    });
  }
  if (record.action === undefined || record.action === InvokeAction.reconcile) {
    const payload = parseWith(reconcilePayloadSchema, record, 'payload');
    return withoutUndefined({
      trigger: Trigger.manual,
      clusters: unique(payload.clusters),
      mappings: unique(payload.mappings),
      namespaces: unique(payload.namespaces),
      dryRun: payload.dryRun,
    });
  }
  throw new ConfigError(
    `payload.action: expected "${InvokeAction.reconcile}" or "${InvokeAction.reconcileCluster}"`,
  );
}

/**
 * The payload the fan-out sends to reconcile one cluster of `request`;
 * {@link parseInvocation} reads it back as a `cluster` request.
 */
export function toClusterPayload(request: RunRequest, cluster: string): ClusterPayload {
  return withoutUndefined({
    action: InvokeAction.reconcileCluster,
    cluster,
    mappings: request.mappings,
    namespaces: request.namespaces,
    secretIds: request.secretIds,
    dryRun: request.dryRun,
  });
}

function parseEventBridgeEvent(event: Record<string, unknown>): RunRequest {
  const source = event.source;
  const detailType = event['detail-type'];
  if (source === 'aws.events' && detailType === 'Scheduled Event') {
    return { trigger: Trigger.schedule, dryRun: false };
  }
  if (source === 'aws.secretsmanager') {
    if (detailType === 'Secret Label Updated') return parseLabelUpdated(event);
    if (detailType === 'AWS API Call via CloudTrail' || detailType === 'AWS Service Event via CloudTrail') {
      const detail = parseWith(cloudTrailDetailSchema, event.detail, 'event.detail');
      if (detail.eventSource !== SECRETS_MANAGER_EVENT_SOURCE) {
        throw new ConfigError(
          `unrecognised event: source "aws.secretsmanager", detail-type ${quote(detailType)}, ` +
            `eventSource ${quote(detail.eventSource)}`,
        );
      }
      return detailType === 'AWS API Call via CloudTrail'
        ? parseApiCall(detail, event)
        : parseServiceEvent(detail, event);
    }
  }
  throw new ConfigError(`unrecognised event: source ${quote(source)}, detail-type ${quote(detailType)}`);
}

// Native Secrets Manager event: a staging label moved to a new version.
function parseLabelUpdated(event: Record<string, unknown>): RunRequest {
  const detail = parseWith(labelUpdatedDetailSchema, event.detail, 'event.detail');
  const secretIds = uniqueIds([detail.name, ...secretArnsIn(event.resources)]);
  // Absent label: reconcile anyway; a spurious run is harmless, a missed change is not.
  if (detail.labelUpdated !== undefined && detail.labelUpdated !== AWSCURRENT) {
    return ignoredChange(secretIds, `label ${clip(detail.labelUpdated)} is not ${AWSCURRENT}`);
  }
  return { trigger: Trigger.secretChange, secretIds, dryRun: false };
}

function parseApiCall(detail: CloudTrailDetail, event: Record<string, unknown>): RunRequest {
  const eventName = clip(detail.eventName);
  const request = detail.requestParameters ?? {};
  const response = detail.responseElements ?? {};
  // The ARN key was spelled "aRN" by some operations before February 2024; accept any spelling.
  const knownIds = uniqueIds(
    [request.secretId, response.arn, response.aRN, response.ARN, ...secretArnsIn(event.resources)].filter(
      (v): v is string => typeof v === 'string' && v !== '',
    ),
  );

  if (!CHANGING_API_CALLS.has(detail.eventName)) {
    return ignoredChange(undefined, `${eventName} does not change a secret value`);
  }
  if (detail.errorCode) return ignoredChange(knownIds, `${eventName} failed (${clip(detail.errorCode)})`);

  if (detail.eventName === 'PutSecretValue') {
    // A rotation function stages its new value as AWSPENDING; only AWSCURRENT is live.
    const stages = request.versionStages;
    if (Array.isArray(stages) && !stages.includes(AWSCURRENT)) {
      const named = stages.filter((v): v is string => typeof v === 'string').map(clip);
      return ignoredChange(
        knownIds,
        `PutSecretValue staged the new version as ${named.join(', ') || 'nothing'}, not ${AWSCURRENT}`,
      );
    }
  }
  if (detail.eventName === 'UpdateSecretVersionStage') {
    if (request.versionStage !== AWSCURRENT || typeof request.moveToVersionId !== 'string') {
      return ignoredChange(knownIds, `UpdateSecretVersionStage did not move ${AWSCURRENT}`);
    }
  }
  // A change must name its secret; without it the engine could only guess.
  requiredString(request.secretId, 'event.detail.requestParameters.secretId');
  return { trigger: Trigger.secretChange, secretIds: knownIds, dryRun: false };
}

function parseServiceEvent(detail: CloudTrailDetail, event: Record<string, unknown>): RunRequest {
  if (detail.eventName !== 'RotationSucceeded') {
    return ignoredChange(undefined, `${clip(detail.eventName)} is not a completed rotation`);
  }
  // AWS examples carry the secret in additionalEventData.SecretId; some accounts
  // report it in serviceEventDetails.secretId instead. Accept either.
  const candidates = [
    detail.additionalEventData?.SecretId,
    detail.serviceEventDetails?.secretId,
    detail.serviceEventDetails?.SecretId,
  ].filter((v): v is string => typeof v === 'string' && v !== '');
  const secretIds = uniqueIds([...candidates, ...secretArnsIn(event.resources)]);
  if (secretIds.length === 0) {
    throw new ConfigError(`event.detail.additionalEventData.SecretId: ${NON_EMPTY}`);
  }
  return { trigger: Trigger.secretChange, secretIds, dryRun: false };
}

function ignoredChange(secretIds: readonly string[] | undefined, reason: string): RunRequest {
  return withoutUndefined({
    trigger: Trigger.secretChange,
    mappings: [],
    secretIds: secretIds && secretIds.length > 0 ? secretIds : undefined,
    dryRun: false,
    ignored: reason,
  });
}

function secretArnsIn(resources: unknown): string[] {
  if (!Array.isArray(resources)) return [];
  return resources.filter(
    (r): r is string => typeof r === 'string' && /^arn:[^:]+:secretsmanager:[^:]*:[^:]*:secret:.+/.test(r),
  );
}

function requiredString(value: unknown, path: string): string {
  if (typeof value !== 'string' || value === '') throw new ConfigError(`${path}: ${NON_EMPTY}`);
  return value;
}

function parseWith<S extends z.ZodType>(schema: S, value: unknown, root: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new ConfigError(result.error.issues.map((issue) => formatIssue(issue, root)).join('; '));
}

function formatIssue(issue: z.core.$ZodIssue, root: string): string {
  const path = formatPath(root, issue.path);
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.slice(0, 5).map((key) => quote(key));
    return `${path}: unknown field${issue.keys.length > 1 ? 's' : ''} ${keys.join(', ')}`;
  }
  if (issue.code === 'invalid_value' && issue.path.at(-1) === 'action') {
    return `${path}: expected ${issue.values.map((v) => `"${String(v)}"`).join(' or ')}`;
  }
  return `${path}: ${issue.message}`;
}

function formatPath(root: string, path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (text, key) =>
      typeof key === 'number'
        ? `${text}[${key}]`
        : /^[A-Za-z_$][\w$]*$/.test(String(key))
          ? `${text}.${String(key)}`
          : `${text}[${JSON.stringify(String(key))}]`,
    root,
  );
}

function unique(values: readonly string[] | undefined): readonly string[] | undefined {
  return values === undefined ? undefined : [...new Set(values)];
}

function uniqueIds(values: readonly string[]): readonly string[] {
  return [...new Set(values)];
}

// Omits undefined properties so "absent" stays absent (`'clusters' in request` is meaningful).
function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

// Event fields echoed in messages are cut short (and quoted in errors); the event itself is never dumped.
function clip(value: string): string {
  return value.length > 80 ? `${value.slice(0, 80)}…` : value;
}

function quote(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(clip(value)) : `<${describeType(value)}>`;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'undefined' ? 'nothing' : `a ${typeof value}`;
}
