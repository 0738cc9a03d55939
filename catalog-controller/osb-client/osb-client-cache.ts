import type { ServiceBroker } from '../api/v1beta1.js';
import { objectKey } from '../kube/resources.js';
import type { Logger } from '../../runtime/logger.js';
import type { ControllerMetrics } from '../metrics.js';
import { agreedApiMinor } from '../osb-version.js';
import { brokerAuthorization, type ReadSecret } from './broker-authorization.js';
import { OsbClient } from './osb-client.js';

interface CachedClient {
  /** The broker spec the client was built from (JSON). */
  spec: string;
  authorization: string | undefined;
  client: OsbClient;
}

/**
 * One OSB client per broker, built from its spec and the credentials of its auth Secret, and
 * built again when either changes.
 */
export class OsbClientCache {
  private readonly clients = new Map<string, CachedClient>();

  constructor(
    private readonly readSecret: ReadSecret,
    private readonly metrics: ControllerMetrics,
    private readonly limits: { timeoutMs: number; maxResponseBytes: number },
    private readonly logger?: Logger,
  ) {}

  /**
   * The OSB client of a broker, speaking the version agreed with it (agreedApiMinor). Cached per
   * broker spec; `fresh` re-reads the Secret (catalog fetches do, so a rotated password is
   * picked up).
   */
  async clientOf(broker: ServiceBroker, fresh = false): Promise<OsbClient> {
    return (await this.connection(broker, fresh)).atVersion(agreedApiMinor(broker));
  }

  /** Closes a deleted broker's client. */
  forget(broker: ServiceBroker): void {
    const key = keyOf(broker);
    this.clients.get(key)?.client.close();
    this.clients.delete(key);
  }

  close(): void {
    for (const { client } of this.clients.values()) client.close();
    this.clients.clear();
  }

  private async connection(broker: ServiceBroker, fresh: boolean): Promise<OsbClient> {
    const key = keyOf(broker);
    const cached = this.clients.get(key);
    const spec = JSON.stringify(broker.spec);
    if (cached?.spec === spec && !fresh) return cached.client;
    const authorization = await brokerAuthorization(broker, this.readSecret);
    if (cached?.spec === spec && cached.authorization === authorization) return cached.client;
    cached?.client.close();
    const client = this.build(broker, authorization);
    this.clients.set(key, { spec, authorization, client });
    return client;
  }

  private build(broker: ServiceBroker, authorization: string | undefined): OsbClient {
    const brokerName = broker.metadata.name;
    return new OsbClient({
      url: broker.spec.url,
      ...(authorization ? { authorization } : {}),
      ...(broker.spec.caBundle ? { caBundle: broker.spec.caBundle } : {}),
      insecureSkipTLSVerify: broker.spec.insecureSkipTLSVerify === true,
      timeoutMs: this.limits.timeoutMs,
      maxResponseBytes: this.limits.maxResponseBytes,
      observe: (method, status, path) => {
        this.metrics.osbRequests.inc({ broker: brokerName, method, status });
        // Method, path (ids and the plan's ids in the query) and outcome: never headers or bodies.
        this.logger?.trace({ broker: brokerName, method, path, status }, 'broker call');
      },
    });
  }
}

function keyOf(broker: ServiceBroker): string {
  return `${broker.kind}/${objectKey(broker.metadata)}`;
}
