import type { InProgressCount, OperationType } from './db/operations.js';
import type { QueueJobState } from './jobs/operation-queue.js';
import type { BrokerMetrics } from './metrics.js';
import { withTimeout } from '../runtime/timeout.js';

/** What the state gauges read at a scrape. */
export interface StateProbes {
  operationsInProgress(): Promise<InProgressCount[]>;
  jobCounts(): Promise<Record<QueueJobState, number>>;
  /** Resolves when /readyz would answer 200. */
  ready(): Promise<void>;
}

const OPERATION_TYPES: OperationType[] = ['provision', 'update', 'deprovision', 'bind', 'unbind'];
/** A scrape waits this long for a probe (Prometheus' default scrape timeout is 10 s). */
const DEFAULT_TIMEOUT_MS = 2000;

/**
 * Sets the state gauges from PostgreSQL and Redis, once per scrape however many gauges ask.
 * A probe that fails or is late leaves its gauges as they were (readiness then reads 0); a
 * probe still running from an earlier scrape is waited for, not started again, so an outage
 * never piles up queries.
 */
export class StateSampler {
  private refreshing: Promise<void> | undefined;
  private readonly inProgress: BoundedProbe<InProgressCount[]>;
  private readonly jobCounts: BoundedProbe<Record<QueueJobState, number>>;
  private readonly ready: BoundedProbe<void>;

  constructor(
    private readonly metrics: BrokerMetrics,
    probes: StateProbes,
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ) {
    this.inProgress = new BoundedProbe(() => probes.operationsInProgress(), timeoutMs);
    this.jobCounts = new BoundedProbe(() => probes.jobCounts(), timeoutMs);
    this.ready = new BoundedProbe(() => probes.ready(), timeoutMs);
  }

  refresh(): Promise<void> {
    this.refreshing ??= this.sample().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async sample(): Promise<void> {
    const { operationsInProgress, oldestOperationSeconds, queueJobs, ready } = this.metrics;
    await Promise.all([
      this.inProgress.read().then(
        (rows) => {
          for (const type of OPERATION_TYPES) {
            const row = rows.find((r) => r.type === type);
            operationsInProgress.set({ type }, row?.count ?? 0);
            oldestOperationSeconds.set({ type }, row?.oldest_seconds ?? 0);
          }
        },
        () => undefined,
      ),
      this.jobCounts.read().then(
        (counts) => {
          for (const [state, count] of Object.entries(counts)) queueJobs.set({ state }, count);
        },
        () => undefined,
      ),
      this.ready.read().then(
        () => ready.set(1),
        () => ready.set(0),
      ),
    ]);
  }
}

/** Runs `probe` at most once at a time; a reader waits for it at most `timeoutMs`. */
class BoundedProbe<T> {
  private running: Promise<T> | undefined;

  constructor(
    private readonly probe: () => Promise<T>,
    private readonly timeoutMs: number,
  ) {}

  read(): Promise<T> {
    this.running ??= this.probe().finally(() => (this.running = undefined));
    return withTimeout(this.running, this.timeoutMs, 'no answer in time');
  }
}
