/**
 * The Lambda handler's wiring, with fakes at its boundary: the engine's `run`,
 * the Lambda client and the configuration are fakes; event parsing, the
 * deadline, the fan-out, Powertools logging and EMF metrics are real (their
 * output is captured from stdout and stderr).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import type { InvokeCommand } from '@aws-sdk/client-lambda';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import {
  DEFAULT_CONFIG_FILE,
  type HandlerDeps,
  makeHandler,
  once,
  type ReconcileResult,
  settingsFromEnv,
} from '../functions/reconcile.ts';
import { type ClusterConfig, type Config, parseConfigText } from '../lib/config.ts';
import { ClusterAccessError, ConfigError, DeadlineError, PatcherError } from '../lib/errors.ts';
import { parseInvocation, type RunRequest } from '../lib/events.ts';
import type { KubeConnection } from '../lib/kube-http.ts';
import {
  CLUSTERS_FAILED,
  DEFAULT_DEADLINE_MARGIN_MS,
  deadlineSignal,
  FAN_OUT_FAILED,
} from '../lib/lambda-run.ts';
import { type ClusterReport, COUNTED, type CountName } from '../lib/report.ts';
import type { RunDeps } from '../lib/run.ts';

const ACCOUNT = '123456789012';
const TEAM_B_ARN = `arn:aws:secretsmanager:eu-west-1:${ACCOUNT}:secret:registry/team-b-AbCdEf`;
const FUNCTION_NAME = 'imagepullsecret-patcher-test-reconcile';

const CONFIG: Config = parseConfigText(
  `
clusters:
  - name: prod
    eks: { name: platform-prod, region: eu-west-1 }
  - name: staging
    eks: { name: platform-staging, region: eu-west-1 }
mappings:
  - name: team-a
    secretName: team-a-registry
    source: { secretsManager: { secretId: registry/team-a } }
  - name: team-b
    secretName: team-b-registry
    source: { secretsManager: { secretId: "${TEAM_B_ARN}" } }
    clusters: [prod]
`,
  'test-config.yaml',
);

const envelope = (source: string, detailType: string, detail: unknown, resources: string[] = []) => ({
  version: '0',
  id: '6a7e8feb-b491-4cf7-a9f1-bf3703467718',
  'detail-type': detailType,
  source,
  account: ACCOUNT,
  time: '2025-06-01T12:00:00Z',
  region: 'eu-west-1',
  resources,
  detail,
});
const SCHEDULED = envelope('aws.events', 'Scheduled Event', {}, [
  `arn:aws:events:eu-west-1:${ACCOUNT}:rule/imagepullsecret-patcher-schedule`,
]);
const labelUpdated = (label: string) =>
  envelope(
    'aws.secretsmanager',
    'Secret Label Updated',
    { name: 'registry/team-b', labelUpdated: label, versionId: 'a1b2c3d4-5678-90ab-cdef-EXAMPLE11111' },
    [TEAM_B_ARN],
  );

function fakeContext(remainingMs = 900_000): Context {
  const deadline = Date.now() + remainingMs;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: FUNCTION_NAME,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:eu-west-1:${ACCOUNT}:function:${FUNCTION_NAME}`,
    memoryLimitInMB: '512',
    awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
    logGroupName: `/aws/lambda/${FUNCTION_NAME}`,
    logStreamName: '2025/06/01/[$LATEST]abcdef',
    getRemainingTimeInMillis: () => deadline - Date.now(),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

function report(
  cluster: string,
  options: Partial<ClusterReport> & { counts?: Partial<Record<CountName, number>> } = {},
) {
  const { counts, ...rest } = options;
  const zero = Object.fromEntries(Object.values(COUNTED).map((name) => [name, 0])) as Record<
    CountName,
    number
  >;
  const base: ClusterReport = {
    cluster,
    dryRun: false,
    converged: true,
    durationMs: 120,
    requests: { total: 7, retries: 0, byVerb: { list: 5, get: 0, create: 1, patch: 1, delete: 0 } },
    mappings: [
      {
        mapping: 'team-a',
        secretName: 'team-a-registry',
        counts: { ...zero, ...counts },
        conflicts: [],
        errors: [],
        skipped: {},
      },
    ],
    errors: [],
    notDone: 0,
    writes: [],
  };
  return { ...base, ...rest };
}

type RunCall = { config: Config; request: RunRequest; deps: RunDeps };

/** A handler over fakes, and what they saw. */
function harness(
  options: {
    reports?: (request: RunRequest, deps: RunDeps) => Promise<ClusterReport[]> | ClusterReport[];
    fanOut?: boolean;
    deadlineMarginMs?: number;
    invoke?: (command: InvokeCommand) => Promise<{ StatusCode?: number }>;
  } = {},
) {
  const runs: RunCall[] = [];
  const invokes: InvokeCommand[] = [];
  let configLoads = 0;
  const secretsManager = (_region: string | undefined) => ({}) as SecretsManagerClient;
  const deps: HandlerDeps = {
    config: async () => {
      configLoads++;
      return CONFIG;
    },
    run: async (config, request, runDeps) => {
      runs.push({ config, request, deps: runDeps });
      return options.reports
        ? options.reports(request, runDeps)
        : (request.clusters ?? ['prod', 'staging']).map((c) => report(c));
    },
    connectEks: async () => ({}) as KubeConnection,
    secretsManager,
    lambda: () => ({
      send: async (command: InvokeCommand) => {
        invokes.push(command);
        return options.invoke ? options.invoke(command) : { StatusCode: 202 };
      },
    }),
    logger: new Logger({ serviceName: 'imagepullsecret-patcher-test' }),
    metrics: new Metrics({
      namespace: 'ImagePullSecretPatcherTest',
      serviceName: 'imagepullsecret-patcher-test',
    }),
    fanOut: options.fanOut ?? false,
    deadlineMarginMs: options.deadlineMarginMs ?? DEFAULT_DEADLINE_MARGIN_MS,
  };
  const handler = makeHandler(deps);
  return {
    runs,
    invokes,
    secretsManager,
    configLoads: () => configLoads,
    /** Invokes the handler, capturing every line it writes. */
    async invoke(event: unknown, context = fakeContext()) {
      const lines: string[] = [];
      const restore = capture(lines);
      let result: ReconcileResult | undefined;
      let error: unknown;
      try {
        result = await handler(event, context);
      } catch (e) {
        error = e;
      } finally {
        restore();
      }
      const json = lines.flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
      return {
        result,
        error,
        lines,
        logs: json.filter((l) => typeof l.message === 'string'),
        metrics: json.filter((l) => typeof l._aws === 'object'),
      };
    },
  };
}

/**
 * Collects what Powertools writes (its Console writes JSON text lines) and lets
 * everything else through: the test runner's own messages to its parent are
 * binary and must not be swallowed.
 */
function capture(lines: string[]): () => void {
  const streams = [process.stdout, process.stderr] as const;
  const originals = streams.map((s) => s.write);
  streams.forEach((stream, i) => {
    const original = originals[i]!;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (typeof chunk === 'string' && chunk.startsWith('{')) {
        lines.push(...chunk.split('\n').filter(Boolean));
        return true;
      }
      return (original as (...args: unknown[]) => boolean).call(stream, chunk, ...rest);
    }) as typeof stream.write;
  });
  return () =>
    streams.forEach((s, i) => {
      s.write = originals[i]!;
    });
}

const payloadOf = (command: InvokeCommand) =>
  JSON.parse(new TextDecoder().decode(command.input.Payload as Uint8Array)) as Record<string, unknown>;

describe('reconcile handler', () => {
  it('reconciles every cluster and mapping on a scheduled event', async () => {
    const h = harness();
    const out = await h.invoke(SCHEDULED);
    assert.equal(out.error, undefined);
    assert.equal(h.runs.length, 1);
    const call = h.runs[0]!;
    assert.equal(call.config, CONFIG);
    assert.deepEqual(call.request, { trigger: 'schedule', dryRun: false });
    assert.equal(call.deps.secretsManager, h.secretsManager);
    assert.ok(call.deps.signal instanceof AbortSignal);
    assert.equal(call.deps.signal.aborted, false);
    assert.deepEqual(
      (out.result as { clusters: ClusterReport[] }).clusters.map((r) => r.cluster),
      ['prod', 'staging'],
    );
  });

  it('logs one structured line per cluster and never the event', async () => {
    const h = harness({
      reports: () => [report('prod', { counts: { created: 3, referencesAdded: 2 } }), report('staging')],
    });
    const out = await h.invoke(SCHEDULED);
    const clusterLines = out.logs.filter((l) => l.message === 'cluster converged');
    assert.deepEqual(
      clusterLines.map((l) => l.cluster),
      ['prod', 'staging'],
    );
    const prod = clusterLines[0]!;
    assert.equal(prod.function_request_id, 'c6af9ac6-7b61-11e6-9a41-93e812345678');
    assert.equal((prod.totals as Record<string, number>).Created, 3);
    assert.deepEqual((prod.mappings as unknown[])[0], {
      mapping: 'team-a',
      secretName: 'team-a-registry',
      counts: { created: 3, referencesAdded: 2 },
    });
    // The request is logged by its ids; the event envelope (resources, ids) is not.
    assert.ok(!out.lines.some((l) => l.includes('imagepullsecret-patcher-schedule')));
  });

  it('emits EMF metrics per cluster with a cluster dimension', async () => {
    const h = harness({
      reports: () => [
        report('prod', {
          counts: { created: 3, updated: 1, pruned: 2, referencesAdded: 4 },
          durationMs: 250,
        }),
        report('staging', { counts: { conflicts: 1 }, converged: false }),
      ],
    });
    const out = await h.invoke(SCHEDULED);
    const byCluster = new Map(out.metrics.filter((m) => 'cluster' in m).map((m) => [m.cluster, m]));
    const prod = byCluster.get('prod')!;
    assert.deepEqual(
      {
        Created: prod.Created,
        Updated: prod.Updated,
        Pruned: prod.Pruned,
        ReferencesAdded: prod.ReferencesAdded,
        Conflicts: prod.Conflicts,
        Errors: prod.Errors,
        DurationMs: prod.DurationMs,
        ApiRequests: prod.ApiRequests,
      },
      {
        Created: 3,
        Updated: 1,
        Pruned: 2,
        ReferencesAdded: 4,
        Conflicts: 0,
        Errors: 0,
        DurationMs: 250,
        ApiRequests: 7,
      },
    );
    const emf = (prod._aws as { CloudWatchMetrics: { Namespace: string; Dimensions: string[][] }[] })
      .CloudWatchMetrics[0]!;
    assert.equal(emf.Namespace, 'ImagePullSecretPatcherTest');
    assert.ok(emf.Dimensions[0]!.includes('cluster'));
    assert.equal(byCluster.get('staging')!.Conflicts, 1);
    const totals = out.metrics.find((m) => 'ClustersFailed' in m)!;
    assert.equal(totals.Clusters, 2);
    assert.equal(totals.ClustersFailed, 1);
    assert.ok(!('cluster' in totals));
  });

  it('fails the invocation after every cluster was reported when one did not converge', async () => {
    const h = harness({
      reports: () => [
        report('prod'),
        report('staging', {
          converged: false,
          errors: ['CLUSTER_ACCESS: cluster "staging": DescribeCluster platform-staging in eu-west-1 failed'],
        }),
      ],
    });
    const out = await h.invoke(SCHEDULED);
    assert.ok(out.error instanceof PatcherError);
    assert.equal(out.error.code, CLUSTERS_FAILED);
    assert.match(out.error.message, /^1 of 2 clusters failed: staging \(CLUSTER_ACCESS: .*DescribeCluster/);
    assert.doesNotMatch(out.error.message, /prod/);
    const messages = out.logs.map((l) => `${l.message}${l.cluster ? ` ${l.cluster}` : ''}`);
    assert.deepEqual(
      messages.filter((m) => m !== 'run requested'),
      ['cluster converged prod', 'cluster not converged staging', 'invocation failed'],
    );
    // Both clusters' metrics are out although the invocation failed.
    assert.deepEqual(
      out.metrics.filter((m) => 'cluster' in m).map((m) => [m.cluster, m.Errors]),
      [
        ['prod', 0],
        ['staging', 1],
      ],
    );
  });

  it('passes a manual invoke through as a validated subset, dry run included', async () => {
    const h = harness({
      reports: (request) => (request.clusters ?? []).map((c) => report(c, { dryRun: true })),
    });
    const out = await h.invoke({
      clusters: ['prod'],
      mappings: ['team-b'],
      namespaces: ['team-b-api'],
      dryRun: true,
    });
    assert.equal(out.error, undefined);
    assert.deepEqual(h.runs[0]!.request, {
      trigger: 'manual',
      clusters: ['prod'],
      mappings: ['team-b'],
      namespaces: ['team-b-api'],
      dryRun: true,
    });
    assert.ok(out.logs.some((l) => l.message === 'cluster planned (dry run)'));
    // A dry run's planned counts are not published as metrics.
    assert.equal(out.metrics.filter((m) => 'cluster' in m).length, 0);
  });

  it('does not fail a dry run for conflicts, only for errors', async () => {
    const conflicts = harness({
      reports: () => [report('prod', { dryRun: true, converged: false, counts: { conflicts: 2 } })],
    });
    assert.equal((await conflicts.invoke({ dryRun: true })).error, undefined);
    const errors = harness({
      reports: () => [report('prod', { dryRun: true, converged: false, errors: ['SOURCE_INVALID: x'] })],
    });
    const out = await errors.invoke({ dryRun: true });
    assert.equal((out.error as PatcherError).code, CLUSTERS_FAILED);
  });

  it('ignores an event that asks for no work, without loading the config or running', async () => {
    const h = harness();
    const out = await h.invoke(labelUpdated('AWSPENDING'));
    assert.deepEqual(out.result, { ignored: 'label AWSPENDING is not AWSCURRENT' });
    assert.equal(h.runs.length, 0);
    assert.equal(h.configLoads(), 0);
    assert.ok(
      out.logs.some(
        (l) => l.message === 'event ignored' && l.reason === 'label AWSPENDING is not AWSCURRENT',
      ),
    );
    assert.ok(out.metrics.some((m) => m.IgnoredEvents === 1));
  });

  it('rejects a malformed payload, naming the field, and runs nothing', async () => {
    const h = harness();
    const out = await h.invoke({ clusters: [], dryRun: 'yes' });
    assert.ok(out.error instanceof ConfigError);
    assert.match(out.error.message, /payload\.clusters/);
    assert.match(out.error.message, /payload\.dryRun/);
    assert.equal(h.runs.length, 0);
    assert.ok(out.logs.some((l) => l.message === 'invocation failed'));
  });

  it('rejects an unrecognised event and runs nothing', async () => {
    const h = harness();
    const out = await h.invoke(envelope('aws.s3', 'Object Created', { bucket: { name: 'b' } }));
    assert.ok(out.error instanceof ConfigError);
    assert.match(out.error.message, /unrecognised event: source "aws.s3"/);
    assert.equal(h.runs.length, 0);
  });

  it('routes a secret change to the engine with the secret ids', async () => {
    const h = harness({ reports: () => [report('prod')] });
    const out = await h.invoke(labelUpdated('AWSCURRENT'));
    assert.equal(out.error, undefined);
    assert.deepEqual(h.runs[0]!.request, {
      trigger: 'secret-change',
      secretIds: ['registry/team-b', TEAM_B_ARN],
      dryRun: false,
    });
  });
});

describe('fan-out mode', () => {
  it('turns a scheduled run into one asynchronous invoke per cluster', async () => {
    const h = harness({ fanOut: true });
    const out = await h.invoke(SCHEDULED);
    assert.equal(out.error, undefined);
    assert.equal(h.runs.length, 0);
    assert.equal(h.invokes.length, 2);
    for (const command of h.invokes) {
      assert.equal(command.input.FunctionName, FUNCTION_NAME);
      assert.equal(command.input.InvocationType, 'Event');
    }
    const payloads = h.invokes.map(payloadOf);
    assert.deepEqual(payloads, [
      { action: 'reconcile-cluster', cluster: 'prod', dryRun: false },
      { action: 'reconcile-cluster', cluster: 'staging', dryRun: false },
    ]);
    // Each payload reads back as a one-cluster run.
    assert.deepEqual(parseInvocation(payloads[1]), {
      trigger: 'cluster',
      clusters: ['staging'],
      dryRun: false,
    });
    assert.deepEqual(out.result, {
      fanOut: [
        { cluster: 'prod', invoked: true },
        { cluster: 'staging', invoked: true },
      ],
    });
    assert.ok(out.metrics.some((m) => m.FanOutInvokes === 2));
  });

  it('sends a secret change only to the clusters whose mappings use that secret', async () => {
    const h = harness({ fanOut: true });
    await h.invoke(labelUpdated('AWSCURRENT'));
    assert.deepEqual(h.invokes.map(payloadOf), [
      {
        action: 'reconcile-cluster',
        cluster: 'prod',
        secretIds: ['registry/team-b', TEAM_B_ARN],
        dryRun: false,
      },
    ]);
  });

  it('runs the per-cluster invoke in process, for its one cluster', async () => {
    const h = harness({ fanOut: true });
    const out = await h.invoke({ action: 'reconcile-cluster', cluster: 'staging' });
    assert.equal(out.error, undefined);
    assert.equal(h.invokes.length, 0);
    assert.deepEqual(h.runs[0]!.request, { trigger: 'cluster', clusters: ['staging'], dryRun: false });
  });

  it('runs a manual invoke in process so the caller gets the reports', async () => {
    const h = harness({ fanOut: true });
    const out = await h.invoke({ dryRun: true });
    assert.equal(h.invokes.length, 0);
    assert.equal(h.runs.length, 1);
    assert.ok('clusters' in (out.result ?? {}));
  });

  it('still invokes the other clusters when one invoke fails, then fails the invocation', async () => {
    const h = harness({
      fanOut: true,
      invoke: async (command) => {
        if (payloadOf(command).cluster === 'prod')
          throw Object.assign(new Error('Rate exceeded'), { name: 'TooManyRequestsException' });
        return { StatusCode: 202 };
      },
    });
    const out = await h.invoke(SCHEDULED);
    assert.equal(h.invokes.length, 2);
    assert.equal((out.error as PatcherError).code, FAN_OUT_FAILED);
    assert.match(
      (out.error as Error).message,
      /1 of 2 cluster invokes failed: prod \(TooManyRequestsException: Rate exceeded\)/,
    );
    assert.ok(out.logs.some((l) => l.message === 'cluster invoke sent' && l.cluster === 'staging'));
  });
});

describe('deadline', () => {
  it('aborts the run margin milliseconds before the invocation times out', async () => {
    let firedAfter: number | undefined;
    const h = harness({
      deadlineMarginMs: 100,
      reports: async (_request, deps) => {
        const started = Date.now();
        await new Promise<void>((resolve) => deps.signal!.addEventListener('abort', () => resolve()));
        firedAfter = Date.now() - started;
        assert.ok(deps.signal!.reason instanceof DeadlineError);
        return [report('prod', { notDone: 3, converged: false })];
      },
    });
    const out = await h.invoke(SCHEDULED, fakeContext(400));
    assert.ok(
      firedAfter !== undefined && firedAfter >= 250 && firedAfter < 400,
      `fired after ${firedAfter} ms`,
    );
    assert.match((out.error as Error).message, /prod \(3 writes not started\)/);
  });

  it('clears the deadline timer when the run ends', async () => {
    let signal: AbortSignal | undefined;
    const h = harness({
      deadlineMarginMs: 0,
      reports: (_request, deps) => {
        signal = deps.signal;
        return [report('prod')];
      },
    });
    await h.invoke(SCHEDULED, fakeContext(120));
    await sleep(200);
    assert.equal(signal?.aborted, false);
  });

  it('does not start a cluster once the deadline has passed, and refuses kube clusters', async () => {
    let connect: RunDeps['connect'] | undefined;
    let signal: AbortSignal | undefined;
    const h = harness({
      deadlineMarginMs: 100,
      reports: async (_request, deps) => {
        connect = deps.connect;
        signal = deps.signal;
        const local: ClusterConfig = { name: 'laptop', kube: {} };
        await assert.rejects(
          connect(local),
          (e) => e instanceof ClusterAccessError && /kube/.test(e.message),
        );
        await new Promise<void>((resolve) => signal!.addEventListener('abort', () => resolve()));
        await assert.rejects(connect(CONFIG.clusters[0]!), (e) => e instanceof DeadlineError);
        return [report('prod')];
      },
    });
    const out = await h.invoke(SCHEDULED, fakeContext(400));
    assert.equal(out.error, undefined);
  });

  it('caps the margin at a quarter of the remaining time', () => {
    const timers = { setTimeout: () => 0, clearTimeout: () => {} };
    assert.equal(deadlineSignal(900_000, 60_000, timers).firesInMs, 840_000);
    assert.equal(deadlineSignal(40_000, 60_000, timers).firesInMs, 30_000);
    assert.equal(deadlineSignal(0, 60_000, timers).firesInMs, 0);
  });
});

describe('handler settings', () => {
  const dir = '/var/task/dist';

  it('defaults to the config beside the bundle, no fan-out and a one-minute margin', () => {
    assert.deepEqual(settingsFromEnv({}, dir), {
      configPath: path.join(dir, DEFAULT_CONFIG_FILE),
      fanOut: false,
      deadlineMarginMs: 60_000,
    });
  });

  it('reads PATCHER_CONFIG relative to the bundle, PATCHER_FAN_OUT and the margin', () => {
    assert.deepEqual(
      settingsFromEnv(
        { PATCHER_CONFIG: 'conf/patcher.yaml', PATCHER_FAN_OUT: 'TRUE', PATCHER_DEADLINE_MARGIN_MS: '30000' },
        dir,
      ),
      { configPath: '/var/task/dist/conf/patcher.yaml', fanOut: true, deadlineMarginMs: 30_000 },
    );
    assert.equal(
      settingsFromEnv({ PATCHER_CONFIG: '/opt/patcher.yaml' }, dir).configPath,
      '/opt/patcher.yaml',
    );
  });

  it('rejects malformed values, naming the variable', () => {
    assert.throws(
      () => settingsFromEnv({ PATCHER_FAN_OUT: 'yes' }, dir),
      /PATCHER_FAN_OUT: expected true or false/,
    );
    assert.throws(
      () => settingsFromEnv({ PATCHER_DEADLINE_MARGIN_MS: '-5' }, dir),
      /PATCHER_DEADLINE_MARGIN_MS: expected a whole number/,
    );
  });

  it('loads once per container, and again after a failure', async () => {
    let calls = 0;
    const load = once(async () => {
      calls++;
      if (calls === 1) throw new Error('transient');
      return calls;
    });
    await assert.rejects(load(), /transient/);
    assert.equal(await load(), 2);
    assert.equal(await load(), 2);
    assert.equal(calls, 2);
  });
});
