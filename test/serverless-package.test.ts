/**
 * serverless.yml as CloudFormation: `serverless package` (osls, offline, no
 * AWS account) runs once per deployment-settings variant in the before hook,
 * on the real bundle from scripts/bundle.ts, and the tests read the template
 * and the zip it produced.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { bundle } from '../scripts/bundle.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const SERVERLESS = path.join(ROOT, 'node_modules', 'osls', 'bin', 'serverless.js');
const FUNCTION_NAME = 'imagepullsecret-patcher-test-reconcile';

const SECRETS = [
  'arn:aws:secretsmanager:eu-west-1:123456789012:secret:registry/team-a-Xy12Ab',
  'arn:aws:secretsmanager:eu-west-1:123456789012:secret:registry/team-b-AbCdEf',
];
const CLUSTERS = [
  'arn:aws:eks:eu-west-1:123456789012:cluster/platform-prod',
  'arn:aws:eks:eu-west-1:123456789012:cluster/platform-dev',
];
const ROLES = ['arn:aws:iam::210987654321:role/imagepullsecret-patcher'];
const KEYS = ['arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab'];

/** Every optional feature on. */
const FULL = {
  schedule: 'rate(10 minutes)',
  secretArns: SECRETS,
  clusterArns: CLUSTERS,
  assumeRoleArns: ROLES,
  kmsKeyArns: KEYS,
  cloudTrailEvents: true,
  fanOut: true,
  deadlineMarginMs: 90000,
  vpc: { subnetIds: ['subnet-0a1b2c3d'], securityGroupIds: ['sg-0a1b2c3d'] },
};
/** Only what is required; the optional lists empty. */
const MINIMAL = {
  secretArns: SECRETS.slice(0, 1),
  clusterArns: CLUSTERS.slice(0, 1),
  assumeRoleArns: [],
  kmsKeyArns: [],
  cloudTrailEvents: false,
};

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };
type Template = {
  Conditions: JsonObject;
  Resources: Record<string, { Type: string; Properties: JsonObject }>;
};
type Packaged = { template: Template; zipEntries: string[] };

const run = promisify(execFile);
let workDir: string;
const packaged: Record<'full' | 'minimal', Packaged> = {} as Record<'full' | 'minimal', Packaged>;

async function packageVariant(name: string, settings: object, dist: string): Promise<Packaged> {
  const dir = path.join(workDir, name);
  await mkdir(dir);
  await copyFile(path.join(ROOT, 'serverless.yml'), path.join(dir, 'serverless.yml'));
  await cp(dist, path.join(dir, 'dist'), { recursive: true });
  await writeFile(path.join(dir, 'deploy.test.yml'), stringify({ region: 'eu-west-1', ...settings }));
  await run(
    process.execPath,
    [
      SERVERLESS,
      'package',
      '--stage',
      'test',
      '--region',
      'eu-west-1',
      '--param',
      'deployConfig=deploy.test.yml',
    ],
    {
      cwd: dir,
      timeout: 180_000,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: dir,
        AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'not-a-real-secret',
        SLS_TELEMETRY_DISABLED: '1',
        SLS_NOTIFICATIONS_MODE: 'off',
      },
    },
  );
  const out = path.join(dir, '.serverless');
  return {
    template: JSON.parse(await readFile(path.join(out, 'cloudformation-template-update-stack.json'), 'utf8')),
    zipEntries: zipEntryNames(await readFile(path.join(out, 'imagepullsecret-patcher.zip'))),
  };
}

/** File names in a zip's central directory. */
function zipEntryNames(zip: Buffer): string[] {
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = zip.readUInt16LE(eocd + 10);
  let offset = zip.readUInt32LE(eocd + 16);
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    names.push(zip.toString('utf8', offset + 46, offset + 46 + nameLength));
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return names.sort();
}

/** Evaluates the template's conditions (literal Fn::Equals / Not / And / Or, as ours are). */
function conditions(template: Template): Map<string, boolean> {
  const values = new Map<string, boolean>();
  const evaluate = (node: Json): boolean => {
    const fn = node as JsonObject;
    if ('Fn::Equals' in fn) {
      const [a, b] = fn['Fn::Equals'] as Json[];
      assert.ok(typeof a !== 'object' && typeof b !== 'object', 'conditions compare literals only');
      return a === b;
    }
    if ('Fn::Not' in fn) return !evaluate((fn['Fn::Not'] as Json[])[0]!);
    if ('Fn::And' in fn) return (fn['Fn::And'] as Json[]).every(evaluate);
    if ('Fn::Or' in fn) return (fn['Fn::Or'] as Json[]).some(evaluate);
    if ('Condition' in fn) return evaluate(template.Conditions[fn.Condition as string]!);
    throw new Error(`unexpected condition ${JSON.stringify(node)}`);
  };
  for (const [name, node] of Object.entries(template.Conditions ?? {})) values.set(name, evaluate(node));
  return values;
}

const NO_VALUE = Symbol('AWS::NoValue');

/** Resolves Fn::If and AWS::NoValue the way CloudFormation does, leaving other intrinsics as they are. */
function resolve(template: Template, node: Json): Json {
  const values = conditions(template);
  const walk = (value: Json): Json | typeof NO_VALUE => {
    if (Array.isArray(value)) return value.map(walk).filter((v): v is Json => v !== NO_VALUE);
    if (value === null || typeof value !== 'object') return value;
    if ('Fn::If' in value) {
      const [name, yes, no] = value['Fn::If'] as [string, Json, Json];
      assert.ok(values.has(name), `condition ${name} is defined`);
      return walk(values.get(name) ? yes : no);
    }
    if (value.Ref === 'AWS::NoValue') return NO_VALUE;
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) {
      const w = walk(v);
      if (w !== NO_VALUE) out[k] = w;
    }
    return out;
  };
  const result = walk(node);
  return result === NO_VALUE ? null : result;
}

type Statement = {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: Json;
  Condition?: JsonObject;
};

function statements(p: Packaged): Statement[] {
  const role = p.template.Resources.PatcherRole!;
  const policies = resolve(p.template, role.Properties.Policies!) as {
    PolicyDocument: { Statement: Statement[] };
  }[];
  return policies.flatMap((policy) => policy.PolicyDocument.Statement);
}

function allowing(p: Packaged, action: string): Statement[] {
  return statements(p).filter((s) => [s.Action].flat().includes(action));
}

function resourcesOf(type: string, p: Packaged) {
  return Object.values(p.template.Resources).filter((r) => r.Type === type);
}

function ruleFor(p: Packaged, detailType: string) {
  const rules = resourcesOf('AWS::Events::Rule', p).filter((r) =>
    (
      (r.Properties.EventPattern as JsonObject | undefined)?.['detail-type'] as string[] | undefined
    )?.includes(detailType),
  );
  assert.equal(rules.length, 1, `one rule for ${detailType}`);
  return rules[0]!.Properties;
}

describe('serverless package', () => {
  before(async () => {
    workDir = await mkdtemp(path.join(tmpdir(), 'ipsp-sls-'));
    const dist = path.join(workDir, 'dist');
    await bundle({ outdir: dist, config: path.join(ROOT, 'examples', 'multi-team.yaml') });
    const [full, minimal] = await Promise.all([
      packageVariant('full', FULL, dist),
      packageVariant('minimal', MINIMAL, dist),
    ]);
    packaged.full = full;
    packaged.minimal = minimal;
  });

  after(async () => {
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it('packages the prebuilt bundle, its source map and the patcher config, nothing else', () => {
    assert.deepEqual(packaged.full.zipEntries, [
      'dist/imagepullsecret-patcher.yaml',
      'dist/reconcile.mjs',
      'dist/reconcile.mjs.map',
    ]);
  });

  it('runs the bundle on nodejs24.x, arm64, 512 MB, 15 minutes, logs kept 30 days', () => {
    const [fn] = resourcesOf('AWS::Lambda::Function', packaged.full);
    assert.ok(fn);
    const p = fn.Properties;
    assert.equal(p.Runtime, 'nodejs24.x');
    assert.deepEqual(p.Architectures, ['arm64']);
    assert.equal(p.MemorySize, 512);
    assert.equal(p.Timeout, 900);
    assert.equal(p.Handler, 'dist/reconcile.handler');
    assert.equal(p.FunctionName, FUNCTION_NAME);
    assert.deepEqual(p.Role, { 'Fn::GetAtt': ['PatcherRole', 'Arn'] });
    const env = (p.Environment as { Variables: Record<string, string> }).Variables;
    assert.equal(env.PATCHER_FAN_OUT, 'true');
    assert.equal(env.PATCHER_DEADLINE_MARGIN_MS, '90000');
    assert.equal(env.NODE_OPTIONS, '--enable-source-maps');
    assert.equal(resourcesOf('AWS::Logs::LogGroup', packaged.full)[0]?.Properties.RetentionInDays, 30);
    assert.equal(
      resourcesOf('AWS::Lambda::EventInvokeConfig', packaged.full)[0]?.Properties.MaximumRetryAttempts,
      0,
    );
  });

  it('puts the function in the VPC only when subnets are configured', () => {
    const vpcOf = (p: Packaged) => resourcesOf('AWS::Lambda::Function', p)[0]!.Properties.VpcConfig;
    assert.deepEqual(vpcOf(packaged.full), {
      SecurityGroupIds: ['sg-0a1b2c3d'],
      SubnetIds: ['subnet-0a1b2c3d'],
    });
    assert.equal(vpcOf(packaged.minimal), undefined);
    const managed = (p: Packaged) =>
      resolve(p.template, p.template.Resources.PatcherRole!.Properties.ManagedPolicyArns ?? null) ?? [];
    assert.equal(JSON.stringify(managed(packaged.full)).includes('AWSLambdaVPCAccessExecutionRole'), true);
    assert.deepEqual(managed(packaged.minimal), []);
  });

  it('schedules the full run with the configured rate and a Scheduled Event (no constant input)', () => {
    const schedules = resourcesOf('AWS::Events::Rule', packaged.full).filter(
      (r) => r.Properties.ScheduleExpression,
    );
    assert.equal(schedules.length, 1);
    const rule = schedules[0]!.Properties;
    assert.equal(rule.ScheduleExpression, 'rate(10 minutes)');
    assert.equal(rule.State, 'ENABLED');
    const targets = rule.Targets as JsonObject[];
    assert.equal(targets.length, 1);
    assert.equal(targets[0]!.Input, undefined);
    const minimal = resourcesOf('AWS::Events::Rule', packaged.minimal).find(
      (r) => r.Properties.ScheduleExpression,
    );
    assert.equal(minimal?.Properties.ScheduleExpression, 'rate(5 minutes)');
  });

  it('reacts to AWSCURRENT moving on the configured secrets only', () => {
    const rule = ruleFor(packaged.full, 'Secret Label Updated');
    assert.deepEqual(rule.EventPattern, {
      source: ['aws.secretsmanager'],
      'detail-type': ['Secret Label Updated'],
      resources: SECRETS,
      detail: { labelUpdated: ['AWSCURRENT'] },
    });
    assert.equal(rule.State, 'ENABLED');
  });

  it('matches the CloudTrail value-changing calls and completed rotations', () => {
    const api = ruleFor(packaged.full, 'AWS API Call via CloudTrail');
    assert.deepEqual(api.EventPattern, {
      source: ['aws.secretsmanager'],
      'detail-type': ['AWS API Call via CloudTrail'],
      detail: {
        eventSource: ['secretsmanager.amazonaws.com'],
        eventName: ['PutSecretValue', 'UpdateSecret', 'UpdateSecretVersionStage'],
        errorCode: [{ exists: false }],
      },
    });
    const rotation = ruleFor(packaged.full, 'AWS Service Event via CloudTrail');
    assert.deepEqual(rotation.EventPattern, {
      source: ['aws.secretsmanager'],
      'detail-type': ['AWS Service Event via CloudTrail'],
      detail: { eventSource: ['secretsmanager.amazonaws.com'], eventName: ['RotationSucceeded'] },
    });
    assert.equal(api.State, 'ENABLED');
    assert.equal(ruleFor(packaged.minimal, 'AWS API Call via CloudTrail').State, 'DISABLED');
    assert.equal(ruleFor(packaged.minimal, 'AWS Service Event via CloudTrail').State, 'DISABLED');
  });

  it('lets every rule invoke the function', () => {
    const rules = resourcesOf('AWS::Events::Rule', packaged.full);
    const permissions = resourcesOf('AWS::Lambda::Permission', packaged.full);
    assert.equal(rules.length, 4);
    assert.equal(permissions.length, 4);
    for (const permission of permissions)
      assert.equal(permission.Properties.Principal, 'events.amazonaws.com');
  });

  it('scopes IAM exactly to the configured secrets, clusters, roles and keys', () => {
    const p = packaged.full;
    const only = (action: string) => {
      const found = allowing(p, action);
      assert.equal(found.length, 1, `one statement allows ${action}`);
      assert.equal(found[0]!.Effect, 'Allow');
      return found[0]!;
    };
    assert.deepEqual(only('secretsmanager:GetSecretValue').Resource, SECRETS);
    assert.deepEqual(only('eks:DescribeCluster').Resource, CLUSTERS);
    assert.deepEqual(only('sts:AssumeRole').Resource, ROLES);
    const kms = only('kms:Decrypt');
    assert.deepEqual(kms.Resource, KEYS);
    assert.deepEqual(kms.Condition, { StringLike: { 'kms:ViaService': 'secretsmanager.*.amazonaws.com' } });
    assert.deepEqual(only('lambda:InvokeFunction').Resource, [
      {
        'Fn::Sub': `arn:\${AWS::Partition}:lambda:\${AWS::Region}:\${AWS::AccountId}:function:${FUNCTION_NAME}`,
      },
    ]);
    assert.deepEqual(only('logs:PutLogEvents').Resource, [{ 'Fn::GetAtt': ['ReconcileLogGroup', 'Arn'] }]);
  });

  it('grants nothing on "*" and nothing beyond the actions it needs', () => {
    for (const p of [packaged.full, packaged.minimal]) {
      for (const statement of statements(p)) {
        const resources = [statement.Resource].flat();
        assert.ok(resources.length > 0, `${statement.Sid} names resources`);
        for (const resource of resources) {
          assert.ok(typeof resource !== 'string' || !resource.includes('*'), `${statement.Sid}: ${resource}`);
        }
      }
      const actions = statements(p)
        .flatMap((s) => [s.Action].flat())
        .sort();
      assert.ok(actions.every((a) => !a.includes('*')));
    }
    const trust = packaged.full.template.Resources.PatcherRole!.Properties.AssumeRolePolicyDocument as {
      Statement: Statement[];
    };
    assert.deepEqual(
      trust.Statement.map((s) => [s.Effect, s.Action, (s as unknown as { Principal: Json }).Principal]),
      [['Allow', 'sts:AssumeRole', { Service: 'lambda.amazonaws.com' }]],
    );
  });

  it('leaves out the statements whose lists are empty, and fan-out when it is off', () => {
    const actions = statements(packaged.minimal)
      .flatMap((s) => [s.Action].flat())
      .sort();
    assert.deepEqual(actions, [
      'eks:DescribeCluster',
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'secretsmanager:GetSecretValue',
    ]);
    assert.deepEqual(
      allowing(packaged.minimal, 'secretsmanager:GetSecretValue')[0]!.Resource,
      SECRETS.slice(0, 1),
    );
    const env = (
      resourcesOf('AWS::Lambda::Function', packaged.minimal)[0]!.Properties.Environment as {
        Variables: Record<string, string>;
      }
    ).Variables;
    assert.equal(env.PATCHER_FAN_OUT, 'false');
    assert.equal(env.PATCHER_DEADLINE_MARGIN_MS, '60000');
  });

  it('names the role predictably, for trust policies and access entries', () => {
    const role = packaged.full.template.Resources.PatcherRole!.Properties;
    assert.equal(role.RoleName, 'imagepullsecret-patcher-test-eu-west-1');
  });
});
