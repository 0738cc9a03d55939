import { randomUUID } from 'node:crypto';
import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express';
import type { Histogram } from 'prom-client';
import {
  API_VERSION_HEADER,
  REQUEST_IDENTITY_HEADER,
  SUPPORTED_API_VERSIONS,
  parseApiVersion,
  type ApiMinor,
} from '../../osb/index.js';
import type { BrokerCredentials } from '../auth/broker-credentials.js';
import { isDatabaseUnavailable } from '../db/pool.js';
import {
  BrokerError,
  PayloadTooLargeError,
  PreconditionFailedError,
  ServiceUnavailableError,
  UnauthorizedError,
} from '../errors.js';
import type { Logger } from '../../runtime/logger.js';
import type { BrokerMetrics } from '../metrics.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** X-Broker-API-Request-Identity, or a UUID when the platform sent none. */
    requestIdentity: string;
    /** The minor version of X-Broker-API-Version (checked by apiVersion() before any route). */
    apiMinor: ApiMinor;
  }
}

const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;
const IDENTITY_HEADER = REQUEST_IDENTITY_HEADER.toLowerCase();

/** spec: the broker SHOULD echo X-Broker-API-Request-Identity; every response is JSON. */
function identify(req: Request, res: Response): void {
  const sent = req.headers[IDENTITY_HEADER];
  const valid = typeof sent === 'string' && sent.length > 0 && sent.length <= 255 && !CONTROL_CHARACTERS.test(sent);
  req.requestIdentity = valid ? sent : randomUUID();
  res.setHeader(REQUEST_IDENTITY_HEADER, req.requestIdentity);
}

/** The request identity alone (a worker's probes). */
export function requestIdentity(): RequestHandler {
  return (req, res, next) => {
    identify(req, res);
    next();
  };
}

/**
 * The request identity, then one log line and one histogram sample per request, labelled by
 * route template. The histogram's series are looked up once per method, route and status.
 */
export function observe(logger: Logger, metrics: BrokerMetrics): RequestHandler {
  const traced = logger.isLevelEnabled('trace');
  const series = new Map<string, Histogram.Internal<'method' | 'route' | 'status'>>();
  const seriesOf = (method: string, route: string, status: number) => {
    const key = `${method} ${route} ${status}`;
    let found = series.get(key);
    if (!found) series.set(key, (found = metrics.httpRequestDuration.labels(method, route, String(status))));
    return found;
  };
  return (req, res, next) => {
    const start = process.hrtime.bigint();
    identify(req, res);
    // At trace, what arrived: the headers as sent, but for those redacted by the logger (credentials).
    if (traced) {
      logger.trace(
        { requestId: req.requestIdentity, req: { method: req.method, url: req.url, headers: req.headers } },
        'request received',
      );
    }
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const route = req.route ? `${req.baseUrl}${String(req.route.path)}` : 'unmatched';
      seriesOf(req.method, route, res.statusCode).observe(seconds);
      logger.info(
        {
          requestId: req.requestIdentity,
          ...(res.locals.operationId ? { operationId: res.locals.operationId as string } : {}),
          method: req.method,
          route,
          status: res.statusCode,
          ms: Math.round(seconds * 1e4) / 10,
        },
        'request',
      );
    });
    next();
  };
}

/**
 * spec: HTTP Basic auth, one of the accepted pairs (compared in constant time); 401 otherwise.
 * A verdict that needs no scrypt (plain pairs, or a header already verified) is reached at once.
 */
export function basicAuth(credentials: BrokerCredentials): RequestHandler {
  return (req, res, next) => {
    const header = req.headers.authorization;
    const decide = (accepted: boolean) => {
      if (accepted) return next();
      res.setHeader('WWW-Authenticate', 'Basic realm="depot", charset="UTF-8"');
      next(new UnauthorizedError());
    };
    const verdict = credentials.verdictNow(header);
    if (verdict !== undefined) decide(verdict);
    else credentials.accepts(header).then(decide, next);
  };
}

/** spec: X-Broker-API-Version MAJOR.MINOR; 412 for a missing or unsupported one. */
export function apiVersion(): RequestHandler {
  return (req, _res, next) => {
    const version = req.get(API_VERSION_HEADER);
    const minor = parseApiVersion(version);
    if (minor === undefined) {
      const got = version === undefined ? 'none was sent' : `got ${JSON.stringify(version.slice(0, 32))}`;
      next(new PreconditionFailedError(`${API_VERSION_HEADER} must be ${SUPPORTED_API_VERSIONS} (${got}).`));
      return;
    }
    req.apiMinor = minor;
    next();
  };
}

export function notFound(): RequestHandler {
  return (req, _res, next) => next(new BrokerError(404, `No such endpoint: ${req.method} ${req.path.slice(0, 200)}.`));
}

/**
 * Maps a thrown error to its JSON response. A client mistake is never a 5xx; a state database
 * that cannot be reached is a 503 with Retry-After (spec: the platform may retry), never a 500.
 */
export function errorHandler(logger: Logger, retryAfterSeconds: number): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    let broker: BrokerError;
    if (error instanceof BrokerError) {
      broker = error;
    } else if (isDatabaseUnavailable(error)) {
      logger.warn({ requestId: req.requestIdentity, reason: (error as Error).message }, 'state database unavailable');
      broker = new ServiceUnavailableError(
        "Depot's state database cannot be reached or did not answer in time; try again later.",
        retryAfterSeconds,
      );
    } else {
      const status =
        (error as { status?: number; statusCode?: number }).status ?? (error as { statusCode?: number }).statusCode;
      const type = (error as { type?: string }).type;
      if (type === 'entity.too.large') broker = new PayloadTooLargeError((error as { limit: number }).limit);
      else if (type === 'entity.parse.failed') broker = new BrokerError(400, 'The request body is not valid JSON.');
      else if (status && status >= 400 && status < 500)
        broker = new BrokerError(status, clientErrorDescription(error as Error, status));
      else {
        logger.error({ err: error, requestId: req.requestIdentity }, 'request failed');
        broker = new BrokerError(500, 'Internal error; the broker log has details under this request id.');
      }
    }
    // A 503 was logged above as the warning it is; other 5xx are errors.
    if (broker.status >= 500 && !(broker instanceof ServiceUnavailableError)) {
      logger.error({ requestId: req.requestIdentity, status: broker.status }, broker.description);
    }
    if (res.headersSent) return;
    if (broker instanceof ServiceUnavailableError) res.setHeader('Retry-After', String(broker.retryAfterSeconds));
    res.status(broker.status).json(broker.toResponse());
  };
}

function clientErrorDescription(error: Error, status: number): string {
  const type = (error as { type?: string }).type;
  if (type === 'encoding.unsupported' || type === 'charset.unsupported')
    return 'The request body encoding is not supported; send UTF-8 JSON.';
  if (status === 400 && /decode param/i.test(error.message)) return 'The request path is not valid percent-encoding.';
  return 'The request could not be processed.';
}
