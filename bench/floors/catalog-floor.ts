/** Floor of the catalog scenario: GET /v2/catalog answers the body in CATALOG_BODY_FILE (Depot's own). */
import { readFileSync } from 'node:fs';
import { floorApp, listen } from './osb-checks.js';

const body = readFileSync(process.env.CATALOG_BODY_FILE ?? '', 'utf8');
const app = floorApp();
app.get('/v2/catalog', (_req, res) => {
  res.type('application/json').send(body);
});
listen(app);
