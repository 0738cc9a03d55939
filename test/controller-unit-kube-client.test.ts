/**
 * The controller's Kubernetes reads are bounded like its broker calls, against the real test
 * kube-apiserver: a request as a whole by KUBE_REQUEST_TIMEOUT_MS and its response by
 * KUBE_MAX_RESPONSE_BYTES; lists come in pages, each page a request of its own; a watch gets its
 * headers within the timeout and ends when it outlives its timeoutSeconds.
 *
 * A slow server is made real with a TCP proxy on loopback that holds back what the API server
 * sends (test/tcp-proxy.ts); the TLS session runs end to end through it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import type { ConfigMap, KubeObject, Secret } from '../catalog-controller/api/v1beta1.js';
import { DeadlineExceededError, ResponseTooLargeError, type CallLimits } from '../catalog-controller/call-limits.js';
import { Informer } from '../catalog-controller/kube/informer.js';
import { DEFAULT_KUBE_LIMITS, KubeClient } from '../catalog-controller/kube/kube-client.js';
import { Resources } from '../catalog-controller/kube/resources.js';
import type { WatchDone, WatchEventHandler, WatchHandle } from '../catalog-controller/kube/watch-stream.js';
import { ensureNamespace, startKubeApi, waitFor, type KubeApi } from './kube-helpers.js';
import { TcpProxy } from './tcp-proxy.js';

const NS = 'kube-bounds';
const logger = pino({ level: 'silent' });
let api: KubeApi;
const proxies: TcpProxy[] = [];
const clients: KubeClient[] = [];

before(async () => {
  api = await startKubeApi();
  await ensureNamespace(api, NS);
});

after(async () => {
  for (const client of clients) client.close();
  for (const proxy of proxies) await proxy.close();
  await api?.stop();
});

/** Counts the requests it sends, and how each watch ended. */
class RecordingClient extends KubeClient {
  readonly paths: string[] = [];
  readonly watchEnds: Array<Error | null> = [];

  override request(method: string, path: string, body?: unknown, contentType?: string): Promise<unknown> {
    this.paths.push(`${method} ${path}`);
    return super.request(method, path, body, contentType);
  }

  override watch(
    path: string,
    query: Record<string, string>,
    timeoutSeconds: number,
    onEvent: WatchEventHandler,
    done: WatchDone,
  ): Promise<WatchHandle> {
    this.paths.push(`WATCH ${path}`);
    return super.watch(path, query, timeoutSeconds, onEvent, (error) => {
      this.watchEnds.push(error);
      done(error);
    });
  }
}

/** A client with `limits`, straight to the API server or through a new proxy. */
async function client(
  limits: Partial<CallLimits> = {},
  viaProxy = false,
): Promise<{ client: RecordingClient; proxy?: TcpProxy }> {
  const direct = new KubeConfig();
  direct.loadFromFile(api.kubeconfig);
  let config = direct;
  let proxy: TcpProxy | undefined;
  if (viaProxy) {
    proxy = await TcpProxy.start(direct.getCurrentCluster()!.server, 443);
    proxies.push(proxy);
    config = new KubeConfig();
    config.loadFromOptions({
      clusters: direct.clusters.map((c) => ({ ...c, server: `https://127.0.0.1:${proxy!.port}` })),
      users: direct.users,
      contexts: direct.contexts,
      currentContext: direct.currentContext,
    });
  }
  const made = new RecordingClient(config, undefined, { ...DEFAULT_KUBE_LIMITS, ...limits });
  clients.push(made);
  return proxy ? { client: made, proxy } : { client: made };
}

async function createSecret(name: string, bytes: number): Promise<void> {
  await api.client.create<Secret>(Resources.Secret, {
    metadata: { name, namespace: NS },
    data: { value: Buffer.alloc(bytes, 'v').toString('base64') },
  });
}

describe('requests', () => {
  test('a Secret read the server does not answer fails at KUBE_REQUEST_TIMEOUT_MS, naming it', async () => {
    await createSecret('slow-read', 16);
    const { client: kube, proxy } = await client({ timeoutMs: 1000 }, true);
    assert.ok(await kube.get<Secret>(Resources.Secret, 'slow-read', NS));
    proxy!.hold();
    try {
      await assert.rejects(kube.get<Secret>(Resources.Secret, 'slow-read', NS), (error: unknown) => {
        assert.ok(error instanceof DeadlineExceededError);
        assert.equal(error.variable, 'KUBE_REQUEST_TIMEOUT_MS');
        assert.equal(
          error.message,
          `GET /api/v1/namespaces/${NS}/secrets/slow-read: ` +
            'the Kubernetes API server did not answer in full within 1 s (KUBE_REQUEST_TIMEOUT_MS)',
        );
        return true;
      });
    } finally {
      proxy!.release();
    }
    // The stalled connection was destroyed; the next read gets a fresh one and its answer.
    const again = await kube.get<Secret>(Resources.Secret, 'slow-read', NS);
    assert.equal(again.metadata.name, 'slow-read');
  });

  test('a Secret larger than KUBE_MAX_RESPONSE_BYTES is not read, and the error names the cap', async () => {
    await createSecret('big-read', 200 * 1024);
    const { client: small } = await client({ maxResponseBytes: 64 * 1024 });
    await assert.rejects(small.get<Secret>(Resources.Secret, 'big-read', NS), (error: unknown) => {
      assert.ok(error instanceof ResponseTooLargeError);
      assert.equal(error.status, 200);
      assert.match(error.message, /the Kubernetes API server's response exceeded 64 KiB \(KUBE_MAX_RESPONSE_BYTES\)$/);
      return true;
    });
    const { client: roomy } = await client();
    const secret = await roomy.get<Secret>(Resources.Secret, 'big-read', NS);
    assert.equal(Buffer.from(secret.data!.value!, 'base64').length, 200 * 1024);
  });

  test('a list comes in pages, each a request of its own, and returns every object', async () => {
    for (let i = 0; i < 7; i++) {
      await api.client.create<ConfigMap>(Resources.ConfigMap, {
        metadata: { name: `paged-${i}`, namespace: NS, labels: { case: 'paged' } },
        data: { i: String(i) },
      });
    }
    const { client: kube } = await client();
    const { items, resourceVersion } = await kube.list<ConfigMap>(Resources.ConfigMap, {
      namespace: NS,
      labelSelector: 'case=paged',
      pageSize: 3,
    });
    assert.deepEqual(
      items.map((i) => i.metadata.name).sort(),
      [0, 1, 2, 3, 4, 5, 6].map((i) => `paged-${i}`),
    );
    assert.match(resourceVersion, /^\d+$/);
    const pages = kube.paths.filter((p) => p.startsWith(`GET /api/v1/namespaces/${NS}/configmaps?`));
    assert.equal(pages.length, 3);
    assert.match(pages[0]!, /limit=3/);
    assert.doesNotMatch(pages[0]!, /continue=/);
    assert.match(pages[1]!, /continue=/);
  });
});

describe('watches', () => {
  test('a watch that goes quiet without closing is ended, and the informer catches up after', async () => {
    const { client: kube, proxy } = await client({ timeoutMs: 1000 }, true);
    const informer = new Informer<KubeObject>(kube, Resources.ConfigMap, logger, {
      labelSelector: 'case=quiet',
      watchTimeoutSeconds: 4,
    });
    await informer.start();
    try {
      // An object that arrives through the watch: it is open and streaming.
      await api.client.create<ConfigMap>(Resources.ConfigMap, {
        metadata: { name: 'before-quiet', namespace: NS, labels: { case: 'quiet' } },
      });
      await waitFor(async () => informer.get(`${NS}/before-quiet`), 10_000, 'an event through the watch');
      // The server's end of the watch (after 4 s), and everything else, is held back from here on.
      proxy!.hold();
      await waitFor(
        async () => kube.watchEnds.some((e) => e instanceof DeadlineExceededError),
        15_000,
        'the watch to be ended by its deadline',
      );
      const ended = kube.watchEnds.find((e) => e instanceof DeadlineExceededError)!;
      assert.match(
        ended.message,
        /^WATCH \/api\/v1\/configmaps\?.*within 5 s \(the watch's timeoutSeconds=4 and KUBE_REQUEST_TIMEOUT_MS\)$/,
      );
      proxy!.release();
      await api.client.create<ConfigMap>(Resources.ConfigMap, {
        metadata: { name: 'after-quiet', namespace: NS, labels: { case: 'quiet' } },
      });
      await waitFor(async () => informer.get(`${NS}/after-quiet`), 20_000, 'the new object in the cache');
    } finally {
      proxy!.release();
      informer.stop();
    }
  });
});
