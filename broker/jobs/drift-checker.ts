import type pg from 'pg';
import type { Catalog } from '../catalog/catalog.js';
import type { StateCipher } from '../crypto/state-cipher.js';
import { boundBindings, claimDueInstance, driftCutoff, postponeDriftCheck } from '../db/drift-checks.js';
import { transaction } from '../db/pool.js';
import type { Logger } from '../../runtime/logger.js';
import { withTimeout } from '../../runtime/timeout.js';
import type { BrokerMetrics } from '../metrics.js';
import type { DriftRepair, InstanceRequest, RecordedBinding } from '../offerings/offering.js';

export interface DriftCheckerOptions {
  pool: pg.Pool;
  cipher: StateCipher;
  catalog: Catalog;
  logger: Logger;
  metrics: BrokerMetrics;
  /** DRIFT_CHECK_SECONDS: how often each instance is checked. */
  periodSeconds: number;
  /** How often a worker looks for instances due (default: a tenth of the period, 1–30 s). */
  intervalMs?: number;
}

export interface DriftFinding extends DriftRepair {
  instanceId: string;
  offering: string;
}

export interface DriftReport {
  checked: number;
  repaired: DriftFinding[];
  /** Instances whose server could not be asked; they are checked again in 30 s. */
  failed: Array<{ instanceId: string; offering: string; reason: string }>;
}

/** A failed check is tried again this soon, not a whole period later. */
const RETRY_SECONDS = 30;

/**
 * Drift repair, in every worker: each provisioned instance is claimed in turn (FOR UPDATE SKIP
 * LOCKED, so replicas share the work and each instance is checked once a period) and its offering
 * puts back what is missing on the server. The instance's row stays locked while that happens, so
 * no operation is accepted on it meanwhile; instances with an operation running are left for later.
 */
export class DriftChecker {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(private readonly options: DriftCheckerOptions) {}

  start(): void {
    const intervalMs =
      this.options.intervalMs ?? Math.min(30_000, Math.max(1000, (this.options.periodSeconds * 1000) / 10));
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.checkDue()
        .catch((error: unknown) => this.options.logger.warn({ err: error }, 'drift check failed'))
        .finally(() => (this.running = undefined));
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Checks every instance that is due now (`periodSeconds: 0` checks all of them, as `depot drift` does). */
  async checkDue(periodSeconds = this.options.periodSeconds): Promise<DriftReport> {
    const report: DriftReport = { checked: 0, repaired: [], failed: [] };
    // Due: not checked since this moment (the database's clock), fixed for this pass.
    const cutoff = await driftCutoff(this.options.pool, periodSeconds);
    while (await this.checkNext(cutoff, report)) report.checked++;
    return report;
  }

  private checkNext(cutoff: Date, report: DriftReport): Promise<boolean> {
    const { pool, cipher, catalog, logger, metrics } = this.options;
    return transaction(pool, async (client) => {
      const due = await claimDueInstance(client, cipher, cutoff);
      if (!due) return false;
      const plan = catalog.plan(due.service_id, due.plan_id);
      if (!plan?.offering.repair) return true;
      const offering = plan.offering.name;
      const instance: InstanceRequest = {
        instanceId: due.id,
        planName: plan.plan.name,
        planSettings: due.plan_settings ?? plan.settings,
        parameters: due.parameters,
        context: due.context,
      };
      const bindings: RecordedBinding[] = (await boundBindings(client, cipher, due.id)).map((b) => ({
        request: {
          instance,
          bindingId: b.id,
          parameters: b.parameters,
          ...(b.app_guid ? { appGuid: b.app_guid } : {}),
          ...(b.expires_at ? { expiresAt: new Date(b.expires_at) } : {}),
        },
        credentials: b.credentials,
      }));
      try {
        // The instance's row is locked meanwhile: a server that hangs must not hold it.
        const timeoutMs = Math.min(60_000, Math.max(5000, this.options.periodSeconds * 500));
        const repairs = await withTimeout(
          plan.offering.repair(instance, bindings),
          timeoutMs,
          `the server did not answer within ${timeoutMs / 1000} s`,
        );
        for (const repair of repairs) {
          metrics.driftRepaired.inc({ offering, kind: repair.kind });
          logger.warn({ instanceId: due.id, ...repair, offering }, 'drift repaired: put back on the server');
          report.repaired.push({ instanceId: due.id, offering, ...repair });
        }
        metrics.driftChecks.inc({ offering, outcome: repairs.length ? 'repaired' : 'ok' });
      } catch (error) {
        const reason = (error as Error).message;
        metrics.driftChecks.inc({ offering, outcome: 'failed' });
        logger.warn({ instanceId: due.id, offering, err: error }, 'drift check could not ask the server; retrying');
        report.failed.push({ instanceId: due.id, offering, reason });
        await postponeDriftCheck(client, due.id, this.options.periodSeconds, RETRY_SECONDS);
      }
      return true;
    });
  }
}
