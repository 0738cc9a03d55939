import { after, before, it } from 'node:test';
import type { KubeObject, ServiceBinding } from '../catalog-controller/api/v1beta1.js';
import { R, binding, brokerAuthSecret, create, ensureNamespace, instance, startController, startKubeApi, startTestBroker, waitForReason, type ControllerProcess, type KubeApi } from './kube-helpers.js';
import type { TestDepot } from './helpers.js';
let api: KubeApi; let depot: TestDepot; let controller: ControllerProcess;
before(async () => {
  api = await startKubeApi(); depot = await startTestBroker('zz_scratch');
  await brokerAuthSecret(api, 'depot-system', 'auth');
  await create(api, R.ClusterServiceBroker, { metadata: { name: 'depot' }, spec: { url: depot.baseUrl, authInfo: { basic: { secretRef: { namespace: 'depot-system', name: 'auth' } } } } } as KubeObject);
  controller = await startController(api);
  await waitForReason(api, R.ClusterServiceBroker, 'depot', undefined, 'FetchedCatalog');
});
after(async () => { await controller?.stop(); await depot?.close(); await api?.stop(); });
it('scratch', async () => {
  const ns = 'scratch';
  await ensureNamespace(api, ns);
  await create(api, R.ServiceInstance, instance('db', ns, { clusterServiceClassExternalName: 'depot-test', clusterServicePlanExternalName: 'ok' }));
  await waitForReason(api, R.ServiceInstance, 'db', ns, 'ProvisionedSuccessfully');
  await create(api, R.ServiceBinding, binding('badkey', ns, { instanceRef: { name: 'db' }, parameters: { credentials: { 'bad key': 'x' } } }));
  await create(api, R.ServiceBinding, binding('badtype', ns, { instanceRef: { name: 'db' }, parameters: { credentials: { type: 'Weird Type!/x y', a: 'b' } } }));
  await create(api, R.ServiceBinding, binding('badname', ns, { instanceRef: { name: 'db' }, secretName: 'Not_A_Valid_Name' }));
  await new Promise((r) => setTimeout(r, 6000));
  for (const n of ['badkey', 'badtype', 'badname']) {
    const b = await api.client.get<ServiceBinding>(R.ServiceBinding, n, ns);
    console.log(n, JSON.stringify(b.status?.conditions), JSON.stringify(await api.client.find(R.Secret, b.spec.secretName ?? n, ns)));
  }
  console.log(controller.logs.filter((l) => /warn|error/i.test(l)).slice(0, 8).join('\n'));
});
