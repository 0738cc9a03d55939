/**
 * No secret reaches a log, at every level: a whole lifecycle through the controller (a broker
 * with basic auth, instances with parameters inline and from a Secret, an update, bindings whose
 * Secrets get credentials, unbind retries, deletes) with the controller and the broker both at
 * LOG_LEVEL=trace; then the controller's stdout and stderr and the broker's log are searched
 * for every secret of the run, as written and base64-encoded (how a Secret's data would show).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { Secret, ServiceInstance } from '../catalog-controller/api/v1beta1.js';
import { ENCRYPTION_KEYS, USERNAME, type TestDepot } from './helpers.js';
import {
  R,
  binding,
  brokerAuthSecret,
  condition,
  create,
  edit,
  instance,
  remove,
  secretValues,
  startController,
  startKubeApi,
  startTestBroker,
  waitFor,
  waitForGone,
  waitForReason,
  type ControllerProcess,
  type KubeApi,
} from './kube-helpers.js';

const NS = 'log-leaks';
const distinct = (what: string) => `${what}-${randomBytes(9).toString('hex')}`;
const b64 = (value: string) => Buffer.from(value).toString('base64');

const BROKER_PASSWORD = distinct('broker-password');
/** The base64 part of ENCRYPTION_KEYS (`id:base64`): the state's key. */
const ENCRYPTION_KEY = ENCRYPTION_KEYS.slice(ENCRYPTION_KEYS.indexOf(':') + 1);
const INSTANCE_INLINE = distinct('inline-parameter');
const INSTANCE_FROM_SECRET = distinct('secret-parameter');
const INSTANCE_UPDATE = distinct('updated-parameter');
const BINDING_INLINE = distinct('binding-parameter');
const ECHOED_PASSWORD = distinct('echoed-password');
const ECHOED_URI = `postgresql://echo:${distinct('echoed-uri')}@db.example:5432/echo`;

/** Every value of the run that no log may hold, by what it is (the database's are added once bound). */
const SECRETS: Record<string, string> = {
  'broker password': BROKER_PASSWORD,
  'Authorization: Basic token': b64(`${USERNAME}:${BROKER_PASSWORD}`),
  'encryption key (base64)': ENCRYPTION_KEY,
  'encryption key (hex)': Buffer.from(ENCRYPTION_KEY, 'base64').toString('hex'),
  'instance parameter (inline)': INSTANCE_INLINE,
  'instance parameter (parametersFrom)': INSTANCE_FROM_SECRET,
  'instance parameter (update)': INSTANCE_UPDATE,
  'binding parameter (inline)': BINDING_INLINE,
  'echoed credential password': ECHOED_PASSWORD,
  'echoed credential uri': ECHOED_URI,
};

let api: KubeApi;
let depot: TestDepot;
let controller: ControllerProcess | undefined;

before(async () => {
  api = await startKubeApi();
  depot = await startTestBroker('ctrl-log-leaks', { LOG_LEVEL: 'trace', BROKER_PASSWORD });
  await brokerAuthSecret(api, NS, 'depot-auth', { username: USERNAME, password: BROKER_PASSWORD });
});

after(async () => {
  await controller?.stop('SIGKILL');
  await depot?.close();
  await api?.stop();
});

async function createSecret(name: string, data: Record<string, string>): Promise<void> {
  await api.client.create<Secret>(R.Secret, {
    metadata: { name, namespace: NS },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  });
}

async function boundCredentials(name: string): Promise<Record<string, string>> {
  await waitForReason(api, R.ServiceBinding, name, NS, 'InjectedBindResult', 'Ready', 30_000);
  return secretValues(await api.client.get<Secret>(R.Secret, name, NS));
}

/** Each secret (as is and base64) found in a log: "<what> in <log>". */
function leaks(logs: Record<string, string>, secrets: Record<string, string>): string[] {
  const found: string[] = [];
  for (const [what, value] of Object.entries(secrets)) {
    for (const [where, text] of Object.entries(logs)) {
      if (text.includes(value)) found.push(`${what} in ${where}`);
      if (text.includes(b64(value))) found.push(`${what} (base64) in ${where}`);
    }
  }
  return found;
}

/** A log's lines by pino level ("text" for a line that is not JSON). */
function levels(text: string): Map<number | 'text', number> {
  const counts = new Map<number | 'text', number>();
  for (const line of text.split('\n').filter(Boolean)) {
    let level: number | 'text' = 'text';
    try {
      level = (JSON.parse(line) as { level: number }).level;
    } catch {
      // not a pino line (a warning from node, say): counted as text, and searched like the rest
    }
    counts.set(level, (counts.get(level) ?? 0) + 1);
  }
  return counts;
}

test('a whole lifecycle at trace: no credential, parameter, broker password or key in any log', async (t) => {
  controller = await startController(api, { LOG_LEVEL: 'trace' });
  await create(api, R.ClusterServiceBroker, {
    metadata: { name: 'depot' },
    spec: { url: depot.baseUrl, authInfo: { basic: { secretRef: { namespace: NS, name: 'depot-auth' } } } },
  });
  await waitForReason(api, R.ClusterServiceBroker, 'depot', undefined, 'FetchedCatalog');

  // A real database: its binding's password, uri and jdbcUrl are real credentials.
  await create(
    api,
    R.ServiceInstance,
    instance('orders-db', NS, {
      clusterServiceClassExternalName: 'postgresql',
      clusterServicePlanExternalName: 'small',
      parameters: { extensions: ['citext'] },
    }),
  );
  await create(api, R.ServiceBinding, binding('orders-db', NS, { instanceRef: { name: 'orders-db' } }));
  const database = await boundCredentials('orders-db');
  assert.ok(database.password && database.uri && database.jdbcUrl, 'the binding Secret has credentials');
  SECRETS['postgresql password'] = database.password;
  SECRETS['postgresql uri'] = database.uri;
  SECRETS['postgresql jdbcUrl'] = database.jdbcUrl;
  SECRETS['postgresql instance parameter (extensions)'] = 'citext';

  // The test offering takes any parameters, and a bind returns `parameters.credentials`.
  await createSecret('echo-parameters', {
    parameters: JSON.stringify({ fromSecret: INSTANCE_FROM_SECRET }),
  });
  await create(
    api,
    R.ServiceInstance,
    instance('echo', NS, {
      clusterServiceClassExternalName: 'depot-test',
      clusterServicePlanExternalName: 'ok',
      parameters: { note: INSTANCE_INLINE },
      parametersFrom: [{ secretKeyRef: { name: 'echo-parameters', key: 'parameters' } }],
    }),
  );
  await waitForReason(api, R.ServiceInstance, 'echo', NS, 'ProvisionedSuccessfully');
  // An update: new parameters, and a plan whose unbind fails three times before it works.
  await edit<ServiceInstance>(api, R.ServiceInstance, 'echo', NS, (i) => {
    i.spec.clusterServicePlanExternalName = 'unbind-fail500-3x';
    i.spec.parameters = { note: INSTANCE_UPDATE };
  });
  await waitFor(
    async () => {
      const i = await api.client.get<ServiceInstance>(R.ServiceInstance, 'echo', NS);
      return i.status?.reconciledGeneration === i.metadata.generation && condition(i, 'Ready')?.status === 'True';
    },
    20_000,
    'the update of echo',
  );
  await createSecret('echo-credentials', {
    parameters: JSON.stringify({
      credentials: {
        password: ECHOED_PASSWORD,
        uri: ECHOED_URI,
      },
    }),
  });
  await create(
    api,
    R.ServiceBinding,
    binding('echo', NS, {
      instanceRef: { name: 'echo' },
      parameters: { tier: BINDING_INLINE },
      parametersFrom: [{ secretKeyRef: { name: 'echo-credentials', key: 'parameters' } }],
    }),
  );
  const echoed = await boundCredentials('echo');
  assert.equal(echoed.password, ECHOED_PASSWORD, 'the bind echoed the credentials');
  assert.equal(echoed.uri, ECHOED_URI);

  for (const name of ['orders-db', 'echo']) await remove(api, R.ServiceBinding, name, NS);
  for (const name of ['orders-db', 'echo']) await waitForGone(api, R.ServiceBinding, name, NS, 30_000);
  for (const name of ['orders-db', 'echo']) await remove(api, R.ServiceInstance, name, NS);
  for (const name of ['orders-db', 'echo']) await waitForGone(api, R.ServiceInstance, name, NS, 30_000);
  assert.equal(await controller.stop(), 0, 'the controller stopped cleanly');

  const logs = {
    'controller stdout': controller.output.stdout,
    'controller stderr': controller.output.stderr,
    'broker log': depot.logs.join(''),
  };
  const controllerLevels = levels(logs['controller stdout']);
  const brokerLevels = levels(logs['broker log']);
  t.diagnostic(`controller stdout by level: ${JSON.stringify([...controllerLevels])}`);
  t.diagnostic(`controller stderr: ${logs['controller stderr'].split('\n').filter(Boolean).length} lines`);
  t.diagnostic(`broker log by level: ${JSON.stringify([...brokerLevels])}`);

  assert.deepEqual(leaks(logs, SECRETS), []);

  // The search looked at logs of the run: the controller's and the broker's lines of it are there.
  assert.match(logs['controller stdout'], /"msg":"catalog synced"/);
  assert.match(logs['controller stdout'], /"msg":"shutting down"/);
  assert.match(logs['broker log'], /"route":"\/v2\/service_instances\/:instance_id\/service_bindings\/:binding_id"/);
  assert.match(logs['broker log'], /"msg":"operation finished"/);
  // Nothing in the controller or the broker logs below info on a lifecycle that goes well, so
  // a trace run has the info run's lines; should any appear, they are searched as well.
  const lines = (counts: Map<number | 'text', number>) => [...counts.values()].reduce((a, b) => a + b, 0);
  assert.ok(lines(controllerLevels) > 0 && lines(brokerLevels) > 0);
});
