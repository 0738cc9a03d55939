import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { QueueMetrics } from './work-queue.js';

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
}
