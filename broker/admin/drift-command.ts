import { DriftChecker } from '../jobs/drift-checker.js';
import { BrokerMetrics } from '../metrics.js';
import type { Command } from './command.js';
import { AdminError } from './errors.js';
import { json, table } from './output.js';

/**
 * `depot drift`: one drift check of every provisioned instance now, as the workers run it every
 * DRIFT_CHECK_SECONDS (and sharing the work with them: an instance a worker is checking is
 * skipped), printing what was put back and what could not be checked.
 */
export const driftCommand: Command = {
  name: 'drift',
  synopsis: '',
  summary: 'Check every instance on its server now; print what was missing or altered and put back.',
  flags: {},
  arguments: [],
  async run(context) {
    const { pool, cipher, config } = await context.state();
    const { catalog, logger } = await context.offerings();
    const checker = new DriftChecker({
      pool,
      cipher,
      catalog,
      logger,
      metrics: new BrokerMetrics({ defaultMetrics: false }),
      // A failed check comes due again as the workers' would: 30 s later in their period.
      periodSeconds: config.driftCheckSeconds || 300,
    });
    const report = await checker.checkDue(0);
    if (context.json) context.write(json(report));
    else {
      context.note(`Checked ${report.checked} instance(s).\n`);
      context.write(
        table(
          [
            ...report.repaired.map((r) => ({ ...r, outcome: 'repaired' })),
            ...report.failed.map((f) => ({ ...f, kind: '', outcome: `not checked: ${f.reason}` })),
          ],
          [
            { header: 'OFFERING', value: (r) => r.offering },
            { header: 'INSTANCE', value: (r) => r.instanceId },
            { header: 'BINDING', value: (r) => ('bindingId' in r ? r.bindingId : undefined) },
            { header: 'KIND', value: (r) => r.kind },
            { header: 'OUTCOME', value: (r) => r.outcome },
          ],
          'Nothing was missing or altered.',
        ),
      );
    }
    if (report.failed.length > 0) {
      throw new AdminError(`${report.failed.length} instance(s) could not be checked (their servers did not answer)`);
    }
  },
};
