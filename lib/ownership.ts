/**
 * The marks this tool puts on what it writes, and reads to know what it owns.
 * A secret is ours only when it carries {@link MANAGED_LABEL}; nothing without
 * it is ever updated or deleted unless a mapping says to adopt it.
 */
export const DOMAIN = 'imagepullsecret-patcher.io';

/** Label on every secret we create or adopt; its value is always "true". */
export const MANAGED_LABEL = `${DOMAIN}/managed`;
/** Annotation: the mapping that produced the secret. */
export const MAPPING_ANNOTATION = `${DOMAIN}/mapping`;
/** Annotation: the source version (Secrets Manager VersionId, source resourceVersion, or file hash). */
export const SOURCE_VERSION_ANNOTATION = `${DOMAIN}/source-version`;
/** Annotation: sha256 (16 hex) of the `.dockerconfigjson` value we wrote. */
export const CONTENT_HASH_ANNOTATION = `${DOMAIN}/content-hash`;
/** Opt-out annotation on a namespace or service account: "true" means leave it alone. */
export const EXCLUDE_ANNOTATION = `${DOMAIN}/exclude`;
/** The original Go tool's namespace opt-out annotation, honoured too. */
export const LEGACY_EXCLUDE_ANNOTATION = 'k8s.titansoft.com/imagepullsecret-patcher-exclude';
/** The field manager named on every write. */
export const FIELD_MANAGER = 'imagepullsecret-patcher';
/** The secret type and key we write. */
export const DOCKER_CONFIG_TYPE = 'kubernetes.io/dockerconfigjson';
export const DOCKER_CONFIG_KEY = '.dockerconfigjson';
