import { existsSync, readFileSync } from 'node:fs';
import type https from 'node:https';
import { isIPv6 } from 'node:net';
import { homedir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';

/** What KubeClient needs of a kubeconfig: the API server, and the credentials put on each request. */
export interface KubeCredentials {
  getCurrentCluster(): { server: string } | null;
  applyToHTTPSOptions(options: https.RequestOptions): Promise<void>;
}

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';
/** client-go's and @kubernetes/client-node's period for re-reading a token file (bound tokens rotate). */
const TOKEN_FILE_REREAD_MS = 60_000;

interface Cluster {
  server: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
  'proxy-url'?: string;
}

interface User {
  token?: string;
  tokenFile?: string;
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  username?: string;
  password?: string;
  exec?: unknown;
  'auth-provider'?: unknown;
}

interface KubeconfigFile {
  clusters?: Array<{ name: string; cluster?: Cluster }>;
  users?: Array<{ name: string; user?: User }>;
  contexts?: Array<{ name: string; context?: { cluster?: string; user?: string } }>;
  'current-context'?: string;
}

/** A file path of a kubeconfig is relative to the kubeconfig's own directory. */
function resolved(root: string, file: string | undefined): string | undefined {
  return file === undefined || path.isAbsolute(file) ? file : path.join(root, file);
}

const files = new Map<string, Buffer>();

/** A CA, certificate or key from its file (read once: the connection pool is made once) or inline data. */
function fileOrData(file: string | undefined, data: string | undefined): Buffer | undefined {
  if (file) {
    const read = files.get(file) ?? readFileSync(file);
    files.set(file, read);
    return read;
  }
  return data ? Buffer.from(data, 'base64') : undefined;
}

/**
 * Credentials from a kubeconfig's current context or the pod's service account: the server's
 * CA, a client certificate, a bearer token (a token file re-read every minute) or basic auth.
 */
export class KubeconfigCredentials implements KubeCredentials {
  private token: { value: string; readAt: number } | undefined;

  constructor(
    private readonly cluster: Cluster,
    private readonly user: User,
  ) {}

  getCurrentCluster(): { server: string } {
    return { server: this.cluster.server };
  }

  async applyToHTTPSOptions(options: https.RequestOptions): Promise<void> {
    const { cluster, user } = this;
    if (cluster['insecure-skip-tls-verify']) options.rejectUnauthorized = false;
    if (cluster['tls-server-name']) options.servername = cluster['tls-server-name'];
    const ca = fileOrData(cluster['certificate-authority'], cluster['certificate-authority-data']);
    if (ca) options.ca = ca;
    const cert = fileOrData(user['client-certificate'], user['client-certificate-data']);
    if (cert) options.cert = cert;
    const key = fileOrData(user['client-key'], user['client-key-data']);
    if (key) options.key = key;
    const token = user.token ?? this.tokenFromFile();
    const headers = (options.headers ?? {}) as Record<string, string>;
    if (token) options.headers = { ...headers, authorization: `Bearer ${token}` };
    else if (user.username) options.auth = `${user.username}:${user.password ?? ''}`;
  }

  private tokenFromFile(): string | undefined {
    if (!this.user.tokenFile) return undefined;
    if (!this.token || Date.now() - this.token.readAt > TOKEN_FILE_REREAD_MS)
      this.token = { value: readFileSync(this.user.tokenFile, 'utf8').trim(), readAt: Date.now() };
    return this.token.value;
  }

  /** Whether these need what only @kubernetes/client-node does: an exec or auth-provider plugin, a proxy. */
  needsClientLibrary(): boolean {
    return this.user.exec !== undefined || this.user['auth-provider'] !== undefined || !!this.cluster['proxy-url'];
  }
}

/**
 * The current context of kubeconfig files (each later file adds the clusters, users and contexts
 * the earlier ones lack; the first current-context wins), as kubectl merges KUBECONFIG.
 */
export function fromKubeconfigFiles(files: string[]): KubeconfigCredentials {
  const clusters = new Map<string, Cluster>();
  const users = new Map<string, User>();
  const contexts = new Map<string, { cluster?: string; user?: string }>();
  let current: string | undefined;
  for (const file of files) {
    const root = path.dirname(file);
    const config = (parse(readFileSync(file, 'utf8')) ?? {}) as KubeconfigFile;
    for (const { name, cluster } of config.clusters ?? []) {
      if (!cluster || clusters.has(name)) continue;
      clusters.set(name, {
        ...cluster,
        'certificate-authority': resolved(root, cluster['certificate-authority']),
      });
    }
    for (const { name, user } of config.users ?? []) {
      if (!user || users.has(name)) continue;
      users.set(name, {
        ...user,
        'client-certificate': resolved(root, user['client-certificate']),
        'client-key': resolved(root, user['client-key']),
        tokenFile: resolved(root, user.tokenFile),
      });
    }
    for (const { name, context } of config.contexts ?? [])
      if (context && !contexts.has(name)) contexts.set(name, context);
    current ||= config['current-context'];
  }
  const context = current ? contexts.get(current) : undefined;
  const cluster = context?.cluster ? clusters.get(context.cluster) : undefined;
  if (!cluster?.server) throw new Error(`the kubeconfig's current context ${current ?? '(none)'} names no cluster`);
  return new KubeconfigCredentials(cluster, (context?.user ? users.get(context.user) : undefined) ?? {});
}

/** The pod's service account (rest.InClusterConfig), or undefined outside a pod. */
export function inClusterCredentials(root = SERVICE_ACCOUNT): KubeconfigCredentials | undefined {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT;
  if (!host || !port || !existsSync(`${root}/token`)) return undefined;
  const scheme = ['80', '8080', '8001'].includes(port) ? 'http' : 'https';
  return new KubeconfigCredentials(
    { server: `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`, 'certificate-authority': `${root}/ca.crt` },
    { tokenFile: `${root}/token` },
  );
}

/**
 * @kubernetes/client-node's loadFromDefault order: KUBECONFIG (a list of files), ~/.kube/config,
 * then the pod's service account. Read here, so that the controller does not load that library
 * (its generated API client is most of the process's memory); it is loaded only for what it alone
 * supports (exec and auth-provider plugins, proxy-url).
 */
export async function defaultCredentials(): Promise<KubeCredentials> {
  const fromEnv = (process.env.KUBECONFIG ?? '').split(path.delimiter).filter(Boolean);
  const home = path.join(homedir(), '.kube', 'config');
  const files = fromEnv.length > 0 ? fromEnv : existsSync(home) ? [home] : [];
  const credentials = files.length > 0 ? fromKubeconfigFiles(files) : inClusterCredentials();
  if (credentials && !credentials.needsClientLibrary()) return credentials;
  const { KubeConfig } = await import('@kubernetes/client-node');
  const config = new KubeConfig();
  config.loadFromDefault();
  return config;
}
