import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { KubeObject } from '../api/v1beta1.js';
import type { KubeClient } from './kube-client.js';
import { Resources } from './resources.js';

export type EventType = 'Normal' | 'Warning';

/**
 * core/v1 Events for `kubectl describe`. Sent without waiting: an event that cannot be written
 * is logged, never a reason to fail a reconcile.
 */
export class EventRecorder {
  constructor(
    private readonly client: KubeClient,
    private readonly component: string,
    private readonly logger: Logger,
    /** Events of cluster-scoped objects go to this namespace. */
    private readonly defaultNamespace = 'default',
  ) {}

  record(object: KubeObject, type: EventType, reason: string, message: string): void {
    const now = new Date().toISOString();
    const namespace = object.metadata.namespace ?? this.defaultNamespace;
    const event = {
      metadata: { name: `${object.metadata.name}.${randomBytes(8).toString('hex')}`, namespace },
      involvedObject: {
        apiVersion: object.apiVersion,
        kind: object.kind,
        name: object.metadata.name,
        namespace: object.metadata.namespace,
        uid: object.metadata.uid,
        resourceVersion: object.metadata.resourceVersion,
      },
      reason,
      message: message.slice(0, 1024),
      type,
      source: { component: this.component },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      reportingComponent: this.component,
    };
    this.client.create(Resources.Event, event as unknown as KubeObject).catch((error: unknown) => {
      this.logger.debug({ err: error, reason }, 'could not record event');
    });
  }
}
