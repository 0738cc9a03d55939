/**
 * The controller's informer (list, then watch) against the real test kube-apiserver, on a
 * custom resource of its own (widgets.unit.depot.test) so nothing else writes to what it sees.
 *
 * How each case is made real:
 * - A watch that fails: the informer reaches the API server through a TCP proxy on loopback that
 *   the test cuts (every connection closed, new ones refused, as when the server is unreachable)
 *   and restores. The TLS session runs end to end through it; nothing is answered by the test.
 * - 410 Gone: a CRD whose spec changes gets new storage in the API server, and with it a new
 *   watch cache that starts at the current revision. The server ends the open watches cleanly; a
 *   watch opened again from any resourceVersion older than that start is answered with an ERROR
 *   event, code 410, reason Expired ("too old resource version"). Writes alone do not get there
 *   on this server: its watch cache grows while its events are recent, up to 102 400 of them.
 * - A stale DELETED event: the same proxy holds back, for a moment, what the server sends the
 *   informer, while the object is deleted and created again under the same name and the new
 *   copy is put in the cache the way the controller does after its own writes. The held DELETED
 *   of the old uid then arrives after the cache already has the new object.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import pino from 'pino';
import type { KubeObject } from '../catalog-controller/api/v1beta1.js';
import { Informer } from '../catalog-controller/kube/informer.js';
import { KubeClient, type ListResult } from '../catalog-controller/kube/kube-client.js';
import { objectKey, type Resource } from '../catalog-controller/kube/resources.js';
import { createOpenCrd, ensureNamespace, startKubeApi, waitFor, type KubeApi } from './kube-helpers.js';
import { TcpProxy } from './tcp-proxy.js';

const NS = 'informer-unit';
const GROUP = 'unit.depot.test';
const CRD_NAME = `widgets.${GROUP}`;
const Widgets: Resource = {
  apiVersion: `${GROUP}/v1`,
  kind: 'Widget',
  base: `/apis/${GROUP}/v1`,
  plural: 'widgets',
  namespaced: true,
};

interface Widget extends KubeObject {
  spec?: { color?: string };
}

const logger = pino({ level: 'silent' });
let api: KubeApi;

/** A KubeClient that counts the informer's lists (and remembers the revision of the first). */
class CountingClient extends KubeClient {
  lists = 0;
  failedLists = 0;
  firstListRevision = '';

  override async list<T extends KubeObject>(
    resource: Resource,
    options: { namespace?: string; labelSelector?: string } = {},
  ): Promise<ListResult<T>> {
    this.lists++;
    try {
      const result = await super.list<T>(resource, options);
      this.firstListRevision ||= result.resourceVersion;
      return result;
    } catch (error) {
      this.failedLists++;
      throw error;
    }
  }
}

/** A client of the test API server, straight or through `proxy`. */
function informerClient(proxy?: TcpProxy): CountingClient {
  const direct = new KubeConfig();
  direct.loadFromFile(api.kubeconfig);
  if (!proxy) return new CountingClient(direct);
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: direct.clusters.map((c) => ({ ...c, server: `https://127.0.0.1:${proxy.port}` })),
    users: direct.users,
    contexts: direct.contexts,
    currentContext: direct.currentContext,
  });
  return new CountingClient(config);
}

function startProxy(): Promise<TcpProxy> {
  return TcpProxy.start(api.client.config.getCurrentCluster()!.server, 443);
}

/** What the informer told its handlers, per object name. */
function recordHandlers(informer: Informer<Widget>) {
  const upserts: Array<{ name: string; uid: string; resourceVersion: string; previousVersion?: string }> = [];
  const deletes: Array<{ name: string; uid: string }> = [];
  informer.on({
    upsert: (object, previous) =>
      upserts.push({
        name: object.metadata.name,
        uid: object.metadata.uid!,
        resourceVersion: object.metadata.resourceVersion!,
        ...(previous ? { previousVersion: previous.metadata.resourceVersion! } : {}),
      }),
    deleted: (object) => deletes.push({ name: object.metadata.name, uid: object.metadata.uid! }),
  });
  return {
    upserts,
    deletes,
    upsertsOf: (name: string) => upserts.filter((u) => u.name === name),
    deletesOf: (name: string) => deletes.filter((d) => d.name === name),
  };
}

function widget(name: string, label: string, color = 'red'): Widget {
  return { metadata: { name, namespace: NS, labels: { case: label } }, spec: { color } };
}

async function createWidget(name: string, label: string, color?: string): Promise<Widget> {
  return api.client.create<Widget>(Widgets, widget(name, label, color));
}

async function recolor(name: string, color: string): Promise<Widget> {
  const current = await api.client.get<Widget>(Widgets, name, NS);
  return api.client.update<Widget>(Widgets, { ...current, spec: { color } });
}

/** The server's objects of one case, name → resourceVersion and uid. */
async function serverState(label: string): Promise<Record<string, string>> {
  const { items } = await api.client.list<Widget>(Widgets, { labelSelector: `case=${label}` });
  return Object.fromEntries(items.map((i) => [i.metadata.name, `${i.metadata.uid}@${i.metadata.resourceVersion}`]));
}

function cacheState(informer: Informer<Widget>): Record<string, string> {
  return Object.fromEntries(
    informer.list().map((i) => [i.metadata.name, `${i.metadata.uid}@${i.metadata.resourceVersion}`]),
  );
}

/** Waits until the cache holds exactly what the server has for the case. */
async function cacheMatchesServer(informer: Informer<Widget>, label: string, timeoutMs = 20_000): Promise<void> {
  let expected: Record<string, string> = {};
  try {
    await waitFor(
      async () => {
        expected = await serverState(label);
        try {
          assert.deepEqual(cacheState(informer), expected);
          return true;
        } catch {
          return false;
        }
      },
      timeoutMs,
      'the cache to match the server',
    );
  } catch (error) {
    throw new Error(
      `${(error as Error).message}: cache ${JSON.stringify(cacheState(informer))}, server ${JSON.stringify(expected)}`,
      { cause: error },
    );
  }
}

/** A watch of widgets straight to the server; resolves when the server ends it. */
async function watchUntilEnded(): Promise<{ ended: Promise<void>; abort(): void }> {
  let ended = () => {};
  const done = new Promise<void>((resolve) => (ended = resolve));
  const controller = await new Watch(api.client.config).watch(
    `${Widgets.base}/${Widgets.plural}`,
    { labelSelector: 'case=none' },
    () => {},
    () => ended(),
  );
  return { ended: done, abort: () => controller.abort() };
}

/** One watch from `resourceVersion`, straight to the server: the first event it gets, or how it ended. */
async function firstWatchEvent(resourceVersion: string): Promise<{ type: string; object: unknown } | undefined> {
  let abort: AbortController | undefined;
  const event = await new Promise<{ type: string; object: unknown } | undefined>((resolve) => {
    void new Watch(api.client.config)
      .watch(
        `${Widgets.base}/${Widgets.plural}`,
        { resourceVersion, labelSelector: 'case=none' },
        (type, object) => resolve({ type, object }),
        () => resolve(undefined),
      )
      .then((controller) => (abort = controller));
    setTimeout(() => resolve(undefined), 5000).unref();
  });
  abort?.abort();
  return event;
}

before(async () => {
  api = await startKubeApi();
  await ensureNamespace(api, NS);
  await createOpenCrd(api, Widgets);
});

after(async () => {
  await api?.stop();
});

describe('informer', () => {
  test('the first list fills the cache before start resolves; the watch then keeps it current', async () => {
    const a = await createWidget('list-a', 'list');
    const b = await createWidget('list-b', 'list');
    const c = await createWidget('list-c', 'list');
    await createWidget('other-case', 'elsewhere'); // outside the label selector
    const client = informerClient();
    const informer = new Informer<Widget>(client, Widgets, logger, { labelSelector: 'case=list' });
    const seen = recordHandlers(informer);
    await informer.start();
    try {
      assert.deepEqual(cacheState(informer), await serverState('list'));
      assert.equal(informer.get(objectKey(a.metadata))?.metadata.uid, a.metadata.uid);
      assert.deepEqual(seen.upserts.map((u) => u.name).sort(), ['list-a', 'list-b', 'list-c']);
      assert.ok(
        seen.upserts.every((u) => u.previousVersion === undefined),
        'new objects have no previous copy',
      );
      assert.equal(informer.get(`${NS}/other-case`), undefined);
      assert.equal(informer.get(objectKey(c.metadata))?.apiVersion, Widgets.apiVersion, 'kind filled in');

      const d = await createWidget('list-d', 'list');
      const recolored = await recolor('list-a', 'blue');
      await api.client.delete(Widgets, 'list-b', NS);
      await cacheMatchesServer(informer, 'list');
      assert.equal(informer.get(objectKey(d.metadata))?.metadata.uid, d.metadata.uid);
      assert.equal(informer.get(objectKey(a.metadata))?.spec?.color, 'blue');
      assert.deepEqual(seen.upsertsOf('list-a').at(-1), {
        name: 'list-a',
        uid: a.metadata.uid,
        resourceVersion: recolored.metadata.resourceVersion,
        previousVersion: a.metadata.resourceVersion,
      });
      assert.deepEqual(seen.deletesOf('list-b'), [{ name: 'list-b', uid: b.metadata.uid }]);
      assert.equal(client.lists, 1, 'no relist while the watch is healthy');
    } finally {
      informer.stop();
      client.close();
    }
  });

  test('a watch cut off: relists, backing off while the server is unreachable; nothing missed is lost', async () => {
    await createWidget('cut-keep', 'cut');
    const dropped = await createWidget('cut-drop', 'cut');
    await createWidget('cut-edit', 'cut');
    const proxy = await startProxy();
    const client = informerClient(proxy);
    const informer = new Informer<Widget>(client, Widgets, logger, { labelSelector: 'case=cut' });
    const seen = recordHandlers(informer);
    await informer.start();
    try {
      await cacheMatchesServer(informer, 'cut');
      await proxy.cut();
      // What happens while the informer cannot see the server.
      await api.client.delete(Widgets, 'cut-drop', NS);
      await createWidget('cut-new', 'cut');
      await recolor('cut-edit', 'green');
      await waitFor(async () => client.failedLists >= 1, 20_000, 'a relist attempt while unreachable');
      // Three seconds of outage: a relist loop without backoff would make hundreds of attempts.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      assert.ok(client.failedLists <= 3, `${client.failedLists} relists in 3 s of outage: no backoff`);
      await proxy.restore();
      await cacheMatchesServer(informer, 'cut', 40_000);
      assert.deepEqual(seen.deletesOf('cut-drop'), [{ name: 'cut-drop', uid: dropped.metadata.uid }]);
      assert.equal(seen.upsertsOf('cut-new').length, 1);
      assert.equal(informer.get(`${NS}/cut-edit`)?.spec?.color, 'green');
      assert.equal(seen.upsertsOf('cut-keep').length, 1, 'an object that did not change is not announced again');
      // Watching again after the relist: new changes still arrive.
      await recolor('cut-keep', 'black');
      await cacheMatchesServer(informer, 'cut');
    } finally {
      informer.stop();
      client.close();
      await proxy.cut();
    }
  });

  test('410 Gone on the watch: a fresh list, with no object lost or duplicated', async () => {
    await createWidget('gone-keep', 'gone');
    const dropped = await createWidget('gone-drop', 'gone');
    await createWidget('gone-edit', 'gone');
    const client = informerClient();
    const informer = new Informer<Widget>(client, Widgets, logger, { labelSelector: 'case=gone' });
    const seen = recordHandlers(informer);
    await informer.start();
    try {
      await cacheMatchesServer(informer, 'gone');
      assert.equal(client.lists, 1);
      const staleRevision = client.firstListRevision;
      // A watch of our own, to see when the server ends the watches of the old storage.
      const sentinel = await watchUntilEnded();
      // A spec change gives the CRD new storage: a new watch cache that starts now.
      await api.kubectl(
        'patch',
        'crd',
        CRD_NAME,
        '--type=json',
        '-p',
        JSON.stringify([
          {
            op: 'add',
            path: '/spec/versions/0/additionalPrinterColumns',
            value: [{ name: 'Color', type: 'string', jsonPath: '.spec.color' }],
          },
        ]),
      );
      // The old storage's watches are over: the informer's watch, opened again from where it
      // was, is refused with 410, and these writes reach it only through a fresh list.
      await sentinel.ended;
      await api.client.delete(Widgets, 'gone-drop', NS);
      await createWidget('gone-new', 'gone');
      await recolor('gone-edit', 'green');
      // The server now refuses a watch from where the informer was: a real 410 Expired.
      const refused = await firstWatchEvent(staleRevision);
      assert.equal(refused?.type, 'ERROR');
      assert.deepEqual(
        { code: (refused?.object as { code?: number }).code, reason: (refused?.object as { reason?: string }).reason },
        { code: 410, reason: 'Expired' },
      );
      await waitFor(async () => client.lists >= 2, 20_000, 'the relist after 410 Gone');
      await cacheMatchesServer(informer, 'gone');
      assert.deepEqual(Object.keys(cacheState(informer)).sort(), ['gone-edit', 'gone-keep', 'gone-new']);
      assert.deepEqual(seen.deletesOf('gone-drop'), [{ name: 'gone-drop', uid: dropped.metadata.uid }]);
      assert.equal(seen.upsertsOf('gone-new').length, 1, 'the new object is announced once');
      assert.equal(seen.upsertsOf('gone-keep').length, 1, 'an object that did not change is not announced again');
      // And the watch opened after the relist delivers again.
      await recolor('gone-keep', 'black');
      await cacheMatchesServer(informer, 'gone');
      assert.equal(seen.upsertsOf('gone-keep').length, 2);
    } finally {
      informer.stop();
      client.close();
    }
  });

  test('a late DELETED of an object since created again under its name leaves the new one', async () => {
    const old = await createWidget('phoenix', 'stale');
    const proxy = await startProxy();
    const client = informerClient(proxy);
    const informer = new Informer<Widget>(client, Widgets, logger, { labelSelector: 'case=stale' });
    const seen = recordHandlers(informer);
    await informer.start();
    try {
      await cacheMatchesServer(informer, 'stale');
      proxy.hold();
      await api.client.delete(Widgets, 'phoenix', NS);
      const reborn = await createWidget('phoenix', 'stale', 'gold');
      assert.notEqual(reborn.metadata.uid, old.metadata.uid);
      informer.observe(reborn); // what a reconciler does with the result of its own write
      // A marker written last: once the informer has it, every event before it was applied.
      await createWidget('marker', 'stale');
      proxy.release();
      await waitFor(async () => informer.get(`${NS}/marker`), 20_000, 'the marker');
      assert.equal(informer.get(`${NS}/phoenix`)?.metadata.uid, reborn.metadata.uid);
      assert.equal(informer.get(`${NS}/phoenix`)?.spec?.color, 'gold');
      assert.deepEqual(seen.deletesOf('phoenix'), [], 'the stale DELETED is ignored');
      await cacheMatchesServer(informer, 'stale');
      assert.equal(client.lists, 1, 'the events came through the watch, not a relist');
    } finally {
      informer.stop();
      client.close();
      await proxy.cut();
    }
  });
});
