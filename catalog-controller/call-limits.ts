/**
 * The bounds on one call the controller makes to another server (a broker, the Kubernetes API
 * server): its whole time and the size of what comes back. The errors name the limit, its value
 * and the variable that sets it, so that a condition or a log line says what to change.
 */
export interface CallLimits {
  /** The whole call: connecting, sending, the response headers and the whole body. */
  timeoutMs: number;
  /** The response body, in bytes (its Content-Length, or what arrives). */
  maxResponseBytes: number;
  names: LimitNames;
}

/** Who answers and which variables set the limits, for the messages. */
export interface LimitNames {
  /** "the broker", "the Kubernetes API server". */
  peer: string;
  timeout: string;
  maxResponseBytes: string;
}

/** A call that hit one of its CallLimits; the connection was destroyed. */
export abstract class CallLimitError extends Error {}

/** The call did not finish (headers and whole body) within CallLimits.timeoutMs. */
export class DeadlineExceededError extends CallLimitError {
  override name = 'DeadlineExceededError';
  readonly limitMs: number;
  readonly variable: string;
  /** `call`: what was asked ("GET /api/v1/…"), put first in the message. */
  constructor(limits: CallLimits, call?: string) {
    super(
      `${prefix(call)}${limits.names.peer} did not answer in full within ${formatMs(limits.timeoutMs)} ` +
        `(${limits.names.timeout})`,
    );
    this.limitMs = limits.timeoutMs;
    this.variable = limits.names.timeout;
  }
}

/** The response body was larger than CallLimits.maxResponseBytes; the rest was not read. */
export class ResponseTooLargeError extends CallLimitError {
  override name = 'ResponseTooLargeError';
  readonly limitBytes: number;
  readonly variable: string;
  constructor(
    limits: CallLimits,
    /** The status of the response whose body was cut off. */
    readonly status: number,
    call?: string,
  ) {
    super(
      `${prefix(call)}${limits.names.peer}'s response exceeded ${formatBytes(limits.maxResponseBytes)} ` +
        `(${limits.names.maxResponseBytes})`,
    );
    this.limitBytes = limits.maxResponseBytes;
    this.variable = limits.names.maxResponseBytes;
  }
}

function prefix(call: string | undefined): string {
  return call ? `${call}: ` : '';
}

/** "60 s", "1500 ms". */
export function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/** "16 MiB", "512 KiB", "1000 bytes". */
export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}
