import type { Command } from './command.js';
import { stringFlag } from './command.js';
import { AdminError, UsageError } from './errors.js';
import { findOrphans, type Orphan } from './orphans.js';
import { json, table } from './output.js';

const record = (orphan: Orphan) =>
  orphan.bindingId
    ? `binding ${orphan.bindingId} (deleted)`
    : orphan.instanceId
      ? `instance ${orphan.instanceId} (deleted)`
      : 'no row';

/**
 * `depot orphans`: objects on the offerings' servers with Depot's names that no live instance
 * or binding owns, and with `--delete --yes` their removal. Only names of Depot's shapes are
 * ever looked at. Two Depots must not share a server: each would take the other's objects
 * for orphans.
 */
export const orphansCommand: Command = {
  name: 'orphans',
  synopsis: '[--offering NAME] [--delete --yes]',
  summary: "List server objects with Depot's names that no live instance or binding owns; --delete --yes removes them.",
  flags: { offering: 'value', delete: 'switch', yes: 'switch' },
  arguments: [],
  async run(context, args) {
    if (args.flags.yes === true && args.flags.delete !== true) throw new UsageError('--yes goes with --delete');
    const { pool } = await context.state();
    const { offerings, logger } = await context.offerings();
    const name = stringFlag(args, 'offering');
    const searchable = offerings.filter((o) => o.namedObjects && o.removeNamedObject);
    const chosen = name === undefined ? searchable : searchable.filter((o) => o.name === name);
    if (chosen.length === 0) {
      throw new UsageError(
        `--offering ${JSON.stringify(name)} is not an offering the catalog uses ` +
          `(${searchable.map((o) => o.name).join(', ') || 'none'})`,
      );
    }
    const { orphans, failed } = await findOrphans(pool, chosen);
    const removal = args.flags.delete === true && args.flags.yes === true;
    const removed = new Map<Orphan, string | true>();
    for (const orphan of removal ? orphans : []) {
      const offering = chosen.find((o) => o.name === orphan.offering)!;
      const { offering: _name, ...fields } = orphan;
      try {
        await offering.removeNamedObject!(orphan);
        removed.set(orphan, true);
        logger.info({ offering: orphan.offering, ...fields }, 'orphan removed');
      } catch (error) {
        removed.set(orphan, (error as Error).message);
        logger.error({ offering: orphan.offering, ...fields, err: error }, 'orphan not removed');
      }
    }
    const rows = orphans.map((orphan) => ({
      ...orphan,
      ...(removal ? { removed: removed.get(orphan) === true } : {}),
      ...(typeof removed.get(orphan) === 'string' ? { error: removed.get(orphan) } : {}),
    }));
    if (context.json) context.write(json(rows));
    else {
      context.write(
        table(
          rows,
          [
            { header: 'OFFERING', value: (o) => o.offering },
            { header: 'KIND', value: (o) => o.kind },
            { header: 'NAME', value: (o) => o.name },
            { header: 'RECORD', value: record },
            ...(removal ? [{ header: 'REMOVED', value: (o: (typeof rows)[number]) => o.error ?? 'yes' }] : []),
          ],
          `No orphans on ${chosen.map((o) => o.server).join(', ')}.`,
        ),
      );
    }
    const problems = [
      ...failed.map((f) => `cannot search ${f.server}: ${f.reason}`),
      ...rows.filter((r) => r.error).map((r) => `cannot remove ${r.offering} ${r.kind} ${r.name}: ${r.error}`),
    ];
    if (args.flags.delete === true && !removal && orphans.length > 0) {
      problems.push(`--delete removes these ${orphans.length} object(s) and what they hold for good: add --yes`);
    }
    if (problems.length > 0) throw new AdminError(problems.join('; '));
  },
};
