import https from 'node:https';
import http from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import type { KubeObject } from '../api/v1beta1.js';
import { collectionPath, objectPath, type Resource } from './resources.js';

/** A failed Kubernetes API call, with the Status object's code and reason. */
export class KubeApiError extends Error {
  override name = 'KubeApiError';
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
  get isNotFound(): boolean {
    return this.status === 404;
  }
  get isConflict(): boolean {
    return this.status === 409;
  }
  get isAlreadyExists(): boolean {
    return this.status === 409 && this.reason === 'AlreadyExists';
  }
}

export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
}

/** Counts writes, for metrics and the benchmark's "apiserver writes per object". */
export type WriteObserver = (resource: Resource, verb: 'create' | 'update' | 'update-status' | 'delete') => void;

/**
 * A small JSON client for the Kubernetes API. Credentials come from a KubeConfig
 * (@kubernetes/client-node: KUBECONFIG, ~/.kube/config, then in-cluster); requests reuse
 * keep-alive connections.
 */
export class KubeClient {
  private readonly server: URL;
  private agent: https.Agent | http.Agent | undefined;

  constructor(
    readonly config: KubeConfig,
    private readonly onWrite: WriteObserver = () => {},
  ) {
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
  }

  static fromDefault(onWrite?: WriteObserver): KubeClient {
    const config = new KubeConfig();
    config.loadFromDefault();
    return new KubeClient(config, onWrite);
  }

  async get<T extends KubeObject>(resource: Resource, name: string, namespace?: string): Promise<T> {
    return (await this.request('GET', objectPath(resource, name, namespace))) as T;
  }

  /** GET, or undefined on 404. */
  async find<T extends KubeObject>(resource: Resource, name: string, namespace?: string): Promise<T | undefined> {
    try {
      return await this.get<T>(resource, name, namespace);
    } catch (error) {
      if (error instanceof KubeApiError && error.isNotFound) return undefined;
      throw error;
    }
  }

  async list<T extends KubeObject>(
    resource: Resource,
    options: { namespace?: string; labelSelector?: string } = {},
  ): Promise<ListResult<T>> {
    const query = options.labelSelector ? `?labelSelector=${encodeURIComponent(options.labelSelector)}` : '';
    const body = (await this.request('GET', collectionPath(resource, options.namespace) + query)) as {
      items?: T[];
      metadata?: { resourceVersion?: string };
    };
    return { items: body.items ?? [], resourceVersion: body.metadata?.resourceVersion ?? '' };
  }

  async create<T extends KubeObject>(resource: Resource, object: T): Promise<T> {
    const created = await this.request('POST', collectionPath(resource, object.metadata.namespace), {
      ...object,
      apiVersion: resource.apiVersion,
      kind: resource.kind,
    });
    this.onWrite(resource, 'create');
    return created as T;
  }

  /** PUT of the whole object; fails with 409 Conflict when its resourceVersion is stale. */
  async update<T extends KubeObject>(resource: Resource, object: T): Promise<T> {
    const updated = await this.request(
      'PUT',
      objectPath(resource, object.metadata.name, object.metadata.namespace),
      object,
    );
    this.onWrite(resource, 'update');
    return updated as T;
  }

  /** PUT to the status subresource. */
  async updateStatus<T extends KubeObject>(resource: Resource, object: T): Promise<T> {
    const path = objectPath(resource, object.metadata.name, object.metadata.namespace) + '/status';
    const updated = await this.request('PUT', path, object);
    this.onWrite(resource, 'update-status');
    return updated as T;
  }

  /** DELETE; a 404 counts as done. */
  async delete(resource: Resource, name: string, namespace?: string, preconditions?: { uid?: string }): Promise<void> {
    try {
      const body = preconditions ? { apiVersion: 'v1', kind: 'DeleteOptions', preconditions } : undefined;
      await this.request('DELETE', objectPath(resource, name, namespace), body);
      this.onWrite(resource, 'delete');
    } catch (error) {
      if (error instanceof KubeApiError && error.isNotFound) return;
      throw error;
    }
  }

  async request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<unknown> {
    const options: https.RequestOptions = {
      method,
      protocol: this.server.protocol,
      hostname: this.server.hostname,
      port: this.server.port,
      path,
      headers: { accept: 'application/json' },
    };
    // Adds the CA, client certificates and the (possibly refreshed) token of the kubeconfig.
    await this.config.applyToHTTPSOptions(options);
    options.agent = this.connectionPool(options);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) {
      options.headers = { ...options.headers, 'content-type': contentType, 'content-length': payload.length };
    }
    const transport = this.server.protocol === 'http:' ? http : https;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = transport.request(options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path} timed out after 30 s`)));
      req.on('error', reject);
      req.end(payload);
    });
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = {};
    }
    if (status >= 200 && status < 300) return parsed;
    const statusObject = parsed as { reason?: string; message?: string };
    throw new KubeApiError(
      status,
      statusObject.reason ?? '',
      `${method} ${path}: ${status} ${statusObject.message ?? text.slice(0, 200)}`,
    );
  }

  private connectionPool(options: https.RequestOptions): https.Agent | http.Agent {
    if (!this.agent) {
      this.agent =
        this.server.protocol === 'http:'
          ? new http.Agent({ keepAlive: true, maxSockets: 64 })
          : new https.Agent({
              keepAlive: true,
              maxSockets: 64,
              ca: options.ca,
              cert: options.cert,
              key: options.key,
              rejectUnauthorized: options.rejectUnauthorized,
            });
    }
    return this.agent;
  }

  close(): void {
    this.agent?.destroy();
  }
}
