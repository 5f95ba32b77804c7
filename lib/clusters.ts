/**
 * Turns a configured cluster into a KubeConfig the engine can use. Local kube
 * contexts are read here; EKS clusters are handled by lib/eks.ts.
 */
import { KubeConfig } from '@kubernetes/client-node';
import type { KubeClusterConfig } from './config.ts';
import { ClusterAccessError } from './errors.ts';

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
