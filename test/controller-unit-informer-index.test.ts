/**
 * The informer's indexes (by namespace, by label, by a field) and what it keeps of each object,
 * against the real test kube-apiserver, on a custom resource of its own (gadgets.index.depot.test).
 * Every lookup is checked against what the server holds, after adds, updates and deletes seen
 * through the watch, and after a relist (the watch cut off through a TCP proxy, changes made
 * meanwhile, the connection restored).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import type { KubeObject } from '../catalog-controller/api/v1beta1.js';
import { ConditionEvents } from '../catalog-controller/condition-events.js';
import { LAST_APPLIED_ANNOTATION } from '../catalog-controller/kube/cached-object.js';
import { EventRecorder } from '../catalog-controller/kube/event-recorder.js';
import { Informer } from '../catalog-controller/kube/informer.js';
import { KubeClient } from '../catalog-controller/kube/kube-client.js';
import type { Resource } from '../catalog-controller/kube/resources.js';
import { ObjectWriter } from '../catalog-controller/object-writer.js';
import { createOpenCrd, ensureNamespace, startKubeApi, waitFor, type KubeApi } from './kube-helpers.js';
import { TcpProxy } from './tcp-proxy.js';

const NAMESPACES = ['index-a', 'index-b'] as const;
const GROUP = 'index.depot.test';
const Gadgets: Resource = {
  apiVersion: `${GROUP}/v1`,
  kind: 'Gadget',
  base: `/apis/${GROUP}/v1`,
  plural: 'gadgets',
  namespaced: true,
};

interface Gadget extends KubeObject {
  spec: { color?: string };
}

const logger = pino({ level: 'silent' });
let api: KubeApi;

const byColor = { color: (g: Gadget) => (g.spec.color ? [g.spec.color] : []) };

function informerClient(proxy?: TcpProxy): KubeClient {
  const direct = new KubeConfig();
  direct.loadFromFile(api.kubeconfig);
  if (!proxy) return new KubeClient(direct);
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: direct.clusters.map((c) => ({ ...c, server: `https://127.0.0.1:${proxy.port}` })),
    users: direct.users,
    contexts: direct.contexts,
    currentContext: direct.currentContext,
  });
  return new KubeClient(config);
}

function gadget(name: string, namespace: string, tier: string | undefined, color: string): Gadget {
  return { metadata: { name, namespace, labels: { case: 'index', ...(tier ? { tier } : {}) } }, spec: { color } };
}

async function change(name: string, namespace: string, edit: (g: Gadget) => void): Promise<void> {
  const current = await api.client.get<Gadget>(Gadgets, name, namespace);
  edit(current);
  await api.client.update(Gadgets, current);
}

const names = (objects: Gadget[]) => objects.map((o) => `${o.metadata.namespace}/${o.metadata.name}`).sort();

/** Every lookup the informer answers, as names. */
function lookups(informer: Informer<Gadget>, objects: () => Gadget[]) {
  const all = objects();
  const tiers = [...new Set(all.map((g) => g.metadata.labels?.tier).filter((t) => t !== undefined))];
  const colors = [...new Set(all.map((g) => g.spec.color).filter((c) => c !== undefined))];
  return {
    all: names(informer.list()),
    namespaces: NAMESPACES.map((ns) => names(informer.list(ns))),
    tiers: Object.fromEntries([...tiers, 'none'].map((t) => [t, names(informer.byLabel('tier', t))])),
    colors: Object.fromEntries([...colors, 'none'].map((c) => [c, names(informer.byIndex('color', c))])),
  };
}

/** The same lookups computed from the server's objects. */
async function serverLookups(informer: Informer<Gadget>) {
  const { items } = await api.client.list<Gadget>(Gadgets, { labelSelector: 'case=index' });
  const tiers = [...new Set(items.map((g) => g.metadata.labels?.tier).filter((t) => t !== undefined))];
  const colors = [...new Set(items.map((g) => g.spec.color).filter((c) => c !== undefined))];
  const cached = lookups(informer, () => items);
  return {
    expected: {
      all: names(items),
      namespaces: NAMESPACES.map((ns) => names(items.filter((g) => g.metadata.namespace === ns))),
      tiers: Object.fromEntries(
        [...tiers, 'none'].map((t) => [t, names(items.filter((g) => g.metadata.labels?.tier === t))]),
      ),
      colors: Object.fromEntries([...colors, 'none'].map((c) => [c, names(items.filter((g) => g.spec.color === c))])),
    },
    cached,
  };
}

async function lookupsMatchServer(informer: Informer<Gadget>): Promise<void> {
  let last: Awaited<ReturnType<typeof serverLookups>> | undefined;
  try {
    await waitFor(
      async () => {
        last = await serverLookups(informer);
        return JSON.stringify(last.cached) === JSON.stringify(last.expected);
      },
      40_000,
      'the informer lookups to match the server',
    );
  } catch (error) {
    assert.deepEqual(last?.cached, last?.expected, (error as Error).message);
    throw error;
  }
}

before(async () => {
  api = await startKubeApi();
  for (const ns of NAMESPACES) await ensureNamespace(api, ns);
  await createOpenCrd(api, Gadgets);
});

after(async () => {
  await api?.stop();
});

describe('informer indexes', () => {
  test('namespace, label and field lookups follow adds, updates, deletes and a relist', async () => {
    const [a, b] = NAMESPACES;
    for (const [name, ns, tier, color] of [
      ['g1', a, 'gold', 'red'],
      ['g2', a, 'silver', 'red'],
      ['g3', b, 'gold', 'blue'],
      ['g4', b, undefined, 'green'],
    ] as const) {
      await api.client.create(Gadgets, gadget(name, ns, tier, color));
    }
    const proxy = await TcpProxy.start(api.client.config.getCurrentCluster()!.server, 443);
    const client = informerClient(proxy);
    const informer = new Informer<Gadget>(client, Gadgets, logger, {
      labelSelector: 'case=index',
      indexedLabels: ['tier'],
      indexes: byColor,
    });
    await informer.start();
    try {
      await lookupsMatchServer(informer);
      assert.deepEqual(names(informer.byLabel('tier', 'gold')), [`${a}/g1`, `${b}/g3`]);

      // Through the watch: a new object, a label changed, one removed, a field changed, a delete.
      await api.client.create(Gadgets, gadget('g5', a, 'gold', 'blue'));
      await change('g1', a, (g) => (g.metadata.labels!.tier = 'silver'));
      await change('g3', b, (g) => delete g.metadata.labels!.tier);
      await change('g2', a, (g) => (g.spec.color = 'green'));
      await api.client.delete(Gadgets, 'g4', b);
      await lookupsMatchServer(informer);
      assert.deepEqual(names(informer.byLabel('tier', 'gold')), [`${a}/g5`]);
      assert.deepEqual(names(informer.byIndex('color', 'red')), [`${a}/g1`]);
      assert.deepEqual(names(informer.list(b)), [`${b}/g3`]);

      // Through a relist: what changed while the watch was cut off.
      await proxy.cut();
      await api.client.delete(Gadgets, 'g5', a);
      await api.client.create(Gadgets, gadget('g6', b, 'gold', 'red'));
      await change('g3', b, (g) => {
        g.metadata.labels!.tier = 'gold';
        g.spec.color = 'red';
      });
      await proxy.restore();
      await lookupsMatchServer(informer);
      assert.deepEqual(names(informer.byLabel('tier', 'gold')), [`${b}/g3`, `${b}/g6`]);
      assert.deepEqual(names(informer.list(a)), [`${a}/g1`, `${a}/g2`]);
    } finally {
      informer.stop();
      client.close();
      await proxy.close();
    }
  });

  test('the cache leaves out managedFields and the last-applied annotation; a write keeps them', async () => {
    const ns = NAMESPACES[0];
    const applied = JSON.stringify(gadget('kept', ns, 'gold', 'red'));
    const created = await api.client.create<Gadget>(Gadgets, {
      ...gadget('kept', ns, 'gold', 'red'),
      metadata: {
        ...gadget('kept', ns, 'gold', 'red').metadata,
        annotations: { [LAST_APPLIED_ANNOTATION]: applied, 'depot/abandon': 'false' },
        finalizers: ['index.depot.test/hold'],
      },
    });
    const client = informerClient();
    const informer = new Informer<Gadget>(client, Gadgets, logger, { labelSelector: 'case=index' });
    await informer.start();
    try {
      const cached = informer.get(`${ns}/kept`)!;
      assert.equal((cached.metadata as unknown as Record<string, unknown>).managedFields, undefined);
      assert.deepEqual(cached.metadata.annotations, { 'depot/abandon': 'false' });
      assert.equal(cached.metadata.uid, created.metadata.uid);
      assert.equal(cached.metadata.resourceVersion, created.metadata.resourceVersion);
      assert.equal(cached.metadata.generation, created.metadata.generation);
      assert.deepEqual(cached.metadata.finalizers, ['index.depot.test/hold']);
      assert.deepEqual(cached.metadata.labels, created.metadata.labels);
      assert.deepEqual(cached.spec, { color: 'red' });

      const writer = new ObjectWriter(
        client,
        <T extends KubeObject>() => informer as unknown as Informer<T>,
        new ConditionEvents(new EventRecorder(client, 'index-test', logger)),
      );
      const written = await writer.updateObject(Gadgets, cached, (copy) => {
        copy.metadata.labels = { ...copy.metadata.labels, tier: 'silver' };
        copy.metadata.finalizers = [];
        copy.spec.color = 'blue';
        return true;
      });
      const server = await api.client.get<Gadget>(Gadgets, 'kept', ns);
      assert.equal(server.metadata.annotations?.[LAST_APPLIED_ANNOTATION], applied, 'the annotation is kept');
      assert.equal(server.metadata.annotations?.['depot/abandon'], 'false');
      assert.ok((server.metadata as unknown as Record<string, unknown>).managedFields, 'managedFields are kept');
      assert.equal(server.metadata.labels?.tier, 'silver');
      assert.deepEqual(server.metadata.finalizers ?? [], []);
      assert.deepEqual(server.spec, { color: 'blue' });
      assert.equal(informer.get(`${ns}/kept`)?.metadata.resourceVersion, written.metadata.resourceVersion);
      assert.equal(
        (informer.get(`${ns}/kept`)?.metadata as unknown as Record<string, unknown>).managedFields,
        undefined,
      );

      // A stale copy is refused with 409 and written again on the newest one.
      const stale = { ...written, metadata: { ...written.metadata, resourceVersion: cached.metadata.resourceVersion } };
      await writer.updateObject(Gadgets, stale, (copy) => {
        copy.spec.color = 'black';
        return true;
      });
      assert.deepEqual((await api.client.get<Gadget>(Gadgets, 'kept', ns)).spec, { color: 'black' });
    } finally {
      informer.stop();
      client.close();
    }
  });
});
