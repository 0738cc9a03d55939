import express, { type Express, type Response } from 'express';
import { trimToVersion, type VersionedBody } from '../../osb/index.js';
import type { BrokerCredentials } from '../auth/broker-credentials.js';
import type { Catalog } from '../catalog/catalog.js';
import type { Logger } from '../../runtime/logger.js';
import type { BrokerMetrics } from '../metrics.js';
import type { LastOperationReply, Reply, ServiceBroker } from '../service-broker.js';
import { apiVersion, basicAuth, errorHandler, notFound, observe, requestIdentity } from './middleware.js';
import { validateBindBody, validateProvisionBody, validateUpdateBody } from './request-schemas.js';
import { body, checkHints, deleteDetails, pathId, pollDetails, requestOptions } from './request.js';

export const BODY_LIMIT_BYTES = 1024 * 1024;

export interface AppOptions {
  broker: ServiceBroker;
  catalog: Catalog;
  /** The username/password pairs accepted (BROKER_CREDENTIALS_FILE, or the single pair). */
  credentials: BrokerCredentials;
  logger: Logger;
  metrics: BrokerMetrics;
  /** Retry-After of a 503 while the state database cannot be reached. */
  retryAfterSeconds: number;
  /** Resolves when Postgres and Redis answer; rejects naming what does not. */
  ready: () => Promise<void>;
}

// Routes below /v2.
const INSTANCE = '/service_instances/:instance_id';
const BINDING = `${INSTANCE}/service_bindings/:binding_id`;

/** The OSB API v2.17 over HTTP, plus /healthz and /readyz (metrics have a listener of their own). */
export function createApp(options: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  // One layer sets the request identity and observes; the probes are routes of the app itself
  // (a router of their own would be one more layer every OSB request passes through).
  app.use(observe(options.logger, options.metrics));
  probeRoutes(app, options.ready, options.logger);
  app.use('/v2', osbRoutes(options));
  app.use(notFound(), errorHandler(options.logger, options.retryAfterSeconds));
  return app;
}

/** One handler per endpoint of the spec, each translating HTTP to one ServiceBroker call. */
function osbRoutes({ broker, catalog, credentials }: AppOptions): express.Router {
  const v2 = express.Router();
  // spec: authentication and the version header are checked before anything else.
  v2.use(basicAuth(credentials), apiVersion());
  // Parse the body as JSON whatever its Content-Type: curl sends none, or a form type, by default.
  v2.use(express.json({ limit: BODY_LIMIT_BYTES, strict: false, type: () => true }));
  v2.get('/catalog', getCatalog(catalog));
  v2.put(INSTANCE, async (req, res) => {
    const options = requestOptions(req);
    const reply = await broker.provision(pathId(req, 'instance_id'), body(req, validateProvisionBody), options);
    send(res, reply, 'provisionResponse');
  });
  v2.get(INSTANCE, async (req, res) => {
    const id = pathId(req, 'instance_id');
    checkHints(req);
    res.json(trimToVersion(await broker.getInstance(id), 'fetchInstance', req.apiMinor));
  });
  v2.patch(INSTANCE, async (req, res) => {
    const options = requestOptions(req);
    const reply = await broker.update(pathId(req, 'instance_id'), body(req, validateUpdateBody), options);
    send(res, reply, 'updateResponse');
  });
  v2.delete(INSTANCE, async (req, res) => {
    const id = pathId(req, 'instance_id');
    send(res, await broker.deprovision(id, deleteDetails(req), requestOptions(req)));
  });
  v2.get(`${INSTANCE}/last_operation`, async (req, res) => {
    const id = pathId(req, 'instance_id');
    sendLastOperation(res, await broker.lastOperation(id, pollDetails(req)));
  });
  v2.put(BINDING, async (req, res) => {
    const options = requestOptions(req);
    const [instanceId, bindingId] = [pathId(req, 'instance_id'), pathId(req, 'binding_id')];
    send(res, await broker.bind(instanceId, bindingId, body(req, validateBindBody), options), 'bindResponse');
  });
  v2.get(BINDING, async (req, res) => {
    const [instanceId, bindingId] = [pathId(req, 'instance_id'), pathId(req, 'binding_id')];
    checkHints(req);
    res.json(trimToVersion(await broker.getBinding(instanceId, bindingId), 'bindResponse', req.apiMinor));
  });
  v2.delete(BINDING, async (req, res) => {
    const [instanceId, bindingId] = [pathId(req, 'instance_id'), pathId(req, 'binding_id')];
    send(res, await broker.unbind(instanceId, bindingId, deleteDetails(req), requestOptions(req)));
  });
  v2.get(`${BINDING}/last_operation`, async (req, res) => {
    const [instanceId, bindingId] = [pathId(req, 'instance_id'), pathId(req, 'binding_id')];
    sendLastOperation(res, await broker.lastBindingOperation(instanceId, bindingId, pollDetails(req)));
  });
  return v2;
}

/** GET /v2/catalog: the precomputed body of the request's version. */
function getCatalog(catalog: Catalog): express.RequestHandler {
  return (req, res) => {
    // spec (2.16), "Catalog Management": ETag and If-None-Match; one ETag per API version.
    const view = catalog.view(req.apiMinor);
    res.setHeader('ETag', view.etag);
    if (req.get('if-none-match') === view.etag) {
      res.status(304).end();
      return;
    }
    res.type('application/json').send(view.body);
  };
}

/**
 * Adds the probes, served by every role on its PORT without credentials: /healthz, and /readyz, which
 * names the dependency that is down and nothing more (its error text goes to the log).
 */
export function probeRoutes(app: Express, ready: () => Promise<void>, logger: Logger): void {
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    try {
      await ready();
      res.json({ status: 'ready' });
    } catch (error) {
      const down = error instanceof DependencyDown ? error.dependency : 'a dependency';
      logger.warn({ reason: (error as Error).message }, `not ready: ${down} is unavailable`);
      res.status(503).json({ status: 'not ready', description: `${down} is unavailable` });
    }
  });
}

/** What /readyz reports: which dependency did not answer (the message is for the log). */
export class DependencyDown extends Error {
  override name = 'DependencyDown';
  constructor(
    readonly dependency: string,
    cause: unknown,
  ) {
    super(`${dependency}: ${(cause as Error).message}`, { cause });
  }
}

/** A worker's HTTP server on PORT: only the probes. */
export function createProbeApp(options: Pick<AppOptions, 'logger' | 'ready' | 'retryAfterSeconds'>): Express {
  const app = express();
  app.disable('x-powered-by');
  const handler = errorHandler(options.logger, options.retryAfterSeconds);
  app.use(requestIdentity());
  probeRoutes(app, options.ready, options.logger);
  app.use(notFound(), handler);
  return app;
}

/** The metrics listener (METRICS_PORT on METRICS_HOST, apart from the OSB port): only GET /metrics. */
export function createMetricsApp(metrics: BrokerMetrics): Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.use((_req, res) => {
    res.status(404).json({ description: 'Only GET /metrics is served here.' });
  });
  return app;
}

/** The reply, with only the fields the request's API version defines. */
function send(res: Response, reply: Reply<number, unknown>, kind?: VersionedBody): void {
  const operation = (reply.body as { operation?: unknown }).operation;
  if (typeof operation === 'string') res.locals.operationId = operation; // logged with the request
  res.status(reply.status).json(kind ? trimToVersion(reply.body, kind, res.req.apiMinor) : reply.body);
}

function sendLastOperation(res: Response, reply: LastOperationReply): void {
  if (reply.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(reply.retryAfterSeconds));
  res.json(trimToVersion(reply.body, 'lastOperation', res.req.apiMinor));
}
