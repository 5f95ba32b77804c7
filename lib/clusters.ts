/**
 * Turns a configured kube context into a connection the engine can use:
 * @kubernetes/client-node reads the kubeconfig and runs its auth (tokens,
 * client certificates, exec plugins, proxies). EKS clusters are handled by
 * lib/eks.ts.
 */
import type https from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import type { KubeClusterConfig } from './config.ts';
import { ClusterAccessError } from './errors.ts';
import { type Credentials, type KubeConnection, keepAliveAgent } from './kube-http.ts';

/**
 * A KubeConfig for a `kube:` cluster: its kubeconfig file (default: the
 * client's default search, $KUBECONFIG then ~/.kube/config) and context
 * (default: the file's current context).
 */
export function kubeConfigFor(cluster: KubeClusterConfig): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (cluster.kube.kubeconfig) kc.loadFromFile(cluster.kube.kubeconfig);
    else kc.loadFromDefault();
  } catch (error) {
    throw new ClusterAccessError(
      `cluster "${cluster.name}": cannot load kubeconfig ${cluster.kube.kubeconfig ?? '(default)'}`,
      { cause: error },
    );
  }
  if (cluster.kube.context) {
    if (!kc.getContextObject(cluster.kube.context)) {
      const known =
        kc
          .getContexts()
          .map((c) => c.name)
          .join(', ') || 'none';
      throw new ClusterAccessError(
        `cluster "${cluster.name}": no context "${cluster.kube.context}" in the kubeconfig (contexts: ${known})`,
      );
    }
    kc.setCurrentContext(cluster.kube.context);
  }
  if (!kc.getCurrentCluster()) {
    throw new ClusterAccessError(`cluster "${cluster.name}": the kubeconfig has no current context`);
  }
  return kc;
}

/**
 * The engine's connection for a KubeConfig's current context. TLS material
 * is read once into a keep-alive agent (a proxy's agent is used as is);
 * credentials are asked of the KubeConfig before each request, so exec and
 * OIDC tokens renew as client-node renews them.
 */
export async function kubeConnection(kc: KubeConfig): Promise<KubeConnection> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ClusterAccessError('the kubeconfig has no current cluster');
  // TLS, auth headers and (through a proxy) the agent, as client-node applies them.
  const requestOptions = async (): Promise<https.RequestOptions> => {
    const options: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(options);
    return options;
  };
  const options = await requestOptions();
  const agent = cluster.proxyUrl
    ? (options.agent as https.Agent)
    : keepAliveAgent(cluster.server, {
        ...(options.ca ? { ca: options.ca } : {}),
        ...(options.cert ? { cert: options.cert } : {}),
        ...(options.key ? { key: options.key } : {}),
        ...(options.servername ? { servername: options.servername } : {}),
        ...(options.rejectUnauthorized !== undefined
          ? { rejectUnauthorized: options.rejectUnauthorized }
          : {}),
      });
  return {
    server: cluster.server,
    agent,
    credentials: async (): Promise<Credentials> => {
      const { headers = {}, auth } = await requestOptions();
      return {
        headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, String(v)])),
        ...(typeof auth === 'string' ? { auth } : {}),
      };
    },
  };
}
