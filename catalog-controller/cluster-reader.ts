import type { ConfigMap, Namespace, Secret } from './api/v1beta1.js';
import { KubeApiError, type KubeClient } from './kube/kube-client.js';
import { Resources } from './kube/resources.js';

const CLUSTER_INFO = { name: 'cluster-info', namespace: 'default' };

/** What the controller reads from the cluster outside its caches: Secrets, namespace UIDs, the cluster id. */
export class ClusterReader {
  private readonly namespaceUids = new Map<string, string>();
  private resolvedClusterId: string | undefined;

  constructor(
    private readonly client: KubeClient,
    /** CLUSTER_ID, when set. */
    private readonly configuredClusterId: string | undefined,
  ) {}

  /** A Secret by API read (not cached: parametersFrom and auth Secrets are not watched). */
  async readSecret(namespace: string, name: string): Promise<Secret | undefined> {
    return this.client.find<Secret>(Resources.Secret, name, namespace);
  }

  /** space_guid and app_guid: the namespace's UID (it never changes, so it is cached). */
  async namespaceUid(namespace: string): Promise<string> {
    const cached = this.namespaceUids.get(namespace);
    if (cached) return cached;
    const object = await this.client.get<Namespace>(Resources.Namespace, namespace);
    const uid = object.metadata.uid ?? namespace;
    this.namespaceUids.set(namespace, uid);
    return uid;
  }

  /**
   * organization_guid and context.clusterid: CLUSTER_ID, else the key `id` of the ConfigMap
   * default/cluster-info, created with a random UUID when missing.
   */
  async clusterId(): Promise<string> {
    if (this.configuredClusterId) return this.configuredClusterId;
    this.resolvedClusterId ??= await this.readOrCreateClusterId();
    return this.resolvedClusterId;
  }

  private async readOrCreateClusterId(): Promise<string> {
    const { name, namespace } = CLUSTER_INFO;
    const existing = await this.client.find<ConfigMap>(Resources.ConfigMap, name, namespace);
    if (existing?.data?.id) return existing.data.id;
    const fresh = crypto.randomUUID();
    try {
      await this.client.create<ConfigMap>(Resources.ConfigMap, { metadata: { name, namespace }, data: { id: fresh } });
      return fresh;
    } catch (error) {
      // Another replica created it first: use its id.
      if (!(error instanceof KubeApiError && error.isAlreadyExists)) throw error;
      return (await this.client.get<ConfigMap>(Resources.ConfigMap, name, namespace)).data?.id ?? fresh;
    }
  }
}
