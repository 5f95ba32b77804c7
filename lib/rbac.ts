/**
 * The least-privilege RBAC for a configuration: what the patcher's group may
 * do, and nothing more. Secrets are reachable only by the configured names
 * (get/list/watch/update/patch/delete with `resourceNames`; lists carry a
 * `metadata.name` field selector so RBAC allows them); only `create` cannot be
 * limited by name. In-cluster sources get a Role in their own namespace.
 */
import { stringify } from 'yaml';
import type { Config } from './config.ts';

/** The Kubernetes group the EKS access entry maps the function's role to. */
export const DEFAULT_GROUP = 'imagepullsecret-patcher';
const NAME = 'imagepullsecret-patcher';

type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };
type RbacObject = Record<string, unknown>;

export function rbacObjects(config: Config, group = DEFAULT_GROUP): RbacObject[] {
  const secretNames = [
    ...new Set([...config.mappings.map((m) => m.secretName), ...config.retiredSecretNames]),
  ].sort();
  const rules: Rule[] = [
    { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list'] },
    { apiGroups: [''], resources: ['serviceaccounts'], verbs: ['get', 'list', 'patch'] },
    {
      apiGroups: [''],
      resources: ['secrets'],
      verbs: ['get', 'list', 'update', 'patch', 'delete'],
      resourceNames: secretNames,
    },
    { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
  ];
  const labels = { 'app.kubernetes.io/name': NAME };
  const subjects = [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: group }];
  const objects: RbacObject[] = [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: NAME, labels },
      rules,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: NAME, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: NAME },
      subjects,
    },
  ];
  const sources = new Map<string, Set<string>>();
  for (const m of config.mappings) {
    if ('kubernetes' in m.source) {
      const { namespace, name } = m.source.kubernetes;
      sources.set(namespace, (sources.get(namespace) ?? new Set()).add(name));
    }
  }
  for (const [namespace, names] of [...sources].sort(([a], [b]) => a.localeCompare(b))) {
    const roleName = `${NAME}-source`;
    objects.push(
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: roleName, namespace, labels },
        rules: [
          { apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: [...names].sort() },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: roleName, namespace, labels },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: roleName },
        subjects,
      },
    );
  }
  return objects;
}

/** The RBAC as a multi-document YAML stream, ready for `kubectl apply -f -`. */
export function renderRbac(config: Config, group = DEFAULT_GROUP): string {
  return rbacObjects(config, group)
    .map((o) => stringify(o))
    .join('---\n');
}
