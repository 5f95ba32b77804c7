import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../lib/errors.ts';
import { parseInvocation, type RunRequest, toClusterPayload } from '../lib/events.ts';

// Event envelopes as EventBridge delivers them; details follow the AWS documentation examples.
const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:registry/dockerhub-a1b2c3';
const SECRET_NAME = 'registry/dockerhub';

const envelope = (source: string, detailType: string, detail: unknown, resources: string[] = []) => ({
  version: '0',
  id: '6a7e8feb-b491-4cf7-a9f1-bf3703467718',
  'detail-type': detailType,
  source,
  account: '123456789012',
  time: '2025-06-01T12:00:00Z',
  region: 'eu-west-1',
  resources,
  detail,
});

const scheduled = envelope('aws.events', 'Scheduled Event', {}, [
  'arn:aws:events:eu-west-1:123456789012:rule/imagepullsecret-patcher-schedule',
]);

const labelUpdated = (labelUpdated: string | undefined) =>
  envelope(
    'aws.secretsmanager',
    'Secret Label Updated',
    { name: SECRET_NAME, labelUpdated, versionId: 'a1b2c3d4-5678-90ab-cdef-EXAMPLE11111' },
    [SECRET_ARN],
  );

const apiCall = (eventName: string, detail: Record<string, unknown> = {}) =>
  envelope('aws.secretsmanager', 'AWS API Call via CloudTrail', {
    eventVersion: '1.09',
    userIdentity: {
      type: 'AssumedRole',
      arn: 'arn:aws:sts::123456789012:assumed-role/platform-admin/maya',
      accountId: '123456789012',
    },
    eventTime: '2025-06-01T12:00:00Z',
    eventSource: 'secretsmanager.amazonaws.com',
    eventName,
    awsRegion: 'eu-west-1',
    sourceIPAddress: '198.51.100.7',
    userAgent: 'aws-cli/2.17.0',
    requestParameters: { secretId: SECRET_NAME, clientRequestToken: '4d383ea9-084a-49c9-8722-cbfb0f25c456' },
    responseElements: { arn: SECRET_ARN, versionId: '4d383ea9-084a-49c9-8722-cbfb0f25c456' },
    requestID: '0b5c1d45-0e51-4b5a-9d3e-EXAMPLE',
    eventID: '12345678-1234-1234-1234-123456789012',
    readOnly: false,
    eventType: 'AwsApiCall',
    managementEvent: true,
    recipientAccountId: '123456789012',
    eventCategory: 'Management',
    ...detail,
  });

const serviceEvent = (eventName: string, detail: Record<string, unknown> = {}) =>
  envelope('aws.secretsmanager', 'AWS Service Event via CloudTrail', {
    eventVersion: '1.08',
    userIdentity: { accountId: '123456789012', invokedBy: 'secretsmanager.amazonaws.com' },
    eventTime: '2025-06-01T12:00:00Z',
    eventSource: 'secretsmanager.amazonaws.com',
    eventName,
    awsRegion: 'eu-west-1',
    sourceIPAddress: 'secretsmanager.amazonaws.com',
    userAgent: 'secretsmanager.amazonaws.com',
    requestParameters: null,
    responseElements: null,
    additionalEventData: { SecretId: SECRET_ARN },
    requestID: `Rotation-${SECRET_ARN}-7ac47c8c-f328-423b-9698-6926dd1f293e`,
    eventID: '638c6d2d-e098-4100-a3e0-a4b7b87e5b92',
    readOnly: false,
    eventType: 'AwsServiceEvent',
    managementEvent: true,
    recipientAccountId: '123456789012',
    eventCategory: 'Management',
    ...detail,
  });

const change = (secretIds: string[]): RunRequest => ({ trigger: 'secret-change', secretIds, dryRun: false });
const ignored = (reason: string, secretIds?: string[]): RunRequest => ({
  trigger: 'secret-change',
  mappings: [],
  ...(secretIds ? { secretIds } : {}),
  dryRun: false,
  ignored: reason,
});

describe('parseInvocation', () => {
  const accepted: Array<[string, unknown, RunRequest]> = [
    ['an EventBridge schedule', scheduled, { trigger: 'schedule', dryRun: false }],

    ['AWSCURRENT moving to a new version', labelUpdated('AWSCURRENT'), change([SECRET_NAME, SECRET_ARN])],
    [
      'a label event without the label (reconciles to be safe)',
      labelUpdated(undefined),
      change([SECRET_NAME, SECRET_ARN]),
    ],
    [
      'a custom label moving',
      labelUpdated('blue-green'),
      ignored('label blue-green is not AWSCURRENT', [SECRET_NAME, SECRET_ARN]),
    ],

    ['PutSecretValue', apiCall('PutSecretValue'), change([SECRET_NAME, SECRET_ARN])],
    [
      'PutSecretValue explicitly staged as AWSCURRENT',
      apiCall('PutSecretValue', {
        requestParameters: { secretId: SECRET_ARN, versionStages: ['AWSCURRENT'] },
      }),
      change([SECRET_ARN]),
    ],
    [
      'PutSecretValue from a rotation function (AWSPENDING)',
      apiCall('PutSecretValue', {
        requestParameters: { secretId: SECRET_ARN, versionStages: ['AWSPENDING'] },
      }),
      ignored('PutSecretValue staged the new version as AWSPENDING, not AWSCURRENT', [SECRET_ARN]),
    ],
    ['UpdateSecret', apiCall('UpdateSecret'), change([SECRET_NAME, SECRET_ARN])],
    [
      'UpdateSecret reported with the pre-2024 "aRN" spelling',
      apiCall('UpdateSecret', { responseElements: { aRN: SECRET_ARN, name: SECRET_NAME } }),
      change([SECRET_NAME, SECRET_ARN]),
    ],
    [
      'UpdateSecret without responseElements',
      apiCall('UpdateSecret', { responseElements: null }),
      change([SECRET_NAME]),
    ],
    [
      'UpdateSecretVersionStage moving AWSCURRENT (a rollback)',
      apiCall('UpdateSecretVersionStage', {
        requestParameters: {
          secretId: SECRET_ARN,
          versionStage: 'AWSCURRENT',
          moveToVersionId: 'EXAMPLE1-90ab-cdef-fedc-ba987SECRET1',
          removeFromVersionId: 'EXAMPLE2-90ab-cdef-fedc-ba987SECRET2',
        },
      }),
      change([SECRET_ARN]),
    ],
    [
      'UpdateSecretVersionStage moving AWSPENDING',
      apiCall('UpdateSecretVersionStage', {
        requestParameters: { secretId: SECRET_ARN, versionStage: 'AWSPENDING', moveToVersionId: 'v2' },
      }),
      ignored('UpdateSecretVersionStage did not move AWSCURRENT', [SECRET_ARN]),
    ],
    [
      'a failed PutSecretValue',
      apiCall('PutSecretValue', {
        errorCode: 'AccessDenied',
        errorMessage: 'User is not authorized',
        responseElements: null,
      }),
      ignored('PutSecretValue failed (AccessDenied)', [SECRET_NAME]),
    ],
    [
      'a failed UpdateSecret that named no secret',
      apiCall('UpdateSecret', {
        errorCode: 'ValidationException',
        requestParameters: null,
        responseElements: null,
      }),
      ignored('UpdateSecret failed (ValidationException)'),
    ],
    [
      'a read that a broad rule let through',
      apiCall('GetSecretValue'),
      ignored('GetSecretValue does not change a secret value'),
    ],

    ['RotationSucceeded', serviceEvent('RotationSucceeded'), change([SECRET_ARN])],
    [
      'RotationSucceeded carrying the id in serviceEventDetails',
      serviceEvent('RotationSucceeded', {
        additionalEventData: undefined,
        serviceEventDetails: { secretId: SECRET_ARN },
      }),
      change([SECRET_ARN]),
    ],
    [
      'RotationStarted',
      serviceEvent('RotationStarted'),
      ignored('RotationStarted is not a completed rotation'),
    ],
    ['RotationFailed', serviceEvent('RotationFailed'), ignored('RotationFailed is not a completed rotation')],

    ['an empty manual invoke', {}, { trigger: 'manual', dryRun: false }],
    [
      'a schedule rule constant input',
      { action: 'reconcile', dryRun: false },
      { trigger: 'manual', dryRun: false },
    ],
    [
      'a manual invoke with every filter',
      {
        action: 'reconcile',
        clusters: ['prod', 'staging'],
        mappings: ['dockerhub'],
        namespaces: ['team-a'],
        dryRun: true,
      },
      {
        trigger: 'manual',
        clusters: ['prod', 'staging'],
        mappings: ['dockerhub'],
        namespaces: ['team-a'],
        dryRun: true,
      },
    ],
    [
      'a manual invoke with duplicates',
      { clusters: ['prod', 'prod'] },
      { trigger: 'manual', clusters: ['prod'], dryRun: false },
    ],
    [
      'the per-cluster fan-out',
      { action: 'reconcile-cluster', cluster: 'prod', secretIds: [SECRET_ARN], dryRun: true },
      { trigger: 'cluster', clusters: ['prod'], secretIds: [SECRET_ARN], dryRun: true },
    ],
  ];
  for (const [name, event, expected] of accepted) {
    it(`reads ${name}`, () => assert.deepEqual(parseInvocation(event), expected));
  }

  const rejected: Array<[string, unknown, string | RegExp]> = [
    ['null', null, 'unrecognised event: expected a JSON object, got null'],
    ['an array', [], 'unrecognised event: expected a JSON object, got an array'],
    ['a string', 'reconcile', 'unrecognised event: expected a JSON object, got a string'],
    [
      'an S3 notification via EventBridge',
      envelope('aws.s3', 'Object Created', { bucket: { name: 'x' } }),
      'unrecognised event: source "aws.s3", detail-type "Object Created"',
    ],
    [
      'an unknown Secrets Manager detail-type',
      envelope('aws.secretsmanager', 'Secret Deleted', { name: SECRET_NAME }),
      'unrecognised event: source "aws.secretsmanager", detail-type "Secret Deleted"',
    ],
    [
      'a schedule from another source',
      envelope('aws.scheduler', 'Scheduled Event', {}),
      'unrecognised event: source "aws.scheduler", detail-type "Scheduled Event"',
    ],
    [
      'a CloudTrail event from another service',
      apiCall('PutParameter', { eventSource: 'ssm.amazonaws.com' }),
      /^unrecognised event: .*eventSource "ssm\.amazonaws\.com"/,
    ],
    [
      'a non-string source',
      { source: 42, 'detail-type': 'x' },
      'unrecognised event: source <a number>, detail-type "x"',
    ],
    ['an SQS batch', { Records: [{ body: '{}' }] }, /^unrecognised event: a "Records" batch/],
    [
      'a label event without a name',
      envelope('aws.secretsmanager', 'Secret Label Updated', { labelUpdated: 'AWSCURRENT' }),
      'event.detail.name: expected a non-empty string',
    ],
    [
      'a label event without detail',
      envelope('aws.secretsmanager', 'Secret Label Updated', undefined),
      'event.detail: expected an object',
    ],
    [
      'PutSecretValue without a secretId',
      apiCall('PutSecretValue', { requestParameters: { clientRequestToken: 'x' } }),
      'event.detail.requestParameters.secretId: expected a non-empty string',
    ],
    [
      'RotationSucceeded without a secret id',
      serviceEvent('RotationSucceeded', { additionalEventData: null }),
      'event.detail.additionalEventData.SecretId: expected a non-empty string',
    ],

    ['a non-string cluster', { clusters: [42] }, 'payload.clusters[0]: expected a non-empty string'],
    ['an empty cluster name', { clusters: ['prod', ''] }, 'payload.clusters[1]: expected a non-empty string'],
    [
      'a cluster name with spaces',
      { clusters: ['my prod'] },
      'payload.clusters[0]: expected a name without whitespace',
    ],
    ['clusters as a string', { clusters: 'prod' }, 'payload.clusters: expected an array of strings'],
    ['an empty clusters list', { clusters: [] }, /^payload\.clusters: expected at least one entry/],
    ['an empty mappings list', { mappings: [] }, /^payload\.mappings: expected at least one entry/],
    [
      'a namespace that is not a namespace name',
      { namespaces: ['Team_A'] },
      'payload.namespaces[0]: expected a namespace name (a lowercase RFC 1123 label)',
    ],
    ['a namespace glob', { namespaces: ['team-*'] }, /^payload\.namespaces\[0\]: expected a namespace name/],
    ['a string dryRun', { dryRun: 'true' }, 'payload.dryRun: expected true or false'],
    ['a misspelt field', { dryrun: true }, 'payload: unknown field "dryrun"'],
    [
      'several unknown fields',
      { cluster: 'prod', secretIds: [] },
      'payload: unknown fields "cluster", "secretIds"',
    ],
    [
      'an unknown action',
      { action: 'delete' },
      'payload.action: expected "reconcile" or "reconcile-cluster"',
    ],
    [
      'a fan-out without a cluster',
      { action: 'reconcile-cluster', dryRun: false },
      'payload.cluster: expected a non-empty string',
    ],
    [
      'a fan-out with a clusters list',
      { action: 'reconcile-cluster', cluster: 'prod', clusters: ['prod'] },
      'payload: unknown field "clusters"',
    ],
    [
      'a fan-out with an empty secret id',
      { action: 'reconcile-cluster', cluster: 'prod', secretIds: [''] },
      'payload.secretIds[0]: expected a non-empty string',
    ],
    [
      'several problems at once',
      { clusters: [''], dryRun: 1 },
      'payload.clusters[0]: expected a non-empty string; payload.dryRun: expected true or false',
    ],
  ];
  for (const [name, event, message] of rejected) {
    it(`rejects ${name}`, () => {
      assert.throws(
        () => parseInvocation(event),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.equal(error.code, 'CONFIG_INVALID');
          if (typeof message === 'string') assert.equal(error.message, message);
          else assert.match(error.message, message);
          return true;
        },
      );
    });
  }

  it('never dumps the event into an unrecognised-event error', () => {
    const event = envelope('aws.s3', 'Object Created', { note: 'do-not-echo-this-value' });
    assert.throws(
      () => parseInvocation(event),
      (error: unknown) => error instanceof Error && !error.message.includes('do-not-echo-this-value'),
    );
  });

  it('cuts long event fields short in errors', () => {
    const event = envelope('x'.repeat(500), 'y', {});
    assert.throws(
      () => parseInvocation(event),
      (error: unknown) => error instanceof Error && error.message.length < 250,
    );
  });
});

describe('toClusterPayload', () => {
  const requests: Array<[string, RunRequest]> = [
    ['a schedule', { trigger: 'schedule', dryRun: false }],
    [
      'a dry-run manual invoke',
      { trigger: 'manual', mappings: ['dockerhub'], namespaces: ['team-a'], dryRun: true },
    ],
    ['a secret change', { trigger: 'secret-change', secretIds: [SECRET_NAME, SECRET_ARN], dryRun: false }],
  ];
  for (const [name, request] of requests) {
    it(`round-trips ${name} through parseInvocation`, () => {
      const payload = toClusterPayload(request, 'prod');
      const { trigger: _, clusters: __, ...rest } = request;
      assert.deepEqual(parseInvocation(JSON.parse(JSON.stringify(payload))), {
        ...rest,
        trigger: 'cluster',
        clusters: ['prod'],
      });
    });
  }
});
