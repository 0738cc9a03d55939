import https from 'node:https';
import http from 'node:http';
import type { KubeObject } from '../api/v1beta1.js';
import { boundedRequest } from '../bounded-request.js';
import type { CallLimits } from '../call-limits.js';
import { defaultCredentials, type KubeCredentials } from './kube-config.js';
import { collectionPath, objectPath, type Resource } from './resources.js';
import { openWatch, type WatchDone, type WatchEventHandler, type WatchHandle } from './watch-stream.js';

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

/** The bounds of every request (catalog-controller/config.ts: KUBE_REQUEST_TIMEOUT_MS, KUBE_MAX_RESPONSE_BYTES). */
export const DEFAULT_KUBE_LIMITS: CallLimits = {
  timeoutMs: 30_000,
  maxResponseBytes: 64 * 1024 * 1024,
  names: {
    peer: 'the Kubernetes API server',
    timeout: 'KUBE_REQUEST_TIMEOUT_MS',
    maxResponseBytes: 'KUBE_MAX_RESPONSE_BYTES',
  },
};

/** Objects per page of a list (client-go's reflector pages by 500 too): each page is one bounded response. */
export const LIST_PAGE_SIZE = 500;

/** Counts writes, for metrics and the benchmark's "apiserver writes per object". */
export type WriteObserver = (
  resource: Resource,
  verb: 'create' | 'update' | 'patch' | 'update-status' | 'delete',
) => void;

/**
 * A small JSON client for the Kubernetes API. Credentials come from a kubeconfig (kube-config.ts:
 * KUBECONFIG, ~/.kube/config, then in-cluster; or an @kubernetes/client-node KubeConfig); requests reuse
 * keep-alive connections. Every request is bounded by `limits` as a whole (its time, its
 * response's size): past either it fails with DeadlineExceededError or ResponseTooLargeError.
 */
export class KubeClient<C extends KubeCredentials = KubeCredentials> {
  private readonly server: URL;
  private agent: https.Agent | http.Agent | undefined;

  constructor(
    readonly config: C,
    private readonly onWrite: WriteObserver = () => {},
    readonly limits: CallLimits = DEFAULT_KUBE_LIMITS,
  ) {
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
  }

  /** Credentials as kube-config.ts's defaultCredentials finds them. */
  static async fromDefault(onWrite?: WriteObserver, limits?: CallLimits): Promise<KubeClient> {
    return new KubeClient(await defaultCredentials(), onWrite, limits);
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

  /**
   * All objects, a page (of LIST_PAGE_SIZE unless `pageSize` says) at a time, so that each
   * response stays within the limits; the resourceVersion is the list's (every page shares it).
   */
  async list<T extends KubeObject>(
    resource: Resource,
    options: { namespace?: string; labelSelector?: string; pageSize?: number } = {},
  ): Promise<ListResult<T>> {
    const items: T[] = [];
    let next: string | undefined;
    for (;;) {
      const query = new URLSearchParams({ limit: String(options.pageSize ?? LIST_PAGE_SIZE) });
      if (options.labelSelector) query.set('labelSelector', options.labelSelector);
      if (next) query.set('continue', next);
      const page = (await this.request('GET', `${collectionPath(resource, options.namespace)}?${query}`)) as {
        items?: T[];
        metadata?: { resourceVersion?: string; continue?: string };
      };
      items.push(...(page.items ?? []));
      next = page.metadata?.continue;
      if (!next) return { items, resourceVersion: page.metadata?.resourceVersion ?? '' };
    }
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

  /**
   * A JSON merge patch (RFC 7386) of the object; with metadata.resourceVersion in it, the API
   * server refuses it with 409 Conflict when the object has changed since (optimistic concurrency).
   */
  async patch<T extends KubeObject>(resource: Resource, name: string, namespace: string | undefined, patch: object) {
    const path = objectPath(resource, name, namespace);
    const patched = await this.request('PATCH', path, patch, 'application/merge-patch+json');
    this.onWrite(resource, 'patch');
    return patched as T;
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

  /**
   * Watches a collection from `query.resourceVersion`, asking the server to end the watch after
   * `timeoutSeconds`; the stream is bounded as openWatch says (its headers within the request
   * timeout, each event within the response cap, the whole within timeoutSeconds and the timeout).
   */
  async watch(
    path: string,
    query: Record<string, string>,
    timeoutSeconds: number,
    onEvent: WatchEventHandler,
    done: WatchDone,
  ): Promise<WatchHandle> {
    const search = new URLSearchParams({ ...query, watch: 'true', timeoutSeconds: String(timeoutSeconds) });
    const options = await this.requestOptions('GET', `${path}?${search}`);
    return openWatch(options, this.limits, timeoutSeconds, onEvent, done);
  }

  async request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<unknown> {
    const options = await this.requestOptions(method, path);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload) {
      options.headers = { ...options.headers, 'content-type': contentType, 'content-length': payload.length };
    }
    const response = await boundedRequest(options, payload, this.limits, `${method} ${path}`);
    const status = response.status;
    const text = response.body.toString('utf8');
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

  private async requestOptions(method: string, path: string): Promise<https.RequestOptions> {
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
    return options;
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
