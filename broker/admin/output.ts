import type { JsonObject } from '../../osb/index.js';

/** What a value the CLI keeps to itself is printed as. */
export const REDACTED = '[redacted]';

/**
 * The keys of an object with every value replaced by REDACTED (parameters, credentials): an
 * operator sees what was given without the secrets. `show` (--show-credentials) keeps the values.
 */
export function redacted(value: JsonObject | null | undefined, show: boolean): JsonObject | null {
  if (value === null || value === undefined) return null;
  if (show) return value;
  return Object.fromEntries(Object.keys(value).map((key) => [key, REDACTED]));
}

/** A timestamp to the second, UTC. */
export function timestamp(date: Date | null | undefined): string {
  return date ? date.toISOString().replace(/\.\d{3}Z$/, 'Z') : '';
}

export type Cell = string | number | boolean | null | undefined;

export interface Column<Row> {
  header: string;
  value: (row: Row) => Cell;
}

const text = (cell: Cell) => (cell === null || cell === undefined ? '' : String(cell).replace(/\s+/g, ' '));

/** Rows as an aligned table with a header line; a line that says so when there are none. */
export function table<Row>(rows: readonly Row[], columns: ReadonlyArray<Column<Row>>, none: string): string {
  if (rows.length === 0) return `${none}\n`;
  const cells = rows.map((row) => columns.map((column) => text(column.value(row))));
  const widths = columns.map((column, i) => Math.max(column.header.length, ...cells.map((line) => line[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((value, i) => (i === values.length - 1 ? value : value.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((column) => column.header)), ...cells.map(line)].join('\n') + '\n';
}

/** One record as `field  value` lines; objects as indented JSON under their field. */
export function record(fields: ReadonlyArray<[string, unknown]>): string {
  const width = Math.max(...fields.map(([name]) => name.length)) + 2;
  return (
    fields
      .map(([name, value]) => {
        if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
          const json = JSON.stringify(value, null, 2).replace(/\n/g, `\n${' '.repeat(width)}`);
          return `${`${name}:`.padEnd(width)}${json}`;
        }
        return `${`${name}:`.padEnd(width)}${value instanceof Date ? timestamp(value) : text(value as Cell)}`;
      })
      .join('\n') + '\n'
  );
}

/** --json: the value as JSON (an array of objects for the lists), with a final newline. */
export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
