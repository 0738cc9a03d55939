import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { StateSampler, type StateProbes } from './state-sampler.js';

/** The broker's own Prometheus registry (not the global one, so tests can build several). */
export class BrokerMetrics {
  readonly registry = new Registry();
  private state: StateSampler | undefined;

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

  // The state gauges below are read from PostgreSQL and Redis at each scrape: every replica
  // reports the same figures (aggregate them with max, not sum). A probe that fails or does not
  // answer in time leaves the previous value, so a scrape never fails for it.

  readonly operationsInProgress = new Gauge({
    name: 'depot_operations_in_progress',
    help: 'Operations in progress in the state database, by type (the same on every replica).',
    labelNames: ['type'] as const,
    registers: [this.registry],
    collect: () => this.state?.refresh(),
  });

  readonly oldestOperationSeconds = new Gauge({
    name: 'depot_operation_oldest_in_progress_seconds',
    help: 'Age of the oldest operation in progress, by type; 0 when none is (the same on every replica).',
    labelNames: ['type'] as const,
    registers: [this.registry],
    collect: () => this.state?.refresh(),
  });

  readonly queueJobs = new Gauge({
    name: 'depot_queue_jobs',
    help: 'Jobs in the operations queue (Redis) by BullMQ state: waiting, prioritized, delayed, active, failed.',
    labelNames: ['state'] as const,
    registers: [this.registry],
    collect: () => this.state?.refresh(),
  });

  readonly ready = new Gauge({
    name: 'depot_ready',
    help: '1 when this process would answer /readyz with 200 (its PostgreSQL and Redis answer), else 0.',
    registers: [this.registry],
    collect: () => this.state?.refresh(),
  });

  /** Drift checks of an instance by outcome: `ok`, `repaired`, or `failed` (the server could not be asked). */
  readonly driftChecks = new Counter({
    name: 'depot_drift_checks_total',
    help: "Drift checks of an instance's objects, by offering and outcome (ok, repaired, failed).",
    labelNames: ['offering', 'outcome'] as const,
    registers: [this.registry],
  });

  /** Incremented by drift repair: an object put back on an offering's server. */
  readonly driftRepaired = new Counter({
    name: 'depot_drift_repaired_total',
    help: 'Objects that drift repair put back on an offering server, by offering and kind.',
    labelNames: ['offering', 'kind'] as const,
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'depot_' });
  }

  /** From now on each scrape reads the state gauges through `probes`. */
  watchState(probes: StateProbes, timeoutMs?: number): void {
    this.state = new StateSampler(this, probes, timeoutMs);
  }
}
