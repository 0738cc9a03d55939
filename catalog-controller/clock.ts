/** The time written into conditions and operation starts: RFC 3339, as Kubernetes writes it. */
export function now(): string {
  return new Date().toISOString();
}
