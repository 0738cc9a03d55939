/**
 * What every floor shares with Depot's OSB API before any route: HTTP Basic auth compared in
 * constant time (digests of the username and password) and the X-Broker-API-Version check
 * (2.x, 412 otherwise). An express 5 app (with an open /readyz) with JSON bodies, listening on PORT.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import express, { type Express } from 'express';

const sha256 = (value: string) => createHash('sha256').update(value).digest();

export function floorApp(): Express {
  const username = sha256(process.env.BROKER_USERNAME ?? '');
  const password = sha256(process.env.BROKER_PASSWORD ?? '');
  const app = express();
  app.set('etag', false);
  app.disable('x-powered-by');
  app.get('/readyz', (_req, res) => {
    res.json({});
  });
  app.use((req, res, next) => {
    const header = req.get('authorization') ?? '';
    const decoded = header.startsWith('Basic ') ? Buffer.from(header.slice(6), 'base64').toString() : '';
    const colon = decoded.indexOf(':');
    const userMatches = timingSafeEqual(sha256(decoded.slice(0, Math.max(colon, 0))), username);
    const passwordMatches = timingSafeEqual(sha256(decoded.slice(colon + 1)), password);
    if (colon < 0 || !userMatches || !passwordMatches) {
      res.status(401).json({ description: 'Unauthorized.' });
      return;
    }
    if (!/^2\.\d+$/.test(req.get('x-broker-api-version') ?? '')) {
      res.status(412).json({ error: 'PreconditionFailed' });
      return;
    }
    next();
  });
  app.use(express.json());
  return app;
}

export function listen(app: Express): void {
  app.listen(Number(process.env.PORT), '127.0.0.1');
}
