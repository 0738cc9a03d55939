import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The broker's own Prometheus registry (not the global one, so tests can build several). */
export class BrokerMetrics {
  readonly registry = new Registry();

  readonly httpRequestDuration = new Histogram({
    name: 'depot_http_request_duration_seconds',
    help: 'OSB API request latency by route and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });

  readonly operationsStarted = new Counter({
    name: 'depot_operations_started_total',
    help: 'Operations accepted by the API, by type.',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });

  readonly operationsFinished = new Counter({
    name: 'depot_operations_finished_total',
    help: 'Operations that reached a terminal state, by type and state.',
    labelNames: ['type', 'state'] as const,
    registers: [this.registry],
  });

  readonly operationDuration = new Histogram({
    name: 'depot_operation_duration_seconds',
    help: 'Time from accepting an operation to its terminal state.',
    labelNames: ['type', 'state'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'depot_' });
  }
}
