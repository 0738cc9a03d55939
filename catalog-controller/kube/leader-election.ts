import type { Logger } from 'pino';
import { withTimeout } from '../../runtime/timeout.js';
import type { Lease } from '../api/v1beta1.js';
import { KubeApiError, type KubeClient } from './kube-client.js';
import { Resources } from './resources.js';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  /** How often the leader renews, and a candidate retries. */
  retryPeriodMs: number;
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease (client-go's leaderelection, small): the
 * holder renews every retryPeriod; a candidate takes the lease once it is free or has not
 * changed for leaseDurationSeconds, timed on the candidate's own clock (so clock skew between
 * nodes does not matter). Writes use the lease's resourceVersion, so two candidates cannot both
 * win. A leader that has not renewed within the renew deadline (two thirds of the duration)
 * stops at once, even while a request hangs, before a peer may take over. On a clean stop the
 * leader releases the lease so a peer takes over at once.
 */
export class LeaderElection {
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private stopped = false;
  private lastRenew = 0;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** The lease as last read, and when (local clock) it last changed. */
  private observed: { record: string; at: number } | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly options: LeaderElectionOptions,
    private readonly logger: Logger,
    private readonly callbacks: { onStartedLeading(): void; onStoppedLeading(): void },
  ) {}

  get isLeader(): boolean {
    return this.leading;
  }

  private get renewDeadlineMs(): number {
    return this.options.leaseDurationSeconds * 1000 * 0.66;
  }

  start(): void {
    this.deadlineTimer = setInterval(
      () => {
        if (this.leading && Date.now() - this.lastRenew > this.renewDeadlineMs)
          this.lose('could not renew the lease in time');
      },
      Math.max(50, Math.floor(this.options.retryPeriodMs / 2)),
    );
    this.deadlineTimer.unref();
    void this.tick();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      const held = await withTimeout(this.tryAcquireOrRenew(), this.renewDeadlineMs, 'lease request timed out');
      if (this.stopped) return;
      if (held) this.lastRenew = Date.now();
      if (held && !this.leading) {
        this.leading = true;
        this.logger.info({ lease: this.options.name, identity: this.options.identity }, 'became leader');
        this.callbacks.onStartedLeading();
      } else if (!held && this.leading) {
        this.lose('lease taken by another holder');
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'lease renewal failed');
    }
    if (!this.stopped) {
      this.timer = setTimeout(() => void this.tick(), this.options.retryPeriodMs);
      this.timer.unref();
    }
  }

  /** Leadership is gone for good in this process: it stops campaigning and says so once. */
  private lose(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.deadlineTimer);
    this.logger.error({ lease: this.options.name, why }, 'lost leadership');
    this.callbacks.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity, leaseDurationSeconds } = this.options;
    const now = new Date();
    const stamp = microTime(now);
    const lease = await this.client.find<Lease>(Resources.Lease, name, namespace);
    if (!lease) {
      try {
        await this.client.create<Lease>(Resources.Lease, {
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds,
            acquireTime: stamp,
            renewTime: stamp,
            leaseTransitions: 0,
          },
        });
        return true;
      } catch (error) {
        if (error instanceof KubeApiError && error.isConflict) return false;
        throw error;
      }
    }
    const holder = lease.spec.holderIdentity ?? '';
    const record = `${holder}|${lease.spec.renewTime ?? ''}|${lease.spec.leaseTransitions ?? 0}`;
    if (this.observed?.record !== record) this.observed = { record, at: Date.now() };
    const duration = (lease.spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    const expired = holder === '' || Date.now() > this.observed.at + duration;
    if (holder !== identity && !expired) return false;
    const next: Lease = {
      ...lease,
      spec: {
        ...lease.spec,
        holderIdentity: identity,
        leaseDurationSeconds,
        renewTime: stamp,
        ...(holder !== identity
          ? { acquireTime: stamp, leaseTransitions: (lease.spec.leaseTransitions ?? 0) + 1 }
          : {}),
      },
    };
    try {
      await this.client.update(Resources.Lease, next);
      return true;
    } catch (error) {
      if (error instanceof KubeApiError && error.isConflict) return false;
      throw error;
    }
  }

  /** Stops campaigning; a leader gives the lease up. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.deadlineTimer);
    if (!this.leading) return;
    this.leading = false;
    const { namespace, name, identity } = this.options;
    try {
      const lease = await this.client.find<Lease>(Resources.Lease, name, namespace);
      if (lease && lease.spec.holderIdentity === identity) {
        await this.client.update(Resources.Lease, {
          ...lease,
          spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date()) },
        });
      }
    } catch (error) {
      this.logger.warn({ err: error }, 'could not release the lease');
    }
  }
}

/** MicroTime: RFC 3339 with microseconds. */
function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
