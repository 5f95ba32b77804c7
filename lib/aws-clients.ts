/**
 * The AWS SDK clients the Lambda uses, in one place: each created on first
 * use and reused for the life of the container (one per region where the
 * service is regional), so no other module builds its own.
 *
 * Endpoints: SDK v3 already honours `AWS_ENDPOINT_URL` and
 * `AWS_ENDPOINT_URL_<SERVICE>` (e.g. `AWS_ENDPOINT_URL_SECRETS_MANAGER`)
 * through its shared configuration, so pointing the deployed code at an
 * emulator needs no code here; `endpoint` is for callers that set it
 * explicitly (tests that build clients in process).
 */
import { EKSClient } from '@aws-sdk/client-eks';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { STSClient } from '@aws-sdk/client-sts';

/** Settings shared by every client. Production passes none. */
export type AwsClientOptions = {
  /** One endpoint for every service (an emulator such as moto). */
  readonly endpoint?: string | undefined;
  /** Region for clients asked for none; default: the SDK's (`AWS_REGION` in Lambda). */
  readonly region?: string | undefined;
};

/** Lazily created, shared clients. `region` undefined means the default region. */
export type AwsClients = {
  readonly secretsManager: (region?: string | undefined) => SecretsManagerClient;
  readonly lambda: () => LambdaClient;
  readonly sts: (region?: string | undefined) => STSClient;
  readonly eks: (region?: string | undefined) => EKSClient;
  /** The client settings in use, for code that must build a client with other credentials. */
  readonly clientConfig: { readonly endpoint?: string };
};

type ClientSettings = { region?: string; endpoint?: string };

function perRegion<C>(
  create: (settings: ClientSettings) => C,
  options: AwsClientOptions,
): (region?: string | undefined) => C {
  const clients = new Map<string, C>();
  return (region) => {
    const resolved = region ?? options.region;
    const key = resolved ?? '';
    let client = clients.get(key);
    if (!client) {
      client = create({
        ...(resolved ? { region: resolved } : {}),
        ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      });
      clients.set(key, client);
    }
    return client;
  };
}

/**
 * Builds the shared client set. Nothing is created (and no credential is
 * resolved) until a client is first asked for.
 *
 * @example
 * const aws = createAwsClients();
 * await aws.secretsManager('eu-west-1').send(new GetSecretValueCommand({ SecretId: 'registry/team-a' }));
 */
export function createAwsClients(options: AwsClientOptions = {}): AwsClients {
  const lambda = perRegion((settings) => new LambdaClient(settings), options);
  return {
    secretsManager: perRegion((settings) => new SecretsManagerClient(settings), options),
    lambda: () => lambda(),
    sts: perRegion((settings) => new STSClient(settings), options),
    eks: perRegion((settings) => new EKSClient(settings), options),
    clientConfig: options.endpoint ? { endpoint: options.endpoint } : {},
  };
}
