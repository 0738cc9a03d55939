import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Condition } from './api/v1beta1.js';
import { isFailed, isReady } from './conditions.js';
import type { QueueMetrics } from './work-queue.js';

/** The objects of one kind in the informer caches, for the object gauges. */
export interface CachedKind {
  kind: string;
  objects: Array<{ status?: { conditions?: Condition[] } }>;
}

/** The controller's own Prometheus registry. */
export class ControllerMetrics implements QueueMetrics {
  readonly registry = new Registry();

  readonly reconciles = new Counter({
    name: 'depot_controller_reconcile_total',
    help: 'Reconcile passes by queue and outcome.',
    labelNames: ['queue', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly reconcileDuration = new Histogram({
    name: 'depot_controller_reconcile_duration_seconds',
    help: 'Time of one reconcile pass, broker calls included.',
    labelNames: ['queue'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
    registers: [this.registry],
  });

  readonly queueDepth = new Gauge({
    name: 'depot_controller_queue_depth',
    help: 'Keys waiting in each work queue.',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  });

  readonly osbRequests = new Counter({
    name: 'depot_controller_osb_requests_total',
    help: 'Requests to brokers by broker, method and HTTP status (or timeout/transport/too_large).',
    labelNames: ['broker', 'method', 'status'] as const,
    registers: [this.registry],
  });

  readonly apiserverWrites = new Counter({
    name: 'depot_controller_apiserver_writes_total',
    help: 'Writes to the Kubernetes API by resource and verb.',
    labelNames: ['resource', 'verb'] as const,
    registers: [this.registry],
  });

  readonly leader = new Gauge({
    name: 'depot_controller_leader',
    help: '1 while this replica holds the leader lease.',
    registers: [this.registry],
  });

  // Read from the informer caches at each scrape (only the leader has them filled).
  readonly objects = new Gauge({
    name: 'depot_controller_objects',
    help: 'Objects in the leader caches by kind: ClusterServiceBroker, ServiceBroker, ServiceInstance, ServiceBinding.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
    collect: () => this.countObjects(),
  });

  readonly readyObjects = new Gauge({
    name: 'depot_controller_objects_ready',
    help: 'Objects whose Ready condition is True, by kind.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
    collect: () => this.countObjects(),
  });

  readonly failedObjects = new Gauge({
    name: 'depot_controller_objects_failed',
    help: 'Objects whose Failed condition is True (a terminal failure), by kind.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
    collect: () => this.countObjects(),
  });

  private cached: (() => CachedKind[]) | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'depot_controller_' });
  }

  reconciled(queue: string, outcome: 'success' | 'error', seconds: number): void {
    this.reconciles.inc({ queue, outcome });
    this.reconcileDuration.observe({ queue }, seconds);
  }

  depth(queue: string, size: number): void {
    this.queueDepth.set({ queue }, size);
  }

  /** From now on each scrape counts the objects `cached` returns. */
  watchObjects(cached: () => CachedKind[]): void {
    this.cached = cached;
  }

  private countObjects(): void {
    for (const { kind, objects } of this.cached?.() ?? []) {
      this.objects.set({ kind }, objects.length);
      this.readyObjects.set({ kind }, objects.filter((o) => isReady(o.status?.conditions)).length);
      this.failedObjects.set({ kind }, objects.filter((o) => isFailed(o.status?.conditions)).length);
    }
  }
}
