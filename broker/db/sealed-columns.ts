/**
 * The columns stored sealed (encryption at rest), by table. Each value is bound to its place:
 * `<table>.<column>:<row id>`.
 */
export const SEALED_COLUMNS = {
  service_instances: ['context', 'parameters'],
  service_bindings: ['bind_resource', 'context', 'parameters', 'response'],
  operations: ['request', 'originating_identity'],
} as const;

export type SealedTable = keyof typeof SEALED_COLUMNS;

/** The additional data a sealed value is bound to. */
export function place(table: SealedTable, column: string, id: string): string {
  return `${table}.${column}:${id}`;
}
