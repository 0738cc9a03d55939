import type { Logger } from 'pino';
import type { ClusterReader } from './cluster-reader.js';
import type { ControllerConfig } from './config.js';
import type { InformerOf, Informers } from './informers.js';
import type { EventRecorder } from './kube/event-recorder.js';
import type { KubeClient } from './kube/kube-client.js';
import type { ObjectWriter } from './object-writer.js';
import type { OsbClientCache } from './osb-client/osb-client-cache.js';

/** What the reconcilers are given, each part doing one job; wired by CatalogController. */
export interface ControllerServices {
  readonly config: ControllerConfig;
  readonly logger: Logger;
  /** The API client, for deletes; writes go through `objects`. */
  readonly client: KubeClient;
  readonly informers: Informers;
  readonly informerOf: InformerOf;
  readonly objects: ObjectWriter;
  readonly cluster: ClusterReader;
  readonly osbClients: OsbClientCache;
  readonly events: EventRecorder;
}
