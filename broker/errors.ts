import { ErrorCode, type ErrorResponse } from '../osb/index.js';

/**
 * A failure the OSB API defines a response for. Routes throw these; the error handler turns
 * them into the status and body below. Anything else is a 500 with a generic description.
 */
export class BrokerError extends Error {
  override name = 'BrokerError';
  constructor(
    readonly status: number,
    readonly description: string,
    readonly code?: ErrorCode,
  ) {
    super(description);
  }

  toResponse(): ErrorResponse {
    return this.code ? { error: this.code, description: this.description } : { description: this.description };
  }
}

/** 400: malformed request, missing mandatory data, or data the catalog or a plan schema rejects. */
export class BadRequestError extends BrokerError {
  constructor(description: string) {
    super(400, description);
  }
}

/** 401: missing or wrong HTTP Basic credentials. */
export class UnauthorizedError extends BrokerError {
  constructor() {
    super(401, 'Authentication with the broker credentials (HTTP Basic) is required.');
  }
}

/** 404: the resource does not exist (or is still being created, for GET). */
export class NotFoundError extends BrokerError {
  constructor(description: string) {
    super(404, description);
  }
}

/** 409: a resource with this id exists, or is being created, with different attributes. */
export class ConflictError extends BrokerError {
  constructor(description: string) {
    super(409, description);
  }
}

/** 410: DELETE of a resource that does not exist. */
export class GoneError extends BrokerError {
  constructor(description: string) {
    super(410, description);
  }
}

/** 412: unsupported or missing X-Broker-API-Version. */
export class PreconditionFailedError extends BrokerError {
  constructor(description: string) {
    super(412, description);
  }
}

/** 413: the body is larger than the broker accepts. */
export class PayloadTooLargeError extends BrokerError {
  constructor(limitBytes: number) {
    super(413, `The request body is larger than ${limitBytes} bytes.`);
  }
}

/** 503: a dependency (the state database) cannot be reached now; the platform may retry after `retryAfterSeconds`. */
export class ServiceUnavailableError extends BrokerError {
  constructor(
    description: string,
    readonly retryAfterSeconds: number,
  ) {
    super(503, description);
  }
}

/** 422 AsyncRequired: the operation only runs asynchronously. */
export class AsyncRequiredError extends BrokerError {
  constructor() {
    super(
      422,
      'This service plan requires client support for asynchronous service operations (accepts_incomplete=true).',
      ErrorCode.AsyncRequired,
    );
  }
}

/** 422 ConcurrencyError: another operation is running on the resource. */
export class ConcurrencyError extends BrokerError {
  constructor(description: string) {
    super(422, description, ErrorCode.ConcurrencyError);
  }
}

/** 422 RequiresApp: the plan needs bind_resource.app_guid. */
export class RequiresAppError extends BrokerError {
  constructor() {
    super(
      422,
      'This service plan supports only bindings to an application (bind_resource.app_guid).',
      ErrorCode.RequiresApp,
    );
  }
}

/** 422 MaintenanceInfoConflict: maintenance_info.version differs from the plan's. */
export class MaintenanceInfoConflictError extends BrokerError {
  constructor(description: string) {
    super(422, description, ErrorCode.MaintenanceInfoConflict);
  }
}

/** 422 without a code: the request is understood but cannot be carried out in this state. */
export class UnprocessableEntityError extends BrokerError {
  constructor(description: string) {
    super(422, description);
  }
}
