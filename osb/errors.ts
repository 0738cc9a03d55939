/**
 * Error codes and error bodies of the OSB API v2.17 (spec.md, "Service Broker Errors").
 * Only these four `error` values have a meaning the spec defines; every other failure
 * carries just a `description`.
 */
export const ErrorCode = {
  /** 422: the operation can only run asynchronously and the request lacks accepts_incomplete=true. */
  AsyncRequired: 'AsyncRequired',
  /** 422: another operation is running on the same resource. Platforms must not orphan-mitigate. */
  ConcurrencyError: 'ConcurrencyError',
  /** 422: the binding needs bind_resource.app_guid. */
  RequiresApp: 'RequiresApp',
  /** 422: maintenance_info.version differs from the plan's version in the catalog. */
  MaintenanceInfoConflict: 'MaintenanceInfoConflict',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Body of every error response (spec: `error` and `description`, non-empty when present). */
export interface ErrorResponse {
  error?: ErrorCode;
  description: string;
  /** Only for a failed update or deprovision. */
  instance_usable?: boolean;
  /** Only for a failed update. */
  update_repeatable?: boolean;
}
