/**
 * Test harness for the catalog controller: a real etcd and kube-apiserver on loopback
 * (test/kube/cluster.sh), the CRDs applied, a real Depot broker with the failure-injecting
 * test offering, and the controller as a real child process (so tests can kill and restart it).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import type { Condition, KubeObject, ServiceBinding, ServiceInstance } from '../catalog-controller/api/v1beta1.js';
import { KubeApiError, KubeClient } from '../catalog-controller/kube/kube-client.js';
import { Resources, type Resource } from '../catalog-controller/kube/resources.js';
import { PASSWORD, USERNAME, freePort, startDepot, type TestDepot } from './helpers.js';
import { npmScriptNodeArgs } from './npm-script.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');
const CLUSTER_SCRIPT = path.join(ROOT, 'test/kube/cluster.sh');

export interface KubeApi {
  dir: string;
  kubeconfig: string;
  client: KubeClient<KubeConfig>;
  kubectl(...args: string[]): Promise<{ stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

/** etcd + kube-apiserver in a temporary directory, CRDs applied and established. */
export async function startKubeApi(): Promise<KubeApi> {
  const dir = await mkdtemp(path.join(tmpdir(), 'depot-kube-'));
  await run('bash', [CLUSTER_SCRIPT, 'start', dir], { maxBuffer: 10 * 1024 * 1024 });
  const kubeconfig = path.join(dir, 'kubeconfig');
  const { stdout: bin } = await run('bash', [CLUSTER_SCRIPT, 'bin']);
  const kubectlPath = path.join(bin.trim(), 'kubectl');
  const kubectl = (...args: string[]) =>
    run(kubectlPath, ['--kubeconfig', kubeconfig, ...args], { maxBuffer: 10 * 1024 * 1024 });
  await kubectl('apply', '-f', path.join(ROOT, 'catalog-controller/crds/'));
  await kubectl('wait', '--for=condition=Established', '--timeout=30s', 'crd', '-l', 'svcat=true');
  const config = new KubeConfig();
  config.loadFromFile(kubeconfig);
  const client = new KubeClient(config);
  return {
    dir,
    kubeconfig,
    client,
    kubectl,
    async stop() {
      client.close();
      await run('bash', [CLUSTER_SCRIPT, 'stop', dir]).catch(() => {});
    },
  };
}

export interface ControllerProcess {
  child: ChildProcess;
  port: number;
  /** The lines of stdout and stderr, in arrival order. */
  logs: string[];
  /** Everything written to each stream, as written (complete once `stop` resolves). */
  output: { stdout: string; stderr: string };
  metrics(): Promise<string>;
  /** SIGTERM (clean) or SIGKILL (crash); resolves when the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Fast timings for tests; the defaults are the production ones. */
export const FAST_CONTROLLER_ENV: Record<string, string> = {
  RETRY_BASE_DELAY_MS: '100',
  RETRY_MAX_DELAY_SECONDS: '2',
  POLL_INITIAL_DELAY_MS: '50',
  POLL_MAX_DELAY_SECONDS: '1',
  LEASE_DURATION_SECONDS: '8',
  LEASE_RETRY_PERIOD_MS: '500',
  RESYNC_SECONDS: '30',
  CLUSTER_ID: 'test-cluster',
  MIN_RELIST_INTERVAL_SECONDS: '1',
};

/** The controller at LOG_LEVEL `info` unless `env` says otherwise (e.g. `{ LOG_LEVEL: 'trace' }`). */
export async function startController(api: KubeApi, env: Record<string, string> = {}): Promise<ControllerProcess> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, npmScriptNodeArgs('start:controller'), {
    cwd: ROOT,
    env: {
      ...process.env,
      ...FAST_CONTROLLER_ENV,
      KUBECONFIG: api.kubeconfig,
      CONTROLLER_PORT: String(port),
      METRICS_PORT: String(metricsPort),
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const output = { stdout: '', stderr: '' };
  for (const stream of ['stdout', 'stderr'] as const) {
    child[stream]!.on('data', (chunk: Buffer) => {
      output[stream] += chunk.toString();
      logs.push(...chunk.toString().split('\n').filter(Boolean));
    });
  }
  // 'close' comes after 'exit' once stdout and stderr are drained: nothing written is missed.
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`controller exited: ${logs.join('\n')}`);
      const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
      return res?.ok === true;
    },
    20_000,
    'controller /healthz',
  );
  return {
    child,
    port,
    logs,
    output,
    metrics: async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Polls `check` until it returns a truthy value; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function condition(
  object: { status?: { conditions?: Condition[] } } | undefined,
  type: string,
): Condition | undefined {
  return object?.status?.conditions?.find((c) => c.type === type);
}

/** Waits until the object's Ready (or other) condition has the given reason. */
export async function waitForReason<T extends KubeObject & { status?: { conditions?: Condition[] } }>(
  api: KubeApi,
  resource: Resource,
  name: string,
  namespace: string | undefined,
  reason: string,
  type = 'Ready',
  timeoutMs = 20_000,
): Promise<T> {
  let last: T | undefined;
  try {
    return await waitFor(
      async () => {
        last = await api.client.get<T>(resource, name, namespace);
        return condition(last, type)?.reason === reason ? last : undefined;
      },
      timeoutMs,
      `${resource.kind} ${name} ${type}=${reason}`,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last status: ${JSON.stringify(last?.status)}`, { cause: error });
  }
}

export async function waitForGone(
  api: KubeApi,
  resource: Resource,
  name: string,
  namespace?: string,
  timeoutMs = 20_000,
): Promise<void> {
  await waitFor(
    async () => (await api.client.find(resource, name, namespace)) === undefined,
    timeoutMs,
    `${resource.kind} ${name} to be gone`,
  );
}

export async function create<T extends KubeObject>(api: KubeApi, resource: Resource, object: T): Promise<T> {
  return api.client.create<T>(resource, object);
}

export async function remove(api: KubeApi, resource: Resource, name: string, namespace?: string): Promise<void> {
  await api.client.delete(resource, name, namespace);
}

/** The API server's CustomResourceDefinitions. */
const CRDS: Resource = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  base: '/apis/apiextensions.k8s.io/v1',
  plural: 'customresourcedefinitions',
  namespaced: false,
};

/** A CRD for a namespaced `resource` (its group's v1) that keeps any field, created and Established. */
export async function createOpenCrd(api: KubeApi, resource: Resource): Promise<void> {
  const group = resource.apiVersion.split('/')[0]!;
  const name = `${resource.plural}.${group}`;
  await api.client.create(CRDS, {
    metadata: { name },
    spec: {
      group,
      scope: 'Namespaced',
      names: { plural: resource.plural, singular: resource.kind.toLowerCase(), kind: resource.kind },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        },
      ],
    },
  } as KubeObject);
  await api.kubectl('wait', '--for=condition=Established', '--timeout=30s', `crd/${name}`);
}

export async function ensureNamespace(api: KubeApi, name: string): Promise<void> {
  try {
    await api.client.create(Resources.Namespace, { metadata: { name } });
  } catch (error) {
    if (!(error instanceof KubeApiError && error.isAlreadyExists)) throw error;
  }
}

export function instance(
  name: string,
  namespace: string,
  spec: ServiceInstance['spec'],
  metadata: Partial<KubeObject['metadata']> = {},
): ServiceInstance {
  return { metadata: { name, namespace, ...metadata }, spec };
}

export function binding(
  name: string,
  namespace: string,
  spec: Partial<ServiceBinding['spec']> & { instanceRef: { name: string } },
): ServiceBinding {
  return { metadata: { name, namespace }, spec };
}

export function secretValues(secret: { data?: Record<string, string> } | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(secret?.data ?? {}))
    out[key] = Buffer.from(value, 'base64').toString('utf8');
  return out;
}

/** A broker's auth Secret with Depot's test credentials. */
export async function brokerAuthSecret(
  api: KubeApi,
  namespace: string,
  name: string,
  data: Record<string, string> = { username: USERNAME, password: PASSWORD },
): Promise<void> {
  await ensureNamespace(api, namespace);
  await api.client.create(Resources.Secret, {
    metadata: { name, namespace },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  } as KubeObject);
}

/** Depot with the failure-injecting offering on. */
export function startTestBroker(name: string, env: Record<string, string> = {}): Promise<TestDepot> {
  return startDepot(name, { env: { TEST_OFFERING: 'enabled', ...env } });
}

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

/**
 * An HTTP proxy in front of Depot that records what the controller sends and can misbehave on
 * command (a stand-in for brokers with behaviours Depot does not have: bearer auth, a failing
 * catalog, a hang). Everything else is Depot's real answer.
 */
export interface BrokerProxy {
  url: string;
  requests: RecordedRequest[];
  /** Return a response instead of forwarding; `undefined` forwards. */
  intercept: ((req: RecordedRequest) => { status: number; body?: unknown; hang?: boolean } | undefined) | undefined;
  /** The Authorization header Depot is sent instead of the caller's (bearer → basic). */
  upstreamAuthorization: string | undefined;
  close(): Promise<void>;
}

export async function startBrokerProxy(target: TestDepot): Promise<BrokerProxy> {
  const upstream = new URL(target.baseUrl);
  const proxy: BrokerProxy = {
    url: '',
    requests: [],
    intercept: undefined,
    upstreamAuthorization: undefined,
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      let body: unknown;
      try {
        body = raw.length ? JSON.parse(raw.toString()) : undefined;
      } catch {
        body = raw.toString();
      }
      const recorded: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
      proxy.requests.push(recorded);
      const answer = proxy.intercept?.(recorded);
      if (answer?.hang) return; // never answers: the controller's timeout must fire
      if (answer) {
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
        return;
      }
      const headers = { ...req.headers, host: upstream.host };
      if (proxy.upstreamAuthorization) headers.authorization = proxy.upstreamAuthorization;
      const forward = http.request(
        { hostname: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      forward.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      forward.end(raw);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}

export const R = Resources;

/** Read, change, write with conflict retries: what `kubectl edit` or `apply` does for a user. */
export async function edit<T extends KubeObject>(
  api: KubeApi,
  resource: Resource,
  name: string,
  namespace: string | undefined,
  change: (object: T) => void,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const current = await api.client.get<T>(resource, name, namespace);
    change(current);
    try {
      return await api.client.update<T>(resource, current);
    } catch (error) {
      if (!(error instanceof KubeApiError && error.isConflict) || attempt > 20) throw error;
    }
  }
}
