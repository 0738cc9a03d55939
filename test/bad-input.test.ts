/**
 * Bad input gets a clear 4xx JSON error and changes nothing; no request makes the process
 * crash or answer 5xx for a client mistake.
 *
 * Every rejected request goes through `rejects()`: the status is the expected 4xx, the answer
 * is JSON with a non-empty `description` (naming the field where one is at fault), and Depot's
 * state rows (counts and contents) are the same before and after. The last test checks that
 * the process is alive and logged no internal error.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import request from 'supertest';
import { postgresNames } from '../broker/offerings/postgresql/postgresql-offering.js';
import {
  operationOf,
  ASYNC,
  API_VERSION,
  PASSWORD,
  SERVICE_ID,
  SMALL_PLAN_ID,
  USERNAME,
  adminQuery,
  bindBody,
  bindingPath,
  deleteQuery,
  deprovisionInstance,
  instancePath,
  osb,
  provisionBody,
  provisionInstance,
  startDepot,
  stateCounts,
  waitForOperation,
  type TestDepot,
  unsealed,
} from './helpers.js';

type Method = 'get' | 'put' | 'patch' | 'delete';

/** One request that Depot must turn down. */
interface BadRequest {
  name: string;
  method: Method;
  /** Already percent-encoded; sent as is. */
  path: string;
  /** A body serialised with JSON.stringify (so `null`, arrays, strings and numbers too). */
  json?: unknown;
  /** A body sent byte for byte with `contentType` (default application/json). */
  raw?: string;
  contentType?: string;
  headers?: Record<string, string>;
  /** Expected status (default 400); a list when more than one 4xx is right. */
  status?: number | number[];
  /** The description must match, e.g. name the offending field. */
  names?: RegExp;
}
type Extra = Partial<Omit<BadRequest, 'name' | 'method' | 'path'>>;

interface ErrorBody {
  description?: unknown;
}

// ---- Ids ----

/** The instance and binding that exist during the whole file. */
const INSTANCE_ID = randomUUID();
const BINDING_ID = randomUUID();
/** Ids that are never created: a bad request aimed at them must not create them. */
const NEW_INSTANCE_ID = randomUUID();
const NEW_BINDING_ID = randomUUID();

/**
 * A string of exactly `length` UTF-16 code units built from `pattern`, never cutting a
 * surrogate pair (a lone surrogate cannot be percent-encoded).
 */
function fill(pattern: string, length: number): string {
  const points = Array.from(pattern);
  let out = '';
  for (let i = 0; out.length < length; i++) {
    const next = points[i % points.length]!;
    out += out.length + next.length <= length ? next : 'x';
  }
  return out;
}

/** Quotes, backslash, spaces, a slash, emoji (one a ZWJ sequence), RTL text, a combining accent. */
const NASTY = `'"\`\\ 😀 שלום e\u0301 a/b 👩‍👩‍👧 %20 مرحبا `;
const LONG_ID = fill(NASTY, 10_000);
/** Exactly the broker's limit (255): a valid id, however odd. */
const ODD_ID = fill(NASTY, 255);
const TOO_LONG_ID = fill(NASTY, 256);
const SQL_INSTANCE_ID = `x'; drop table service_instances; --`;
const SQL_BINDING_ID = `"; drop role postgres; --`;
const UNKNOWN_ID = randomUUID();

// ---- Paths and case builders ----

const inst = instancePath(INSTANCE_ID);
const bnd = bindingPath(INSTANCE_ID, BINDING_ID);
const newInst = instancePath(NEW_INSTANCE_ID);
const newBnd = bindingPath(INSTANCE_ID, NEW_BINDING_ID);

/** PUT of the never-created instance (asynchronous, so a valid one would be accepted). */
const putInstance = (name: string, json: unknown, extra: Extra = {}): BadRequest => ({
  name: `PUT instance: ${name}`,
  method: 'put',
  path: `${newInst}${ASYNC}`,
  json,
  ...extra,
});
/** PATCH of the existing instance. */
const patchInstance = (name: string, json: unknown, extra: Extra = {}): BadRequest => ({
  name: `PATCH instance: ${name}`,
  method: 'patch',
  path: `${inst}${ASYNC}`,
  json,
  ...extra,
});
/** PUT of a new binding of the existing instance. */
const putBinding = (name: string, json: unknown, extra: Extra = {}): BadRequest => ({
  name: `PUT binding: ${name}`,
  method: 'put',
  path: newBnd,
  json,
  ...extra,
});
/** DELETE of the existing instance with this query. */
const deleteInstance = (name: string, query: string, extra: Extra = {}): BadRequest => ({
  name: `DELETE instance: ${name}`,
  method: 'delete',
  path: `${inst}?${query}`,
  ...extra,
});
/** DELETE of the existing binding with this query. */
const deleteBinding = (name: string, query: string, extra: Extra = {}): BadRequest => ({
  name: `DELETE binding: ${name}`,
  method: 'delete',
  path: `${bnd}?${query}`,
  ...extra,
});
const get = (name: string, path: string, extra: Extra = {}): BadRequest => ({
  name: `GET ${name}`,
  method: 'get',
  path,
  ...extra,
});

/** Every route, aimed at the existing resources (or the new ones, for PUT). */
const EVERY_ROUTE: Array<[string, Method, string]> = [
  ['PUT instance', 'put', `${newInst}${ASYNC}`],
  ['PATCH instance', 'patch', `${inst}${ASYNC}`],
  ['DELETE instance', 'delete', `${inst}${ASYNC}&${deleteQuery()}`],
  ['GET instance', 'get', inst],
  ['GET instance last_operation', 'get', `${inst}/last_operation`],
  ['PUT binding', 'put', newBnd],
  ['DELETE binding', 'delete', `${bnd}?${deleteQuery()}`],
  ['GET binding', 'get', bnd],
  ['GET binding last_operation', 'get', `${bnd}/last_operation`],
];

/** Every route with `id` as its instance id or binding id, and an otherwise valid request. */
function routesWithId(id: string): Array<[string, Method, string, unknown?]> {
  return [
    ['PUT instance', 'put', `${instancePath(id)}${ASYNC}`, provisionBody()],
    ['PATCH instance', 'patch', `${instancePath(id)}${ASYNC}`, { service_id: SERVICE_ID }],
    ['DELETE instance', 'delete', `${instancePath(id)}${ASYNC}&${deleteQuery()}`],
    ['GET instance', 'get', instancePath(id)],
    ['GET instance last_operation', 'get', `${instancePath(id)}/last_operation`],
    ['PUT binding (as instance id)', 'put', bindingPath(id, NEW_BINDING_ID), bindBody()],
    ['PUT binding', 'put', bindingPath(INSTANCE_ID, id), bindBody()],
    ['DELETE binding', 'delete', `${bindingPath(INSTANCE_ID, id)}?${deleteQuery()}`],
    ['GET binding', 'get', bindingPath(INSTANCE_ID, id)],
    ['GET binding last_operation', 'get', `${bindingPath(INSTANCE_ID, id)}/last_operation`],
  ];
}

const base64 = (text: string) => Buffer.from(text).toString('base64');
/** `{"a":{"a":...1...}}`, nested `depth` deep. */
const deeplyNested = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
const without = (body: Record<string, unknown>, field: string) => {
  const copy = { ...body };
  delete copy[field];
  return copy;
};

describe('bad input', () => {
  let depot: TestDepot;

  before(async () => {
    depot = await startDepot('bad-input');
    await provisionInstance(depot, INSTANCE_ID);
    // PUT binding without accepts_incomplete waits for the job and answers 201.
    await osb(depot).put(bnd, bindBody()).expect(201);
  });
  after(async () => depot.close());

  /** Counts of the state rows, and a digest of their contents (any changed column shows). */
  async function snapshot() {
    const counts = await stateCounts(depot);
    const digest = (table: string) =>
      `(select coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from ${table} t)`;
    const { rows } = await depot.depot.pool.query<{ instances: string; bindings: string; operations: string }>(
      `select ${digest('service_instances')} as instances, ${digest('service_bindings')} as bindings,
              ${digest('operations')} as operations`,
    );
    return { counts, contents: rows[0]! };
  }

  function send(c: BadRequest) {
    const agent = request(depot.baseUrl);
    let req = agent[c.method](c.path).auth(USERNAME, PASSWORD).set('X-Broker-API-Version', API_VERSION);
    for (const [name, value] of Object.entries(c.headers ?? {})) req = req.set(name, value);
    if (c.json !== undefined) return req.set('Content-Type', 'application/json').send(JSON.stringify(c.json));
    if (c.raw !== undefined) return req.set('Content-Type', c.contentType ?? 'application/json').send(c.raw);
    return req;
  }

  /** Asserts a clear JSON error with the expected status, and that nothing changed. */
  async function rejects(c: BadRequest): Promise<void> {
    const before = await snapshot();
    const res = await send(c);
    const after = await snapshot();
    const changed = JSON.stringify(after) !== JSON.stringify(before) ? '; and Depot state CHANGED' : '';
    const expected = Array.isArray(c.status) ? c.status : [c.status ?? 400];
    assert.ok(
      expected.includes(res.status),
      `${c.method.toUpperCase()} ${c.path.slice(0, 120)} answered ${res.status} (wanted ${expected.join(' or ')}): ` +
        `${res.text.slice(0, 300)}${changed}`,
    );
    assert.match(res.headers['content-type'] ?? '', /^application\/json/, `not JSON: ${res.text.slice(0, 200)}`);
    const { description } = res.body as ErrorBody;
    assert.equal(typeof description, 'string', `no description in ${res.text.slice(0, 200)}`);
    assert.ok((description as string).length > 0, 'empty description');
    if (c.names) assert.match(description as string, c.names);
    assert.deepEqual(after, before, 'a rejected request changed Depot state');
  }

  /** One test per case, named after it. */
  function table(cases: BadRequest[]) {
    for (const c of cases) it(c.name, () => rejects(c));
  }

  // spec: 400 Bad Request for a malformed request. The JSON parser runs on every /v2 route
  // whatever the Content-Type (curl sends none, or a form type), so a broken body is a 400 everywhere.
  describe('malformed JSON bodies', () => {
    table(
      EVERY_ROUTE.flatMap(([route, method, path]): BadRequest[] => [
        { name: `${route}: truncated JSON`, method, path, raw: '{"service_id":', names: /JSON/ },
        {
          name: `${route}: truncated JSON as text/plain`,
          method,
          path,
          raw: '{"service_id":',
          contentType: 'text/plain',
          names: /JSON/,
        },
        {
          name: `${route}: a raw NUL byte in a JSON string`,
          method,
          path,
          raw: '{"service_id":"a\u0000b"}',
          names: /JSON/,
        },
        { name: `${route}: single-quoted JSON`, method, path, raw: `{'service_id':'x'}`, names: /JSON/ },
      ]),
    );
  });

  // spec: the body of PUT and PATCH is a JSON object.
  describe('bodies that are not JSON objects', () => {
    const notObjects: Array<[string, string]> = [
      ['an empty array', '[]'],
      ['an array holding a valid body', JSON.stringify([provisionBody()])],
      ['a string', '"service_id"'],
      ['null', 'null'],
      ['a number', '42'],
      ['true', 'true'],
    ];
    const cases: BadRequest[] = [];
    for (const [route, method, path] of EVERY_ROUTE.filter(([, m]) => m === 'put' || m === 'patch')) {
      for (const [what, raw] of notObjects)
        cases.push({ name: `${route}: body is ${what}`, method, path, raw, names: /JSON object/ });
      cases.push({ name: `${route}: empty body`, method, path, raw: '' });
    }
    table(cases);
  });

  // spec: 400 for a body without the request's shape; the description names the field.
  describe('fields of the wrong type', () => {
    table([
      putInstance('service_id as a number', provisionBody({ service_id: 42 }), { names: /service_id/ }),
      putInstance('plan_id as null', provisionBody({ plan_id: null }), { names: /plan_id/ }),
      putInstance('parameters as an array', provisionBody({ parameters: ['extensions'] }), { names: /parameters/ }),
      putInstance('parameters as a string', provisionBody({ parameters: '{"extensions":[]}' }), {
        names: /parameters/,
      }),
      putInstance('context as a string', provisionBody({ context: 'cloudfoundry' }), { names: /context/ }),
      putInstance('organization_guid as an object', provisionBody({ organization_guid: { id: 'o' } }), {
        names: /organization_guid/,
      }),
      putInstance('space_guid as a boolean', provisionBody({ space_guid: true }), { names: /space_guid/ }),
      putInstance('maintenance_info as a string', provisionBody({ maintenance_info: '1.0.0' }), {
        names: /maintenance_info/,
      }),
      putInstance('maintenance_info.version as a number', provisionBody({ maintenance_info: { version: 1 } }), {
        names: /maintenance_info\.version/,
      }),
      putInstance('organization_guid of 256 characters', provisionBody({ organization_guid: 'o'.repeat(256) }), {
        names: /organization_guid/,
      }),
      patchInstance('service_id as a number', { service_id: 7 }, { names: /service_id/ }),
      patchInstance('plan_id as an array', { service_id: SERVICE_ID, plan_id: [SMALL_PLAN_ID] }, { names: /plan_id/ }),
      patchInstance('parameters as an array', { service_id: SERVICE_ID, parameters: [] }, { names: /parameters/ }),
      patchInstance('parameters as a string', { service_id: SERVICE_ID, parameters: 'x' }, { names: /parameters/ }),
      patchInstance('context as a string', { service_id: SERVICE_ID, context: 'x' }, { names: /context/ }),
      patchInstance(
        'maintenance_info as a string',
        { service_id: SERVICE_ID, maintenance_info: '1.0.0' },
        { names: /maintenance_info/ },
      ),
      patchInstance(
        'previous_values as a string',
        { service_id: SERVICE_ID, previous_values: 'x' },
        { names: /previous_values/ },
      ),
      putBinding('service_id as a number', bindBody({ service_id: 1 }), { names: /service_id/ }),
      putBinding('parameters as an array', bindBody({ parameters: [] }), { names: /parameters/ }),
      putBinding('parameters as a string', bindBody({ parameters: 'x' }), { names: /parameters/ }),
      putBinding('context as a string', bindBody({ context: 'x' }), { names: /context/ }),
      putBinding('bind_resource as a string', bindBody({ bind_resource: 'app' }), { names: /bind_resource/ }),
      putBinding('bind_resource.app_guid as a number', bindBody({ bind_resource: { app_guid: 5 } }), {
        names: /app_guid/,
      }),
      putBinding('app_guid as an object', bindBody({ app_guid: {} }), { names: /app_guid/ }),
    ]);
  });

  // spec: required fields MUST be present, and ids MUST be non-empty strings.
  describe('missing and empty required fields', () => {
    const cases: BadRequest[] = [];
    for (const field of ['service_id', 'plan_id', 'organization_guid', 'space_guid']) {
      const names = new RegExp(field);
      cases.push(putInstance(`without ${field}`, without(provisionBody(), field), { names }));
      cases.push(putInstance(`empty ${field}`, provisionBody({ [field]: '' }), { names }));
    }
    cases.push(patchInstance('without service_id', { plan_id: SMALL_PLAN_ID }, { names: /service_id/ }));
    cases.push(patchInstance('empty service_id', { service_id: '' }, { names: /service_id/ }));
    cases.push(patchInstance('empty plan_id', { service_id: SERVICE_ID, plan_id: '' }, { names: /plan_id/ }));
    for (const field of ['service_id', 'plan_id']) {
      const names = new RegExp(field);
      cases.push(putBinding(`without ${field}`, without(bindBody(), field), { names }));
      cases.push(putBinding(`empty ${field}`, bindBody({ [field]: '' }), { names }));
    }
    table(cases);
  });

  // spec: 400 when service_id or plan_id is not in the catalog.
  describe('ids that are not in the catalog', () => {
    const query = (serviceId: string, planId: string) =>
      `accepts_incomplete=true&service_id=${serviceId}&plan_id=${planId}`;
    table([
      putInstance('unknown service_id', provisionBody({ service_id: UNKNOWN_ID }), { names: /service_id/ }),
      putInstance('unknown plan_id', provisionBody({ plan_id: UNKNOWN_ID }), { names: /plan_id/ }),
      patchInstance('unknown service_id', { service_id: UNKNOWN_ID }, { names: /service_id/ }),
      patchInstance('unknown plan_id', { service_id: SERVICE_ID, plan_id: UNKNOWN_ID }, { names: /plan_id/ }),
      deleteInstance('unknown service_id', query(UNKNOWN_ID, SMALL_PLAN_ID), { names: /service_id/ }),
      deleteInstance('unknown plan_id', query(SERVICE_ID, UNKNOWN_ID), { names: /plan_id/ }),
      putBinding('unknown service_id', bindBody({ service_id: UNKNOWN_ID }), { names: /service_id/ }),
      putBinding('unknown plan_id', bindBody({ plan_id: UNKNOWN_ID }), { names: /plan_id/ }),
      deleteBinding('unknown service_id', query(UNKNOWN_ID, SMALL_PLAN_ID), { names: /service_id/ }),
      deleteBinding('unknown plan_id', query(SERVICE_ID, UNKNOWN_ID), { names: /plan_id/ }),
    ]);
  });

  // spec: parameters are validated against the plan's schemas; 400, and nothing created on
  // the server either.
  describe('parameters that break the plan schema', () => {
    /**
     * The instance databases this Depot could have made: one per instance id it knows, and the
     * one of the id the request named. (Not every `depot_%` database on the server: other test
     * runs and benchmarks share the server and create their own meanwhile.)
     */
    const ownDatabases = async (targetId: string) => {
      const { rows } = await depot.depot.pool.query<{ id: string }>('select id from service_instances');
      const names = [...rows.map((r) => r.id), targetId].map((id) => postgresNames(id).database);
      const found = await adminQuery<{ datname: string }>(
        'select datname from pg_database where datname = any($1) order by 1',
        [names],
      );
      return found.map((r) => r.datname);
    };
    const protoBody = JSON.stringify(provisionBody({ parameters: 'P' })).replace('"P"', '{"__proto__":{"admin":true}}');

    const cases: Array<[BadRequest, string]> = [
      [
        putInstance(
          'extension not in the allow-list',
          provisionBody({ parameters: { extensions: ['not-an-extension'] } }),
          {
            names: /parameters\.extensions/,
          },
        ),
        NEW_INSTANCE_ID,
      ],
      [
        putInstance('unknown parameter', provisionBody({ parameters: { unknown_key: 1 } }), { names: /unknown_key/ }),
        NEW_INSTANCE_ID,
      ],
      [
        putInstance(
          'SQL in an extension name',
          provisionBody({ parameters: { extensions: [`pgcrypto"; drop role postgres; --`] } }),
          {
            names: /parameters\.extensions/,
          },
        ),
        NEW_INSTANCE_ID,
      ],
      [
        putInstance('extensions as a string', provisionBody({ parameters: { extensions: 'pgcrypto' } }), {
          names: /parameters\.extensions/,
        }),
        NEW_INSTANCE_ID,
      ],
      [putInstance('a __proto__ parameter', undefined, { raw: protoBody, names: /__proto__/ }), NEW_INSTANCE_ID],
      [
        patchInstance(
          'extension not in the allow-list',
          { service_id: SERVICE_ID, parameters: { extensions: ['not-an-extension'] } },
          {
            names: /parameters\.extensions/,
          },
        ),
        INSTANCE_ID,
      ],
      [
        patchInstance(
          'unknown parameter',
          { service_id: SERVICE_ID, parameters: { unknown_key: 1 } },
          { names: /unknown_key/ },
        ),
        INSTANCE_ID,
      ],
      [
        putBinding('unknown parameter', bindBody({ parameters: { unknown_key: 1 } }), { names: /unknown_key/ }),
        INSTANCE_ID,
      ],
    ];
    for (const [c, instanceId] of cases) {
      it(c.name, async () => {
        const before = await ownDatabases(instanceId);
        await rejects(c);
        await new Promise((resolve) => setTimeout(resolve, 200)); // a job, had one started, would be running by now
        assert.deepEqual(await ownDatabases(instanceId), before, 'a rejected request created a database');
        if (instanceId === NEW_INSTANCE_ID) assert.ok(!before.includes(postgresNames(instanceId).database));
      });
    }
  });

  // Ids: the broker takes at most 255 characters and no control characters (request.ts
  // pathId); anything else is a 400 JSON error from the route, never HTML or a 5xx.
  describe('odd ids in the path', () => {
    it('builds the ids it means to', () => {
      assert.equal(LONG_ID.length, 10_000);
      assert.equal(ODD_ID.length, 255);
      assert.equal(TOO_LONG_ID.length, 256);
      // under the server's 64 KiB header limit, so the request reaches the router
      assert.ok(encodeURIComponent(LONG_ID).length < 60_000);
    });

    const badIds: Array<[string, string]> = [
      [LONG_ID, '10 kB'],
      [TOO_LONG_ID, '256-character'],
      ['a\u0000b', '%00'],
      ['a\nb', '%0A'],
      ['a\u001fb', '%1F'],
      ['a\u007fb', '%7F'],
    ];
    const cases: BadRequest[] = [];
    for (const [id, label] of badIds) {
      for (const [route, method, path, json] of routesWithId(id)) {
        cases.push({ name: `${route} with a ${label} id`, method, path, json, names: /instance_id|binding_id/ });
      }
    }
    // Express cannot decode these path parameters: 400, not the default HTML error page.
    const malformed: Array<[string, Method, string]> = [
      ['PUT instance', 'put', `/v2/service_instances/%E0%A4%A${ASYNC}`],
      ['GET instance', 'get', '/v2/service_instances/%E0%A4%A'],
      ['DELETE instance', 'delete', `/v2/service_instances/%ZZ${ASYNC}&${deleteQuery()}`],
      ['GET instance last_operation', 'get', '/v2/service_instances/%/last_operation'],
      ['PUT binding', 'put', `${inst}/service_bindings/%C3%28`],
      ['GET binding', 'get', `${inst}/service_bindings/%E0%A4%A`],
    ];
    for (const [route, method, path] of malformed) {
      cases.push({
        name: `${route} with a malformed percent sequence`,
        method,
        path,
        json: method === 'put' ? provisionBody() : undefined,
      });
    }
    table(cases);

    // A 255-character id with quotes and unicode is valid: it gets the normal answer.
    const odd = instancePath(ODD_ID);
    const oddBinding = bindingPath(INSTANCE_ID, ODD_ID);
    table([
      get('instance with an odd 255-char id: 404', odd, { status: 404 }),
      get('instance last_operation with an odd 255-char id: 404', `${odd}/last_operation`, { status: 404 }),
      {
        name: 'DELETE instance with an odd 255-char id: 410',
        method: 'delete',
        path: `${odd}${ASYNC}&${deleteQuery()}`,
        status: 410,
      },
      {
        name: 'PATCH instance with an odd 255-char id: 404',
        method: 'patch',
        path: `${odd}${ASYNC}`,
        json: { service_id: SERVICE_ID },
        status: 404,
      },
      // spec: provisioning is asynchronous only (422 AsyncRequired), whatever the id.
      {
        name: 'PUT instance with an odd 255-char id, synchronously: 422',
        method: 'put',
        path: odd,
        json: provisionBody(),
        status: 422,
      },
      {
        name: 'PUT binding of an odd 255-char instance id: 404',
        method: 'put',
        path: bindingPath(ODD_ID, BINDING_ID),
        json: bindBody(),
        status: 404,
      },
      get('binding with an odd 255-char id: 404', oddBinding, { status: 404 }),
      get('binding last_operation with an odd 255-char id: 404', `${oddBinding}/last_operation`, { status: 404 }),
      {
        name: 'DELETE binding with an odd 255-char id: 410',
        method: 'delete',
        path: `${oddBinding}?${deleteQuery()}`,
        status: 410,
      },
    ]);
  });

  // Postgres text cannot hold U+0000: refused up front (request.ts body), in values and keys.
  describe('U+0000 in the body', () => {
    const names = /U\+0000/;
    table([
      putInstance('NUL in organization_guid', provisionBody({ organization_guid: 'org\u0000' }), { names }),
      putInstance('NUL as service_id', provisionBody({ service_id: '\u0000' }), { names }),
      putInstance('NUL in a context key', provisionBody({ context: { platform: 'cloudfoundry', 'a\u0000b': 1 } }), {
        names,
      }),
      putInstance('NUL deep in a context array', provisionBody({ context: { labels: [{ x: ['ok', 'n\u0000'] }] } }), {
        names,
      }),
      patchInstance('NUL in a context value', { service_id: SERVICE_ID, context: { platform: '\u0000' } }, { names }),
      patchInstance('NUL in a parameters key', { service_id: SERVICE_ID, parameters: { '\u0000': 1 } }, { names }),
      putBinding('NUL in bind_resource.app_guid', bindBody({ bind_resource: { app_guid: 'app\u0000' } }), { names }),
      putBinding('NUL in a parameters key', bindBody({ parameters: { 'k\u0000': 'v' } }), { names }),
    ]);
  });

  // The body limit is 1 MiB (app.ts BODY_LIMIT_BYTES): 413 Payload Too Large, as JSON.
  describe('oversized bodies', () => {
    const big = 'x'.repeat(2_000_000);
    const status = 413;
    table([
      putInstance('2 MB of parameters', provisionBody({ parameters: { big } }), { status, names: /larger/ }),
      putInstance('2 MB of text/plain', undefined, { raw: big, contentType: 'text/plain', status }),
      patchInstance('a 2 MB context', { service_id: SERVICE_ID, context: { big } }, { status }),
      putBinding('2 MB of parameters', bindBody({ parameters: { big } }), { status }),
      deleteInstance('a 2 MB body', `accepts_incomplete=true&${deleteQuery()}`, {
        raw: JSON.stringify({ big }),
        status,
      }),
    ]);
  });

  // Valid JSON nested deeper than Depot can check or store is still the client's mistake: a
  // 400 (a nesting limit), never a stack overflow answered as 500. A synchronous provision may
  // instead get its usual 422 AsyncRequired.
  describe('deeply nested JSON', () => {
    const context = (depth: number) => `{"platform":"cloudfoundry","deep":${deeplyNested(depth)}}`;
    const provision = (depth: number) => JSON.stringify(provisionBody({ context: 'C' })).replace('"C"', context(depth));
    const update = (depth: number) => `{"service_id":"${SERVICE_ID}","context":${context(depth)}}`;
    const bind = (field: string, depth: number) =>
      `{"service_id":"${SERVICE_ID}","plan_id":"${SMALL_PLAN_ID}","${field}":${deeplyNested(depth)}}`;
    table([
      // 100 000 levels: deeper than the U+0000 check can recurse
      {
        name: 'PUT instance, sync, context 100 000 deep',
        method: 'put',
        path: newInst,
        raw: provision(100_000),
        status: [400, 422],
      },
      putInstance('context 100 000 deep', undefined, { raw: provision(100_000) }),
      patchInstance('context 100 000 deep', undefined, { raw: update(100_000) }),
      putBinding('parameters 100 000 deep', undefined, { raw: bind('parameters', 100_000) }),
      // 5 000 levels: passes the checks, deeper than the pg driver can serialise into jsonb
      putInstance('context 5 000 deep', undefined, { raw: provision(5_000) }),
      patchInstance('context 5 000 deep', undefined, { raw: update(5_000) }),
      putBinding('context 5 000 deep', undefined, { raw: bind('context', 5_000) }),
    ]);
  });

  // spec: query parameters, if present, MUST be non-empty strings; accepts_incomplete is a
  // boolean; operation is at most 10 000 characters.
  describe('query parameters', () => {
    const twice = 'accepts_incomplete=true&accepts_incomplete=true';
    const longOperation = 'o'.repeat(10_001);
    table([
      {
        ...putInstance('accepts_incomplete=yes', provisionBody()),
        path: `${newInst}?accepts_incomplete=yes`,
        names: /accepts_incomplete/,
      },
      {
        ...putInstance('accepts_incomplete=TRUE', provisionBody()),
        path: `${newInst}?accepts_incomplete=TRUE`,
        names: /accepts_incomplete/,
      },
      {
        ...putInstance('empty accepts_incomplete', provisionBody()),
        path: `${newInst}?accepts_incomplete=`,
        names: /accepts_incomplete/,
      },
      {
        ...putInstance('accepts_incomplete twice', provisionBody()),
        path: `${newInst}?${twice}`,
        names: /accepts_incomplete/,
      },
      {
        ...patchInstance('accepts_incomplete=1', { service_id: SERVICE_ID }),
        path: `${inst}?accepts_incomplete=1`,
        names: /accepts_incomplete/,
      },
      {
        ...putBinding('accepts_incomplete twice', bindBody()),
        path: `${newBnd}?${twice}`,
        names: /accepts_incomplete/,
      },
      deleteInstance('accepts_incomplete=yes', `accepts_incomplete=yes&${deleteQuery()}`, {
        names: /accepts_incomplete/,
      }),
      deleteInstance('without service_id', `accepts_incomplete=true&plan_id=${SMALL_PLAN_ID}`, { names: /service_id/ }),
      deleteInstance('without plan_id', `accepts_incomplete=true&service_id=${SERVICE_ID}`, { names: /plan_id/ }),
      deleteInstance('without any query', '', { names: /service_id|plan_id/ }),
      deleteInstance('empty service_id', `accepts_incomplete=true&service_id=&plan_id=${SMALL_PLAN_ID}`, {
        names: /service_id/,
      }),
      deleteInstance('empty plan_id', `accepts_incomplete=true&service_id=${SERVICE_ID}&plan_id=`, {
        names: /plan_id/,
      }),
      deleteInstance('service_id twice', `accepts_incomplete=true&service_id=${SERVICE_ID}&${deleteQuery()}`, {
        names: /service_id/,
      }),
      deleteInstance(
        'a 10 kB service_id',
        `accepts_incomplete=true&service_id=${encodeURIComponent(LONG_ID)}&plan_id=${SMALL_PLAN_ID}`,
        {
          names: /service_id/,
        },
      ),
      deleteInstance('%00 in plan_id', `accepts_incomplete=true&service_id=${SERVICE_ID}&plan_id=a%00`, {
        names: /plan_id/,
      }),
      deleteBinding('without service_id', `plan_id=${SMALL_PLAN_ID}`, { names: /service_id/ }),
      deleteBinding('without plan_id', `service_id=${SERVICE_ID}`, { names: /plan_id/ }),
      deleteBinding('empty service_id', `service_id=&plan_id=${SMALL_PLAN_ID}`, { names: /service_id/ }),
      deleteBinding('empty plan_id', `service_id=${SERVICE_ID}&plan_id=`, { names: /plan_id/ }),
      deleteBinding('accepts_incomplete=maybe', `accepts_incomplete=maybe&${deleteQuery()}`, {
        names: /accepts_incomplete/,
      }),
      get(
        'instance last_operation, operation of 10 001 characters',
        `${inst}/last_operation?operation=${longOperation}`,
        { names: /operation/ },
      ),
      get(
        'binding last_operation, operation of 10 001 characters',
        `${bnd}/last_operation?operation=${longOperation}`,
        { names: /operation/ },
      ),
      get('instance last_operation, empty operation', `${inst}/last_operation?operation=`, { names: /operation/ }),
      get('instance last_operation, empty service_id', `${inst}/last_operation?service_id=`, { names: /service_id/ }),
      get('instance last_operation, empty plan_id', `${inst}/last_operation?plan_id=`, { names: /plan_id/ }),
      get('binding last_operation, empty service_id', `${bnd}/last_operation?service_id=`, { names: /service_id/ }),
      get('binding last_operation, operation twice', `${bnd}/last_operation?operation=a&operation=b`, {
        names: /operation/,
      }),
      get('instance, empty service_id', `${inst}?service_id=`, { names: /service_id/ }),
      get('binding, empty plan_id', `${bnd}?plan_id=`, { names: /plan_id/ }),
    ]);
  });

  // spec: X-Broker-API-Originating-Identity is "<platform> <base64-encoded JSON object>".
  describe('X-Broker-API-Originating-Identity', () => {
    const identity = (value: string): Extra => ({
      headers: { 'X-Broker-API-Originating-Identity': value },
      names: /Originating-Identity/,
    });
    const malformed: Array<[string, string]> = [
      ['no space', `cloudfoundry${base64('{"user_id":"u1"}')}`],
      ['only a platform', 'cloudfoundry '],
      ['not base64', 'cloudfoundry !!!not-base64!!!'],
      ['base64 of non-JSON', `cloudfoundry ${base64('user_id=u1')}`],
      ['base64 of a JSON array', `cloudfoundry ${base64('[{"user_id":"u1"}]')}`],
      ['base64 of a JSON string', `cloudfoundry ${base64('"u1"')}`],
      ['base64 of null', `cloudfoundry ${base64('null')}`],
      // well-formed JSON that jsonb cannot store: must be a 400, not a database error
      ['U+0000 in a value', `cloudfoundry ${base64('{"user_id":"u1","z":"\\u0000"}')}`],
      ['a lone surrogate', `cloudfoundry ${base64('{"user_id":"\\udc00"}')}`],
      [
        'nesting 5000 deep',
        `cloudfoundry ${base64(`{"user_id":"u1","deep":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`)}`,
      ],
    ];
    table([
      ...malformed.map(([what, value]) => putInstance(`identity with ${what}`, provisionBody(), identity(value))),
      patchInstance('identity not base64', { service_id: SERVICE_ID }, identity('cloudfoundry %%%')),
      deleteInstance(
        'identity of a JSON array',
        `accepts_incomplete=true&${deleteQuery()}`,
        identity(`cloudfoundry ${base64('[]')}`),
      ),
      putBinding('identity without a space', bindBody(), identity('kubernetes')),
      deleteBinding('identity of non-JSON', deleteQuery(), identity(`cloudfoundry ${base64('{')}`)),
    ]);

    it('accepts a well-formed one (202) and records it', async () => {
      const id = randomUUID();
      const res = await osb(depot)
        .put(`${instancePath(id)}${ASYNC}`, provisionBody())
        .set('X-Broker-API-Originating-Identity', `cloudfoundry ${base64('{"user_id":"u1"}')}`);
      assert.equal(res.status, 202, res.text);
      const operation = operationOf(res);
      const { rows } = await depot.depot.pool.query<{ originating_identity: unknown }>(
        'select originating_identity from operations where id = $1',
        [operation],
      );
      assert.deepEqual(unsealed(depot, 'operations', operation, rows[0]!).originating_identity, {
        platform: 'cloudfoundry',
        value: { user_id: 'u1' },
      });
      assert.equal((await waitForOperation(depot, instancePath(id), operation)).state, 'succeeded');
      await deprovisionInstance(depot, id);
    });
  });

  // Express has no 405: an unknown route or method is a 404, as JSON like every other answer.
  describe('unknown routes', () => {
    const status = [404, 405];
    table([
      get('/v2/nothing', '/v2/nothing', { status }),
      get('/nothing (outside /v2)', '/nothing', { status }),
      get('/v3/catalog', '/v3/catalog', { status }),
      get('the bindings of an instance (no listing)', `${inst}/service_bindings`, { status }),
      { name: 'PUT /v2/catalog', method: 'put', path: '/v2/catalog', json: {}, status },
      { name: 'DELETE /v2/catalog', method: 'delete', path: '/v2/catalog', status },
      { name: 'PATCH a binding (no such operation)', method: 'patch', path: bnd, json: bindBody(), status },
      {
        name: 'PUT an instance without an id',
        method: 'put',
        path: `/v2/service_instances/${ASYNC}`,
        json: provisionBody(),
        status,
      },
    ]);

    it('POST /v2/catalog: 404/405 JSON, not HTML', async () => {
      const before = await snapshot();
      const res = await request(depot.baseUrl)
        .post('/v2/catalog')
        .auth(USERNAME, PASSWORD)
        .set('X-Broker-API-Version', API_VERSION)
        .send({ services: [] });
      assert.ok(status.includes(res.status), `answered ${res.status}`);
      assert.match(res.headers['content-type'] ?? '', /^application\/json/);
      assert.ok((res.body as ErrorBody).description);
      assert.doesNotMatch(res.text, /<html|<pre/i);
      assert.deepEqual(await snapshot(), before);
    });
  });

  // Ids and data that look like SQL are plain data: the instance works and nothing is dropped.
  describe('SQL-looking ids and data', () => {
    const sneaky = `'; drop database postgres; --`;
    const cases: Array<[string, string, string]> = [
      ['SQL-injection ids', SQL_INSTANCE_ID, SQL_BINDING_ID],
      ['odd 255-character unicode ids', ODD_ID, fill(`\\'"; drop role postgres; -- ${NASTY}`, 255)],
    ];
    for (const [label, instanceId, bindingId] of cases) {
      it(`provisions, binds, uses, unbinds and deprovisions with ${label}`, async () => {
        await provisionInstance(depot, instanceId, {
          organization_guid: sneaky,
          space_guid: `"; drop role postgres; --`,
          context: { platform: 'cloudfoundry', instance_name: `x'); delete from operations; --`, [sneaky]: sneaky },
        });
        const stored = await depot.depot.pool.query<{ organization_guid: string; context: Record<string, unknown> }>(
          'select organization_guid, context from service_instances where id = $1',
          [instanceId],
        );
        assert.equal(stored.rows[0]?.organization_guid, sneaky);
        assert.equal(unsealed(depot, 'service_instances', instanceId, stored.rows[0]!).context[sneaky], sneaky);
        await osb(depot).get(instancePath(instanceId)).expect(200);

        const bound = await osb(depot).put(bindingPath(instanceId, bindingId), bindBody()).expect(201);
        const { uri } = (bound.body as { credentials: { uri: string } }).credentials;
        const client = new pg.Client({ connectionString: uri });
        await client.connect();
        try {
          await client.query('create table notes (body text)');
          await client.query('insert into notes values ($1)', [`${sneaky}${instanceId}`]);
          const { rows } = await client.query<{ body: string }>('select body from notes');
          assert.equal(rows[0]?.body, `${sneaky}${instanceId}`);
        } finally {
          await client.end();
        }
        await osb(depot).get(bindingPath(instanceId, bindingId)).expect(200);
        await osb(depot)
          .delete(`${bindingPath(instanceId, bindingId)}?${deleteQuery()}`)
          .expect(200);
        await deprovisionInstance(depot, instanceId);

        // Nothing was dropped: Depot's tables, the postgres role and database, the other instance.
        const tables = await depot.depot.pool.query<{ t: string | null }>(
          `select to_regclass(name)::text as t
           from unnest(array['service_instances', 'service_bindings', 'operations']) as name`,
        );
        assert.deepEqual(
          tables.rows.map((r) => r.t),
          ['service_instances', 'service_bindings', 'operations'],
        );
        assert.equal((await adminQuery(`select 1 from pg_roles where rolname = 'postgres'`)).length, 1);
        assert.equal((await adminQuery(`select 1 from pg_database where datname = 'postgres'`)).length, 1);
        const gone = await adminQuery('select 1 from pg_database where datname = $1', [
          postgresNames(instanceId).database,
        ]);
        assert.equal(gone.length, 0);
        await osb(depot).get(inst).expect(200);
        await osb(depot).get(bnd).expect(200);
      });
    }
  });

  // Last: the process is alive, and no request ended as an internal error.
  describe('afterwards', () => {
    it('is still healthy and logged nothing at error level or above', async () => {
      await request(depot.baseUrl).get('/healthz').expect(200);
      await osb(depot).get(inst).expect(200);
      const lines = depot.logs.flatMap((chunk) => chunk.split('\n')).filter((line) => line.trim() !== '');
      const severe = lines.filter((line) => {
        const { level } = JSON.parse(line) as { level?: unknown };
        return typeof level === 'number' && level >= 50;
      });
      assert.deepEqual(severe, [], 'a request was logged as an internal error');
      assert.deepEqual(
        lines.filter((line) => /"status":5\d\d/.test(line)),
        [],
        'a request was answered with a 5xx',
      );
    });
  });
});
