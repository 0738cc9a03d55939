/**
 * Floor of the state scenarios: each OSB route does one statement on a table of its own in
 * DATABASE_URL, through a pg pool of Depot's size (10):
 *   PUT    /v2/service_instances/:id               one INSERT  (provision accept, 202)
 *   GET    /v2/service_instances/:id/last_operation one SELECT by primary key
 *   PUT    /v2/service_instances/:id/service_bindings/:bid  one INSERT (bind, 201)
 *   GET    /v2/service_instances/:id/service_bindings/:bid  one SELECT by primary key
 */
import pg from 'pg';
import { floorApp, listen } from './osb-checks.js';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
await pool.query(`create table if not exists floor_instances
  (id text primary key, service_id text not null, plan_id text not null, state text not null, body jsonb not null)`);
await pool.query(`create table if not exists floor_bindings
  (id text primary key, instance_id text not null, credentials jsonb not null)`);

const app = floorApp();
app.put('/v2/service_instances/:id', async (req, res) => {
  const body = req.body as { service_id: string; plan_id: string };
  await pool.query(
    `insert into floor_instances (id, service_id, plan_id, state, body) values ($1, $2, $3, 'succeeded', $4)`,
    [req.params.id, body.service_id, body.plan_id, body],
  );
  res.status(202).json({ operation: 'provision' });
});
app.get('/v2/service_instances/:id/last_operation', async (req, res) => {
  const { rows } = await pool.query<{ state: string }>('select state from floor_instances where id = $1', [
    req.params.id,
  ]);
  if (!rows[0]) res.status(410).json({});
  else res.json({ state: rows[0].state });
});
app.put('/v2/service_instances/:id/service_bindings/:bid', async (req, res) => {
  const credentials = (req.body as { parameters?: { credentials?: object } }).parameters?.credentials ?? {};
  await pool.query('insert into floor_bindings (id, instance_id, credentials) values ($1, $2, $3)', [
    req.params.bid,
    req.params.id,
    credentials,
  ]);
  res.status(201).json({ credentials });
});
app.get('/v2/service_instances/:id/service_bindings/:bid', async (req, res) => {
  const { rows } = await pool.query<{ credentials: object }>(
    'select credentials from floor_bindings where id = $1 and instance_id = $2',
    [req.params.bid, req.params.id],
  );
  if (!rows[0]) res.status(404).json({});
  else res.json({ credentials: rows[0].credentials });
});
listen(app);
