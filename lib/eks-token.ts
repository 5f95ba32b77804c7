/**
 * Bearer tokens for the Kubernetes API of an EKS cluster, minted the way
 * `aws eks get-token` and aws-iam-authenticator do: a presigned STS
 * `GetCallerIdentity` URL whose signature covers an `x-k8s-aws-id` header naming
 * the cluster, base64url-encoded behind the `k8s-aws-v1.` prefix. EKS replays
 * the URL against STS (adding the header with its own cluster name) to learn
 * who the caller is, so a token works for one cluster only.
 */
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { ClusterAccessError } from './errors.ts';

/**
 * Resolved AWS credentials. Structurally the SDK's `AwsCredentialIdentity`, so
 * anything a credential provider returns fits.
 */
export type AwsCredentials = {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string | undefined;
  readonly expiration?: Date | undefined;
};

/** A credential provider, e.g. `fromNodeProviderChain()` (the SDK's `AwsCredentialIdentityProvider`). */
export type AwsCredentialsProvider = () => Promise<AwsCredentials>;

/** Every token starts with this. */
export const EKS_TOKEN_PREFIX = 'k8s-aws-v1.';
/** The signed header that binds a token to one cluster; its value is the cluster name. */
export const CLUSTER_ID_HEADER = 'x-k8s-aws-id';
/** The STS call the token presigns. */
export const STS_ACTION = 'GetCallerIdentity';
export const STS_API_VERSION = '2011-06-15';
/** The authenticator accepts a token for this long after its X-Amz-Date. */
export const EKS_TOKEN_ACCEPTED_FOR_MS = 15 * 60 * 1000;
/** What we promise callers: one minute less than the authenticator allows, for clock skew. */
export const EKS_TOKEN_LIFETIME_MS = 14 * 60 * 1000;
/** The largest X-Amz-Expires the authenticator accepts. */
export const MAX_PRESIGN_EXPIRES_SECONDS = 900;

/** Options of {@link createEksToken}. */
export type EksTokenOptions = {
  /** The EKS cluster name (not its ARN): the value of the signed `x-k8s-aws-id` header. */
  readonly clusterName: string;
  /** The cluster's region; the token presigns that region's STS endpoint. */
  readonly region: string;
  /** Static credentials or a provider; a provider is called once per token. */
  readonly credentials: AwsCredentials | AwsCredentialsProvider;
  /** The clock; the signing time is `now()`. */
  readonly now?: () => Date;
  /** X-Amz-Expires of the presigned URL, 1..900; default 60 as the AWS CLI does. */
  readonly expiresInSeconds?: number;
  /** Presign this STS endpoint instead of the region's (tests; private STS endpoints). */
  readonly stsEndpoint?: string;
};

/** A token and the instant after which it should no longer be used. */
export type EksToken = {
  readonly token: string;
  readonly expiresAt: Date;
};

// Partition DNS suffixes by region prefix, most specific first (from the SDK's partitions table).
const PARTITION_SUFFIXES: ReadonlyArray<readonly [prefix: string, suffix: string]> = [
  ['us-isob-', 'sc2s.sgov.gov'],
  ['us-isof-', 'csp.hci.ic.gov'],
  ['us-iso-', 'c2s.ic.gov'],
  ['eu-isoe-', 'cloud.adc-e.uk'],
  ['eusc-', 'amazonaws.eu'],
  ['cn-', 'amazonaws.com.cn'],
];

const REGION_PATTERN = /^[a-z]+(-[a-z]+)+-\d+$/;

/**
 * The regional STS host name for `region`, in the right partition.
 *
 * @example stsHostname('eu-west-1') // 'sts.eu-west-1.amazonaws.com'
 * @example stsHostname('cn-north-1') // 'sts.cn-north-1.amazonaws.com.cn'
 * @throws ClusterAccessError when `region` is not a region name.
 */
export function stsHostname(region: string): string {
  if (!REGION_PATTERN.test(region)) {
    throw new ClusterAccessError(`region "${region}" is not an AWS region name (e.g. "us-east-1")`);
  }
  const suffix = PARTITION_SUFFIXES.find(([prefix]) => region.startsWith(prefix))?.[1] ?? 'amazonaws.com';
  return `sts.${region}.${suffix}`;
}

/**
 * Mints a bearer token for the Kubernetes API of EKS cluster `clusterName`.
 *
 * The token presigns `GET https://sts.<region>.<suffix>/?Action=GetCallerIdentity&Version=2011-06-15`
 * with the `x-k8s-aws-id: <clusterName>` header signed, and carries
 * `X-Amz-Security-Token` when the credentials are temporary. `expiresAt` is
 * signing time + 14 minutes (the authenticator accepts 15), or the credentials'
 * own expiry when that comes first. Output is deterministic for a fixed clock
 * and credentials. Errors never contain the credentials or the token.
 *
 * @example
 * const { token, expiresAt } = await createEksToken({
 *   clusterName: 'prod', region: 'eu-west-1', credentials: fromNodeProviderChain(),
 * });
 * @throws ClusterAccessError when the options are invalid, the credentials cannot be resolved, or signing fails.
 */
export async function createEksToken(options: EksTokenOptions): Promise<EksToken> {
  const { clusterName, region, now = () => new Date(), expiresInSeconds = 60 } = options;
  const what = `EKS token for cluster "${clusterName}"`;
  if (clusterName.length === 0 || clusterName.trim() !== clusterName) {
    throw new ClusterAccessError('cannot create an EKS token: clusterName must be a non-empty name');
  }
  if (
    !Number.isInteger(expiresInSeconds) ||
    expiresInSeconds < 1 ||
    expiresInSeconds > MAX_PRESIGN_EXPIRES_SECONDS
  ) {
    throw new ClusterAccessError(
      `cannot create an ${what}: expiresInSeconds must be an integer from 1 to ${MAX_PRESIGN_EXPIRES_SECONDS}`,
    );
  }
  const endpoint = stsEndpointUrl(region, options.stsEndpoint);

  let credentials: AwsCredentials;
  try {
    credentials =
      typeof options.credentials === 'function' ? await options.credentials() : options.credentials;
  } catch (error) {
    throw new ClusterAccessError(`cannot create an ${what}: AWS credentials could not be resolved`, {
      cause: error,
    });
  }

  const signingDate = now();
  let presigned: PresignedRequest;
  try {
    presigned = await presignGetCallerIdentity({
      endpoint,
      clusterName,
      region,
      credentials,
      signingDate,
      expiresInSeconds,
    });
  } catch (error) {
    // The signer rejects with plain strings too; keep whatever it gave as the cause.
    throw new ClusterAccessError(`cannot create an ${what}: signing the STS request failed`, {
      cause: error,
    });
  }

  const url = formatPresignedUrl(endpoint, presigned.query);
  const token = EKS_TOKEN_PREFIX + Buffer.from(url, 'utf8').toString('base64url');
  const lifetimeEnd = signingDate.getTime() + EKS_TOKEN_LIFETIME_MS;
  const credentialsEnd = credentials.expiration?.getTime() ?? Number.POSITIVE_INFINITY;
  return { token, expiresAt: new Date(Math.min(lifetimeEnd, credentialsEnd)) };
}

/**
 * Decodes a token into the presigned STS URL it carries. Checks the format only
 * (prefix, unpadded base64url, an http(s) URL); it verifies no signature.
 *
 * @throws ClusterAccessError when the token is not an EKS token. The message never contains the token.
 */
export function decodeEksToken(token: string): URL {
  if (typeof token !== 'string' || !token.startsWith(EKS_TOKEN_PREFIX)) {
    throw new ClusterAccessError(`not an EKS token: expected the prefix "${EKS_TOKEN_PREFIX}"`);
  }
  const body = token.slice(EKS_TOKEN_PREFIX.length);
  if (!/^[A-Za-z0-9_-]+$/.test(body)) {
    throw new ClusterAccessError('not an EKS token: expected unpadded base64url after the prefix');
  }
  const decoded = Buffer.from(body, 'base64url');
  // Node decodes leniently; re-encoding exposes truncated or non-canonical input.
  if (decoded.toString('base64url') !== body) {
    throw new ClusterAccessError('not an EKS token: the base64url payload is malformed');
  }
  let url: URL;
  try {
    url = new URL(decoded.toString('utf8'));
  } catch (error) {
    throw new ClusterAccessError('not an EKS token: the payload is not a URL', { cause: error });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ClusterAccessError(`not an EKS token: the payload is a ${url.protocol} URL, expected https:`);
  }
  return url;
}

/** What {@link presignGetCallerIdentity} needs. */
export type PresignInput = {
  /** The STS endpoint; its host (with any port) is the signed `host` header. */
  readonly endpoint: URL;
  readonly clusterName: string;
  /** The signing region (the credential scope's). */
  readonly region: string;
  readonly credentials: AwsCredentials;
  readonly signingDate: Date;
  readonly expiresInSeconds: number;
};

/** The presigned request's query parameters, X-Amz-Signature included. */
export type PresignedRequest = {
  readonly query: Readonly<Record<string, string>>;
};

/**
 * Presigns the token's STS request. Exported so a verifier (the test
 * authenticator) can recompute a signature exactly as it was made.
 */
export async function presignGetCallerIdentity(input: PresignInput): Promise<PresignedRequest> {
  const signer = new SignatureV4({
    credentials: input.credentials,
    region: input.region,
    service: 'sts',
    sha256: Sha256,
  });
  const signed = await signer.presign(
    {
      method: 'GET',
      protocol: input.endpoint.protocol,
      hostname: input.endpoint.hostname,
      port: input.endpoint.port ? Number(input.endpoint.port) : undefined,
      path: input.endpoint.pathname,
      query: { Action: STS_ACTION, Version: STS_API_VERSION },
      headers: { host: input.endpoint.host, [CLUSTER_ID_HEADER]: input.clusterName },
    },
    { signingDate: input.signingDate, expiresIn: input.expiresInSeconds },
  );
  const query: Record<string, string> = {};
  for (const [key, value] of Object.entries(signed.query ?? {})) {
    if (typeof value === 'string') query[key] = value;
  }
  return { query };
}

function stsEndpointUrl(region: string, override: string | undefined): URL {
  const regional = `https://${stsHostname(region)}/`;
  if (override === undefined) return new URL(regional);
  let url: URL;
  try {
    url = new URL(override);
  } catch (error) {
    throw new ClusterAccessError('stsEndpoint is not a URL', { cause: error });
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.search || url.hash || url.username) {
    throw new ClusterAccessError('stsEndpoint must be an http(s) URL without query, fragment or user info');
  }
  return url;
}

// RFC 3986 escaping, the form SigV4 canonicalises to, so the URL reads back to the signed values.
function escapeRfc3986(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function formatPresignedUrl(endpoint: URL, query: Readonly<Record<string, string>>): string {
  const search = Object.keys(query)
    .sort()
    .map((key) => `${escapeRfc3986(key)}=${escapeRfc3986(query[key] ?? '')}`)
    .join('&');
  return `${endpoint.protocol}//${endpoint.host}${endpoint.pathname}?${search}`;
}
