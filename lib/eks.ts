/**
 * Access to an EKS cluster with the caller's IAM identity: DescribeCluster
 * (once per cluster per invocation) for the endpoint and CA, optionally as a
 * role assumed for that cluster (other accounts, external id), and a bearer
 * token from a presigned STS GetCallerIdentity, renewed before it expires so
 * a long run never sends a stale one.
 */
import { DescribeClusterCommand, EKSClient } from '@aws-sdk/client-eks';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import type { EksClusterConfig } from './config.ts';
import { type AwsCredentials, type AwsCredentialsProvider, createEksToken } from './eks-token.ts';
import { ClusterAccessError } from './errors.ts';
import { type KubeConnection, keepAliveAgent } from './kube-http.ts';

export type EksDeps = {
  /** Base credentials (default: the SDK's default chain, i.e. the Lambda role). */
  readonly credentials?: AwsCredentials | AwsCredentialsProvider | undefined;
  /** Client settings for tests (endpoint of moto); production passes nothing. */
  readonly clientConfig?: { endpoint?: string; credentials?: AwsCredentials } | undefined;
  /** STS endpoint written into tokens (tests only). */
  readonly tokenStsEndpoint?: string | undefined;
  readonly now?: (() => Date) | undefined;
};

/** Renew the token this long before it expires. */
const RENEW_BEFORE_MS = 60_000;

async function assumeRole(cluster: EksClusterConfig, deps: EksDeps): Promise<AwsCredentials> {
  const { roleArn, externalId, sessionName, region } = cluster.eks;
  const sts = new STSClient({
    region,
    ...deps.clientConfig,
    ...(deps.credentials ? { credentials: deps.credentials } : {}),
  });
  try {
    const out = await sts.send(
      new AssumeRoleCommand({
        RoleArn: roleArn,
        RoleSessionName: sessionName,
        ...(externalId ? { ExternalId: externalId } : {}),
      }),
    );
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error('AssumeRole returned no credentials');
    return {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      ...(c.SessionToken ? { sessionToken: c.SessionToken } : {}),
      ...(c.Expiration ? { expiration: c.Expiration } : {}),
    };
  } catch (error) {
    throw new ClusterAccessError(
      `cluster "${cluster.name}": cannot assume ${roleArn}: ${(error as Error).name}`,
      { cause: error },
    );
  }
}

/**
 * The engine's connection to an EKS cluster: its endpoint, a keep-alive
 * agent trusting its CA, and a fresh EKS token on every request.
 * Throws ClusterAccessError when the role, the cluster or its endpoint cannot be had.
 */
export async function eksConnection(cluster: EksClusterConfig, deps: EksDeps): Promise<KubeConnection> {
  const { name, region } = cluster.eks;
  let credentials = cluster.eks.roleArn ? await assumeRole(cluster, deps) : deps.credentials;
  const eks = new EKSClient({ region, ...deps.clientConfig, ...(credentials ? { credentials } : {}) });
  let endpoint: string | undefined;
  let ca: string | undefined;
  try {
    const out = await eks.send(new DescribeClusterCommand({ name }));
    endpoint = out.cluster?.endpoint;
    ca = out.cluster?.certificateAuthority?.data;
  } catch (error) {
    throw new ClusterAccessError(
      `cluster "${cluster.name}": DescribeCluster ${name} in ${region} failed: ${(error as Error).name}`,
      { cause: error },
    );
  }
  if (!endpoint || !ca) {
    throw new ClusterAccessError(
      `cluster "${cluster.name}": DescribeCluster returned no endpoint or CA (is the cluster ACTIVE?)`,
    );
  }
  // The token must be signed by the identity EKS maps; default to the SDK chain when none is given.
  credentials ??= await eks.config.credentials();

  let token: { token: string; expiresAt: Date } | undefined;
  const now = deps.now ?? (() => new Date());
  const signer = credentials;
  return {
    server: endpoint,
    agent: keepAliveAgent(endpoint, { ca: Buffer.from(ca, 'base64') }),
    async credentials() {
      if (!token || token.expiresAt.getTime() - now().getTime() < RENEW_BEFORE_MS) {
        token = await createEksToken({
          clusterName: name,
          region,
          credentials: signer,
          now,
          ...(deps.tokenStsEndpoint ? { stsEndpoint: deps.tokenStsEndpoint } : {}),
        });
      }
      return { headers: { Authorization: `Bearer ${token.token}` } };
    },
  };
}
