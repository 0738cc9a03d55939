/**
 * The controller's kubeconfig reading (catalog-controller/kube/kube-config.ts): files merged as
 * kubectl merges KUBECONFIG, paths relative to their file, the credentials put on a request, a
 * token file re-read, the pod's service account, and what is left to @kubernetes/client-node.
 * Real files in a temporary directory; the requests themselves are covered by every test that
 * starts the controller against the test API server (it finds it through KUBECONFIG).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import type https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { stringify } from 'yaml';
import { fromKubeconfigFiles, inClusterCredentials } from '../catalog-controller/kube/kube-config.js';

async function directory(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'depot-kubeconfig-'));
}

async function applied(credentials: { applyToHTTPSOptions(o: https.RequestOptions): Promise<void> }) {
  const options: https.RequestOptions = { headers: { accept: 'application/json' } };
  await credentials.applyToHTTPSOptions(options);
  return options;
}

describe('kubeconfig', () => {
  test('the current context of the first file, with entries of later files; paths relative to their file', async () => {
    const dir = await directory();
    await mkdir(path.join(dir, 'certs'));
    await writeFile(path.join(dir, 'certs/ca.crt'), 'CA');
    await writeFile(path.join(dir, 'certs/client.crt'), 'CERT');
    await writeFile(path.join(dir, 'certs/client.key'), 'KEY');
    const first = path.join(dir, 'first.yaml');
    const second = path.join(dir, 'second.yaml');
    await writeFile(
      first,
      stringify({
        'current-context': 'ops',
        contexts: [{ name: 'ops', context: { cluster: 'prod', user: 'admin' } }],
        users: [
          { name: 'admin', user: { 'client-certificate': 'certs/client.crt', 'client-key': 'certs/client.key' } },
        ],
      }),
    );
    await writeFile(
      second,
      stringify({
        'current-context': 'other',
        clusters: [{ name: 'prod', cluster: { server: 'https://prod:6443', 'certificate-authority': 'certs/ca.crt' } }],
        users: [{ name: 'admin', user: { token: 'not-this-one' } }],
        contexts: [{ name: 'other', context: { cluster: 'prod', user: 'admin' } }],
      }),
    );
    const credentials = fromKubeconfigFiles([first, second]);
    assert.deepEqual(credentials.getCurrentCluster(), { server: 'https://prod:6443' });
    const options = await applied(credentials);
    assert.equal(options.ca?.toString(), 'CA');
    assert.equal(options.cert?.toString(), 'CERT');
    assert.equal(options.key?.toString(), 'KEY');
    assert.deepEqual(options.headers, { accept: 'application/json' }, 'the first file has the user: no token');
    assert.equal(credentials.needsClientLibrary(), false);
  });

  test('inline data, a token, skip-verify and a server name; basic auth without a token', async () => {
    const dir = await directory();
    const file = path.join(dir, 'config');
    const data = (s: string) => Buffer.from(s).toString('base64');
    await writeFile(
      file,
      stringify({
        'current-context': 'c',
        clusters: [
          {
            name: 'k',
            cluster: {
              server: 'https://k:443',
              'certificate-authority-data': data('CA'),
              'insecure-skip-tls-verify': true,
              'tls-server-name': 'kubernetes',
            },
          },
        ],
        users: [
          { name: 't', user: { token: 'sekret', 'client-certificate-data': data('C'), 'client-key-data': data('K') } },
          { name: 'b', user: { username: 'u', password: 'p' } },
        ],
        contexts: [
          { name: 'c', context: { cluster: 'k', user: 't' } },
          { name: 'd', context: { cluster: 'k', user: 'b' } },
        ],
      }),
    );
    const options = await applied(fromKubeconfigFiles([file]));
    assert.equal(options.ca?.toString(), 'CA');
    assert.equal(options.cert?.toString(), 'C');
    assert.equal(options.key?.toString(), 'K');
    assert.equal(options.rejectUnauthorized, false);
    assert.equal(options.servername, 'kubernetes');
    assert.equal((options.headers as Record<string, string>).authorization, 'Bearer sekret');

    const basic = path.join(dir, 'basic');
    await writeFile(basic, stringify({ 'current-context': 'd' }));
    const basicOptions = await applied(fromKubeconfigFiles([basic, file]));
    assert.equal(basicOptions.auth, 'u:p');
    assert.equal((basicOptions.headers as Record<string, string>).authorization, undefined);
  });

  test('exec and auth-provider users, and a proxy, are left to @kubernetes/client-node', async () => {
    const dir = await directory();
    for (const [name, user, cluster] of [
      ['exec', { exec: { command: 'aws', apiVersion: 'client.authentication.k8s.io/v1beta1' } }, {}],
      ['provider', { 'auth-provider': { name: 'oidc' } }, {}],
      ['proxy', { token: 't' }, { 'proxy-url': 'socks5://proxy:1080' }],
    ] as const) {
      const file = path.join(dir, name);
      await writeFile(
        file,
        stringify({
          'current-context': 'c',
          clusters: [{ name: 'k', cluster: { server: 'https://k', ...cluster } }],
          users: [{ name: 'u', user }],
          contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
        }),
      );
      assert.equal(fromKubeconfigFiles([file]).needsClientLibrary(), true, name);
    }
  });

  test('a context that names no cluster is refused', async () => {
    const dir = await directory();
    const file = path.join(dir, 'config');
    await writeFile(file, stringify({ 'current-context': 'missing', contexts: [] }));
    assert.throws(() => fromKubeconfigFiles([file]), /current context missing names no cluster/);
  });

  test("the pod's service account: its CA and token file; the token is re-read once a minute", async (t) => {
    const root = await directory();
    await writeFile(path.join(root, 'token'), 'first\n');
    await writeFile(path.join(root, 'ca.crt'), 'POD-CA');
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    t.after(() => {
      for (const [key, value] of [
        ['KUBERNETES_SERVICE_HOST', saved.host],
        ['KUBERNETES_SERVICE_PORT', saved.port],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    });
    delete process.env.KUBERNETES_SERVICE_HOST;
    assert.equal(inClusterCredentials(root), undefined, 'outside a pod');
    process.env.KUBERNETES_SERVICE_HOST = 'fd00::1';
    process.env.KUBERNETES_SERVICE_PORT = '443';
    t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    const credentials = inClusterCredentials(root)!;
    assert.deepEqual(credentials.getCurrentCluster(), { server: 'https://[fd00::1]:443' });
    const options = await applied(credentials);
    assert.equal(options.ca?.toString(), 'POD-CA');
    assert.equal((options.headers as Record<string, string>).authorization, 'Bearer first');
    await writeFile(path.join(root, 'token'), 'second\n');
    t.mock.timers.tick(30_000);
    assert.equal(((await applied(credentials)).headers as Record<string, string>).authorization, 'Bearer first');
    t.mock.timers.tick(31_000);
    assert.equal(((await applied(credentials)).headers as Record<string, string>).authorization, 'Bearer second');
  });
});
