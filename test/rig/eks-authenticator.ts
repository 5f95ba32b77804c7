/**
 * Plays EKS's authenticator (aws-iam-authenticator) for a real kube-apiserver in
 * tests: a Kubernetes webhook token authenticator that accepts `k8s-aws-v1.`
 * tokens. Where EKS replays the presigned URL against STS, this rig checks the
 * same things locally: the request is `GetCallerIdentity`, the token is fresh
 * (15 minutes from X-Amz-Date), `x-k8s-aws-id` is signed, and the signature is
 * right for *this* cluster's name with a known credential (it re-presigns the
 * request with that credential and compares signatures in constant time).
 * The caller's ARN is then mapped to a Kubernetes user, like an access entry.
 *
 * Wire it in with `--authentication-token-webhook-config-file=<writeWebhookKubeconfig(...)>`,
 * `--authentication-token-webhook-version=v1` and `--authentication-token-webhook-cache-ttl=0s`.
 */
import { timingSafeEqual } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import {
  type AwsCredentials,
  CLUSTER_ID_HEADER,
  decodeEksToken,
  EKS_TOKEN_ACCEPTED_FOR_MS,
  MAX_PRESIGN_EXPIRES_SECONDS,
  presignGetCallerIdentity,
  STS_ACTION,
  STS_API_VERSION,
  stsHostname,
} from '../../lib/eks-token.ts';

/** An IAM identity the rig knows, as STS would: keys and the principal's (canonical) ARN. */
export type RigCredential = AwsCredentials & {
  /** e.g. `arn:aws:iam::123456789012:role/patcher` */
  readonly arn: string;
};

/** Maps an ARN to a Kubernetes user, like an EKS access entry or an `aws-auth` mapRoles entry. */
export type RigMapping = {
  readonly arn: string;
  readonly username: string;
  readonly groups: readonly string[];
};

export type EksAuthenticatorOptions = {
  readonly credentials: readonly RigCredential[];
  readonly mappings: readonly RigMapping[];
  /** This cluster's name: tokens must have signed `x-k8s-aws-id` with exactly this value. */
  readonly clusterName: string;
  readonly now?: () => Date;
};

/** The authenticated user, as a TokenReview status carries it. */
export type ReviewedUser = {
  readonly username: string;
  readonly uid: string;
  readonly groups: readonly string[];
  readonly extra: Readonly<Record<string, readonly string[]>>;
};

/** The outcome of one review. `error` says why a token was refused and never contains the token. */
export type Review =
  | { readonly authenticated: true; readonly user: ReviewedUser }
  | { readonly authenticated: false; readonly error: string };

export type EksAuthenticator = {
  /** The webhook URL, `http://127.0.0.1:<port>/authenticate`. */
  readonly url: string;
  /** TokenReview requests received so far (well-formed or not). */
  readonly requests: number;
  /** The outcome of every well-formed TokenReview, oldest first. */
  readonly reviews: readonly Review[];
  close(): Promise<void>;
};

const WEBHOOK_PATH = '/authenticate';
const MAX_BODY_BYTES = 64 * 1024;
const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;
const SIGNED_HEADERS = `host;${CLUSTER_ID_HEADER}`;
const ALLOWED_PARAMETERS = new Set([
  'Action',
  'Version',
  'X-Amz-Algorithm',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-Security-Token',
  'X-Amz-SignedHeaders',
  'X-Amz-Signature',
]);
const TOKEN_REVIEW_VERSIONS = new Set(['authentication.k8s.io/v1', 'authentication.k8s.io/v1beta1']);

/**
 * Starts the authenticator on 127.0.0.1 and a free port. Every TokenReview
 * POSTed to {@link EksAuthenticator.url} is answered with `status.authenticated`
 * and the mapped user, or `authenticated: false` and an `error`.
 */
export async function startEksAuthenticator(options: EksAuthenticatorOptions): Promise<EksAuthenticator> {
  let requests = 0;
  const reviews: Review[] = [];

  const server = createServer((req, res) => {
    if (req.url !== WEBHOOK_PATH) return respond(res, 404, 'not found');
    if (req.method !== 'POST') return respond(res, 405, 'only POST is supported');
    requests += 1;
    handleTokenReview(req, options).then(
      ({ status, body }) => {
        if (typeof body === 'string') return respond(res, status, body);
        reviews.push(body.review);
        respond(res, status, body.response);
      },
      (error: unknown) =>
        respond(res, 500, `review failed: ${error instanceof Error ? error.message : 'error'}`),
    );
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}${WEBHOOK_PATH}`,
    get requests() {
      return requests;
    },
    reviews,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // The apiserver keeps connections alive; without this, close waits for them.
        server.closeAllConnections();
      }),
  };
}

/**
 * Reviews one bearer token the way EKS would (see the module comment). Exported
 * for tests that want the verdict without an HTTP round trip.
 */
export async function reviewEksToken(token: string, options: EksAuthenticatorOptions): Promise<Review> {
  const deny = (error: string): Review => ({ authenticated: false, error });

  let url: URL;
  try {
    url = decodeEksToken(token);
  } catch (error) {
    return deny(error instanceof Error ? error.message : 'not an EKS token');
  }

  const params = url.searchParams;
  for (const key of new Set(params.keys())) {
    if (!ALLOWED_PARAMETERS.has(key)) return deny(`unexpected query parameter "${key.slice(0, 40)}"`);
    if (params.getAll(key).length > 1) return deny(`query parameter "${key}" appears more than once`);
  }
  if (params.get('Action') !== STS_ACTION) return deny(`the presigned action is not ${STS_ACTION}`);
  if (params.get('Version') !== STS_API_VERSION)
    return deny(`the presigned API version is not ${STS_API_VERSION}`);
  if (params.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256')
    return deny('X-Amz-Algorithm is not AWS4-HMAC-SHA256');

  const expires = params.get('X-Amz-Expires') ?? '';
  if (!/^\d{1,6}$/.test(expires) || Number(expires) < 1 || Number(expires) > MAX_PRESIGN_EXPIRES_SECONDS) {
    return deny(`X-Amz-Expires must be from 1 to ${MAX_PRESIGN_EXPIRES_SECONDS}`);
  }

  const amzDate = params.get('X-Amz-Date') ?? '';
  const signedAt = parseAmzDate(amzDate);
  if (signedAt === undefined) return deny('X-Amz-Date is not a yyyymmddThhmmssZ timestamp');
  const now = (options.now ?? (() => new Date()))().getTime();
  if (now - signedAt.getTime() > EKS_TOKEN_ACCEPTED_FOR_MS) return deny('the token has expired');
  if (signedAt.getTime() - now > MAX_CLOCK_SKEW_MS) return deny('the token was signed in the future');

  const signedHeaders = (params.get('X-Amz-SignedHeaders') ?? '').split(';');
  if (!signedHeaders.includes(CLUSTER_ID_HEADER)) return deny(`${CLUSTER_ID_HEADER} is not a signed header`);
  // EKS replays the URL with only this header; any other signed header could never verify.
  if (signedHeaders.join(';') !== SIGNED_HEADERS) return deny(`the signed headers must be ${SIGNED_HEADERS}`);

  const scope = (params.get('X-Amz-Credential') ?? '').split('/');
  const [accessKeyId, day, region, service, terminator] = scope;
  if (
    scope.length !== 5 ||
    !accessKeyId ||
    day !== amzDate.slice(0, 8) ||
    !region ||
    service !== 'sts' ||
    terminator !== 'aws4_request'
  ) {
    return deny('X-Amz-Credential is not an STS credential scope for X-Amz-Date');
  }
  let expectedHost: string;
  try {
    expectedHost = stsHostname(region);
  } catch {
    return deny('the credential scope names no AWS region');
  }
  if (url.protocol !== 'https:' || url.host !== expectedHost || url.pathname !== '/') {
    return deny(`the presigned URL is not the STS endpoint of ${region}`);
  }

  const credential = options.credentials.find((c) => c.accessKeyId === accessKeyId);
  if (credential === undefined) return deny('the access key is not known to STS');
  const presentedSessionToken = params.get('X-Amz-Security-Token');
  if (credential.sessionToken === undefined && presentedSessionToken !== null) {
    return deny('a session token was presented for long-term credentials');
  }
  if (
    credential.sessionToken !== undefined &&
    !sameSecret(presentedSessionToken ?? '', credential.sessionToken)
  ) {
    return deny('the session token is missing or wrong');
  }

  const expected = await presignGetCallerIdentity({
    endpoint: new URL(`${url.protocol}//${url.host}/`),
    clusterName: options.clusterName,
    region,
    credentials: credential,
    signingDate: signedAt,
    expiresInSeconds: Number(expires),
  });
  if (!sameSecret(params.get('X-Amz-Signature') ?? '', expected.query['X-Amz-Signature'] ?? '')) {
    return deny(
      `the signature does not match (wrong secret key, or a token for a cluster other than this one)`,
    );
  }

  const mapping = options.mappings.find((m) => m.arn === credential.arn);
  if (mapping === undefined) return deny('the caller ARN is not mapped to a Kubernetes user');
  const accountId = credential.arn.split(':')[4] ?? '';
  return {
    authenticated: true,
    user: {
      username: mapping.username,
      uid: `aws-iam-authenticator:${accountId}:${accessKeyId}`,
      groups: [...mapping.groups],
      extra: { arn: [credential.arn], accesskeyid: [accessKeyId] },
    },
  };
}

/**
 * Writes the kubeconfig-format file kube-apiserver's
 * `--authentication-token-webhook-config-file` expects, pointing at `url`, and
 * returns its path. Plain http is fine: the apiserver loads this file with
 * client-go's kubeconfig loader, which does not insist on https the way
 * admission webhook URLs do.
 */
export async function writeWebhookKubeconfig(dir: string, url: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'eks-authenticator.kubeconfig');
  const kubeconfig = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'eks-authenticator', cluster: { server: url } }],
    users: [{ name: 'kube-apiserver', user: {} }],
    contexts: [{ name: 'webhook', context: { cluster: 'eks-authenticator', user: 'kube-apiserver' } }],
    'current-context': 'webhook',
  };
  // JSON is YAML, which the kubeconfig loader reads.
  await writeFile(path, `${JSON.stringify(kubeconfig, null, 2)}\n`, { mode: 0o600 });
  return path;
}

type TokenReviewRequest = {
  readonly apiVersion: string;
  readonly spec: { readonly token: string };
};

async function handleTokenReview(
  req: IncomingMessage,
  options: EksAuthenticatorOptions,
): Promise<{ status: number; body: string | { review: Review; response: unknown } }> {
  const raw = await readBody(req);
  if (raw === undefined) return { status: 413, body: 'request body too large' };
  const request = parseTokenReview(raw);
  if (request === undefined) return { status: 400, body: 'expected a TokenReview with spec.token' };
  const review = await reviewEksToken(request.spec.token, options);
  const status = review.authenticated
    ? { authenticated: true, user: review.user }
    : { authenticated: false, error: review.error };
  return {
    status: 200,
    body: { review, response: { apiVersion: request.apiVersion, kind: 'TokenReview', status } },
  };
}

function parseTokenReview(raw: string): TokenReviewRequest | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { apiVersion, kind, spec } = parsed as Record<string, unknown>;
  if (typeof apiVersion !== 'string' || !TOKEN_REVIEW_VERSIONS.has(apiVersion) || kind !== 'TokenReview') {
    return undefined;
  }
  if (typeof spec !== 'object' || spec === null) return undefined;
  const { token } = spec as Record<string, unknown>;
  return typeof token === 'string' ? { apiVersion, spec: { token } } : undefined;
}

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => resolve(size > MAX_BODY_BYTES ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function respond(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json' });
  res.end(text);
}

function parseAmzDate(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0] = m.slice(1).map(Number);
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  // Reject dates that Date.UTC silently rolled over (month 13, second 61, ...).
  return date.toISOString().replace(/[-:]|\.\d{3}/g, '') === value ? date : undefined;
}

// Constant-time comparison; lengths are not secret (signatures are fixed-length hex).
function sameSecret(presented: string, expected: string): boolean {
  const a = Buffer.from(presented, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}
