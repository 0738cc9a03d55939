/**
 * Plan schemas, end to end.
 *
 * 1. Over the OSB API, for both offerings (postgresql small/standard, redis shared): every way
 *    parameters can break a plan's service_instance.create, service_instance.update and
 *    service_binding.create schema gets a 400 whose description names each failing field, and
 *    nothing is created or changed (Depot's state rows, the instance's database and login roles,
 *    the instance's Redis ACL users, the instance's parameters and plan). Valid parameters are
 *    accepted and take effect on the servers.
 * 2. The catalog file rules that Cloud Foundry applies to plan schemas and services at
 *    `cf create-service-broker` (cloud_controller_ng catalog_service.rb, catalog_plan.rb,
 *    catalog_schemas.rb), through buildCatalog.
 *
 * Server-side checks look at the names this file's instances and bindings would get (they are
 * derived from the ids), not at every `depot_%` database or ACL user on the servers: other test
 * files and benchmarks share them and create their own meanwhile.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { parse as parseYaml } from 'yaml';
import { buildCatalog, DEFAULT_CATALOG_FILE } from '../broker/catalog/catalog-file.js';
import { withDatabase } from '../broker/config.js';
import { createLogger } from '../runtime/logger.js';
import { MysqlOffering } from '../broker/offerings/mysql/mysql-offering.js';
import { PostgresqlOffering, postgresNames } from '../broker/offerings/postgresql/postgresql-offering.js';
import { RabbitmqOffering } from '../broker/offerings/rabbitmq/rabbitmq-offering.js';
import { RedisOffering, redisNames, type RedisCredentials } from '../broker/offerings/redis/redis-offering.js';
import {
  ADMIN_URL,
  ASYNC,
  REDIS_PLAN_ID,
  REDIS_SERVICE_ID,
  REDIS_URL,
  bindingRedis,
  tenantRedisUrl,
  SERVICE_ID,
  SMALL_PLAN_ID,
  STANDARD_PLAN_ID,
  adminQuery,
  bindBody,
  bindingPath,
  deleteQuery,
  instancePath,
  operationOf,
  osb,
  provisionBody,
  provisionInstance,
  startDepot,
  stateCounts,
  waitForOperation,
  type TestDepot,
} from './helpers.js';
import { MYSQL_SERVICE_ID, MYSQL_SMALL_PLAN_ID, MYSQL_STANDARD_PLAN_ID } from './mysql-helpers.js';
import { RABBITMQ_PLAN_ID, RABBITMQ_SERVICE_ID } from './rabbitmq-helpers.js';

const DRAFT_04 = 'http://json-schema.org/draft-04/schema#';

/** The extension names the postgresql plans allow, in the catalog's order. */
const ALLOWED_EXTENSIONS = [
  'btree_gin',
  'btree_gist',
  'citext',
  'fuzzystrmatch',
  'hstore',
  'intarray',
  'ltree',
  'pg_trgm',
  'pgcrypto',
  'tablefunc',
  'unaccent',
  'uuid-ossp',
];
const ENUM_CLAUSE = `must be one of ${ALLOWED_EXTENSIONS.map((e) => JSON.stringify(e)).join(', ')}`;

// ---- Ids ----

/** A postgresql instance (small, extensions ["citext"]) that exists during the whole file. */
const PG_ID = randomUUID();
/** A redis instance that exists during the whole file. */
const REDIS_ID = randomUUID();
/** Ids that a rejected request names and must not create. */
const NEW_PG_ID = randomUUID();
const NEW_REDIS_ID = randomUUID();
const NEW_PG_BINDING_ID = randomUUID();
const NEW_REDIS_BINDING_ID = randomUUID();

const redisBody = (overrides: Record<string, unknown> = {}) =>
  provisionBody({ service_id: REDIS_SERVICE_ID, plan_id: REDIS_PLAN_ID, ...overrides });
const redisBindBody = (overrides: Record<string, unknown> = {}) =>
  bindBody({ service_id: REDIS_SERVICE_ID, plan_id: REDIS_PLAN_ID, ...overrides });
const redisDeleteQuery = `service_id=${REDIS_SERVICE_ID}&plan_id=${REDIS_PLAN_ID}`;

type SchemaName = 'service_instance.create' | 'service_instance.update' | 'service_binding.create';

/** A request whose parameters break a plan schema. */
interface SchemaCase {
  name: string;
  method: 'put' | 'patch';
  path: string;
  body: object;
  schema: SchemaName;
  /** Exactly the clauses the description must list, one per failing field (in any order). */
  clauses: string[];
}

const provisionPg = (name: string, parameters: unknown, clauses: string[]): SchemaCase => ({
  name: `postgresql provision: ${name}`,
  method: 'put',
  path: `${instancePath(NEW_PG_ID)}${ASYNC}`,
  body: provisionBody({ parameters }),
  schema: 'service_instance.create',
  clauses,
});
const updatePg = (
  name: string,
  parameters: unknown,
  clauses: string[],
  extra: Record<string, unknown> = {},
): SchemaCase => ({
  name: `postgresql update: ${name}`,
  method: 'patch',
  path: `${instancePath(PG_ID)}${ASYNC}`,
  body: { service_id: SERVICE_ID, parameters, ...extra },
  schema: 'service_instance.update',
  clauses,
});
const bindPg = (name: string, parameters: unknown, clauses: string[]): SchemaCase => ({
  name: `postgresql bind: ${name}`,
  method: 'put',
  path: bindingPath(PG_ID, NEW_PG_BINDING_ID),
  body: bindBody({ parameters }),
  schema: 'service_binding.create',
  clauses,
});
const provisionRedis = (name: string, parameters: unknown, clauses: string[]): SchemaCase => ({
  name: `redis provision: ${name}`,
  method: 'put',
  path: `${instancePath(NEW_REDIS_ID)}${ASYNC}`,
  body: redisBody({ parameters }),
  schema: 'service_instance.create',
  clauses,
});
const updateRedis = (name: string, parameters: unknown, clauses: string[]): SchemaCase => ({
  name: `redis update: ${name}`,
  method: 'patch',
  path: `${instancePath(REDIS_ID)}${ASYNC}`,
  body: { service_id: REDIS_SERVICE_ID, parameters },
  schema: 'service_instance.update',
  clauses,
});
const bindRedis = (name: string, parameters: unknown, clauses: string[]): SchemaCase => ({
  name: `redis bind: ${name}`,
  method: 'put',
  path: bindingPath(REDIS_ID, NEW_REDIS_BINDING_ID),
  body: redisBindBody({ parameters }),
  schema: 'service_binding.create',
  clauses,
});

/** The postgresql create and update schemas are the same: the same cases for both. */
const extensionCases: Array<[string, unknown, string[]]> = [
  ['extensions of the wrong type (a string)', { extensions: 'citext' }, ['parameters.extensions must be array']],
  [
    'extensions of the wrong type (an object)',
    { extensions: { citext: true } },
    ['parameters.extensions must be array'],
  ],
  ['an extension outside the enum', { extensions: ['postgis'] }, [`parameters.extensions[0] ${ENUM_CLAUSE}`]],
  [
    'several items outside the enum (each named)',
    { extensions: ['citext', 'plpython3u', 5] },
    [`parameters.extensions[1] ${ENUM_CLAUSE}`, `parameters.extensions[2] ${ENUM_CLAUSE}`],
  ],
  [
    'duplicate items (uniqueItems)',
    { extensions: ['citext', 'hstore', 'citext'] },
    ['parameters.extensions must NOT have duplicate items (items ## 0 and 2 are identical)'],
  ],
  ['an unknown property', { size: 3 }, ['parameters.size is not an allowed property']],
  [
    'two bad fields: an enum violation and an unknown property',
    { extensions: ['nope'], foo: 1 },
    [`parameters.extensions[0] ${ENUM_CLAUSE}`, 'parameters.foo is not an allowed property'],
  ],
  [
    'three bad fields: wrong type and two unknown properties',
    { extensions: 'citext', foo: 1, bar: true },
    [
      'parameters.extensions must be array',
      'parameters.foo is not an allowed property',
      'parameters.bar is not an allowed property',
    ],
  ],
];

/** The redis instance schemas take no property at all. */
const noPropertyCases: Array<[string, unknown, string[]]> = [
  ['any property (extensions)', { extensions: ['citext'] }, ['parameters.extensions is not an allowed property']],
  [
    'any property (read_only, which only binding takes)',
    { read_only: true },
    ['parameters.read_only is not an allowed property'],
  ],
  [
    'two properties (each named)',
    { maxmemory: '1gb', key_prefix: 'x' },
    ['parameters.maxmemory is not an allowed property', 'parameters.key_prefix is not an allowed property'],
  ],
];

const CASES: SchemaCase[] = [
  ...extensionCases.map(([name, parameters, clauses]) => provisionPg(name, parameters, clauses)),
  ...extensionCases.map(([name, parameters, clauses]) => updatePg(name, parameters, clauses)),
  updatePg(
    'bad parameters with a plan change to standard (the target plan is not taken either)',
    { extensions: ['hstore', 'hstore'], foo: 1 },
    [
      'parameters.extensions must NOT have duplicate items (items ## 0 and 1 are identical)',
      'parameters.foo is not an allowed property',
    ],
    { plan_id: STANDARD_PLAN_ID },
  ),
  bindPg('an unknown property', { read_only: true }, ['parameters.read_only is not an allowed property']),
  bindPg('two unknown properties (each named)', { role: 'admin', schema: 'public' }, [
    'parameters.role is not an allowed property',
    'parameters.schema is not an allowed property',
  ]),
  ...noPropertyCases.map(([name, parameters, clauses]) => provisionRedis(name, parameters, clauses)),
  ...noPropertyCases.map(([name, parameters, clauses]) => updateRedis(name, parameters, clauses)),
  bindRedis('read_only: "yes"', { read_only: 'yes' }, ['parameters.read_only must be boolean']),
  bindRedis('read_only: 1', { read_only: 1 }, ['parameters.read_only must be boolean']),
  bindRedis('read_only: null', { read_only: null }, ['parameters.read_only must be boolean']),
  bindRedis('an unknown property', { ttl: 60 }, ['parameters.ttl is not an allowed property']),
  bindRedis('two bad fields: read_only of the wrong type and an unknown property', { read_only: 'yes', foo: 1 }, [
    'parameters.foo is not an allowed property',
    'parameters.read_only must be boolean',
  ]),
];

interface ErrorBody {
  description?: unknown;
  error?: unknown;
}

interface InstanceBody {
  service_id: string;
  plan_id: string;
  parameters: Record<string, unknown>;
}

describe('plan schemas over the OSB API', () => {
  let depot: TestDepot;
  let redisAdmin: Redis;

  before(async () => {
    depot = await startDepot('plan-schemas');
    redisAdmin = new Redis(await tenantRedisUrl(), { enableReadyCheck: false, maxRetriesPerRequest: 2 });
    await Promise.all([
      provisionInstance(depot, PG_ID, { parameters: { extensions: ['citext'] } }),
      provisionInstance(depot, REDIS_ID, { service_id: REDIS_SERVICE_ID, plan_id: REDIS_PLAN_ID, parameters: {} }),
    ]);
  });
  after(async () => {
    redisAdmin?.disconnect();
    await depot?.close();
  });

  const getInstance = async (id: string) => (await osb(depot).get(instancePath(id)).expect(200)).body as InstanceBody;

  /** What a schema-breaking request could have created or changed, anywhere. */
  async function world() {
    const counts = await stateCounts(depot);
    const digest = (table: string) =>
      `(select coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from ${table} t)`;
    const { rows } = await depot.depot.pool.query<Record<string, string>>(
      `select ${digest('service_instances')} as instances, ${digest('service_bindings')} as bindings,
              ${digest('operations')} as operations`,
    );
    const pgDatabases = [PG_ID, NEW_PG_ID].map((id) => postgresNames(id).database);
    const databases = await adminQuery<{ datname: string }>(
      'select datname from pg_database where datname = any($1) order by 1',
      [pgDatabases],
    );
    // Every role of the existing instance (its owner and one login per binding) starts so.
    const rolePrefix = `${postgresNames(PG_ID).database}_`;
    const roles = await adminQuery<{ rolname: string }>(
      'select rolname from pg_roles where left(rolname, length($1)) = $1 order by 1',
      [rolePrefix],
    );
    const prefixes = [REDIS_ID, NEW_REDIS_ID].map((id) => redisNames(id).userPrefix);
    const aclUsers = ((await redisAdmin.call('ACL', 'USERS')) as string[])
      .filter((u) => prefixes.some((p) => u.startsWith(p)))
      .sort();
    return {
      counts,
      contents: rows[0],
      databases: databases.map((r) => r.datname),
      roles: roles.map((r) => r.rolname),
      aclUsers,
      pgInstance: await getInstance(PG_ID),
      redisInstance: await getInstance(REDIS_ID),
    };
  }

  describe('schema failures: 400 naming each failing field, nothing created or changed', () => {
    for (const c of CASES) {
      it(c.name, async () => {
        const before = await world();
        const res = await osb(depot)[c.method](c.path, c.body);
        assert.equal(res.status, 400, `answered ${res.status}: ${res.text}`);
        assert.match(res.headers['content-type'] ?? '', /^application\/json/);
        const { description } = res.body as ErrorBody;
        assert.equal(typeof description, 'string', `no description in ${res.text}`);
        const prefix = `parameters do not match the plan's ${c.schema} schema: `;
        const text = description as string;
        assert.ok(text.startsWith(prefix), `description does not start with ${JSON.stringify(prefix)}: ${text}`);
        assert.ok(text.endsWith('.'), text);
        const clauses = text.slice(prefix.length, -1).split('; ');
        assert.deepEqual([...clauses].sort(), [...c.clauses].sort(), `description: ${text}`);

        const after = await world();
        assert.deepEqual(after, before, 'a rejected request created or changed something');
        // The would-be instance's database and Redis users do not exist at all.
        assert.ok(!after.databases.includes(postgresNames(NEW_PG_ID).database));
        assert.deepEqual(
          after.aclUsers.filter((u) => u.startsWith(redisNames(NEW_REDIS_ID).userPrefix)),
          [],
        );
        if (c.method === 'patch') {
          // The instance keeps its parameters and its plan.
          const instance = c.path.startsWith(instancePath(PG_ID)) ? after.pgInstance : after.redisInstance;
          assert.deepEqual(
            instance.parameters,
            c.path.startsWith(instancePath(PG_ID)) ? { extensions: ['citext'] } : {},
          );
          assert.equal(instance.plan_id, c.path.startsWith(instancePath(PG_ID)) ? SMALL_PLAN_ID : REDIS_PLAN_ID);
        }
      });
    }

    it('a rejected provision leaves the id free: the same id is then provisioned with valid parameters', async () => {
      const id = randomUUID();
      await osb(depot)
        .put(`${instancePath(id)}${ASYNC}`, provisionBody({ parameters: { extensions: ['citext', 'citext'] } }))
        .expect(400);
      await osb(depot).get(instancePath(id)).expect(404);
      await provisionInstance(depot, id, { parameters: { extensions: ['ltree'] } });
      assert.deepEqual((await getInstance(id)).parameters, { extensions: ['ltree'] });
      const res = await osb(depot)
        .delete(`${instancePath(id)}${ASYNC}&${deleteQuery()}`)
        .expect(202);
      assert.equal((await waitForOperation(depot, instancePath(id), operationOf(res))).state, 'succeeded');
    });
  });

  describe('valid parameters are accepted', () => {
    it('postgresql provision with extensions ["citext"] creates the extension in the instance database', async () => {
      assert.deepEqual((await getInstance(PG_ID)).parameters, { extensions: ['citext'] });
      const client = new pg.Client({ connectionString: withDatabase(ADMIN_URL, postgresNames(PG_ID).database) });
      await client.connect();
      try {
        const { rows } = await client.query<{ extname: string }>(
          `select extname from pg_extension where extname <> 'plpgsql' order by 1`,
        );
        assert.deepEqual(
          rows.map((r) => r.extname),
          ['citext'],
        );
        const same = await client.query<{ same: boolean }>(`select 'Depot'::citext = 'DEPOT'::citext as same`);
        assert.equal(same.rows[0]?.same, true);
      } finally {
        await client.end();
      }
    });

    it('postgresql update with extensions ["citext", "hstore"] is accepted and creates hstore', async () => {
      const res = await osb(depot).patch(`${instancePath(PG_ID)}${ASYNC}`, {
        service_id: SERVICE_ID,
        parameters: { extensions: ['citext', 'hstore'] },
      });
      assert.equal(res.status, 202, res.text);
      assert.equal((await waitForOperation(depot, instancePath(PG_ID), operationOf(res))).state, 'succeeded');
      assert.deepEqual((await getInstance(PG_ID)).parameters, { extensions: ['citext', 'hstore'] });
      const client = new pg.Client({ connectionString: withDatabase(ADMIN_URL, postgresNames(PG_ID).database) });
      await client.connect();
      try {
        const { rows } = await client.query<{ extname: string }>(
          `select extname from pg_extension where extname in ('citext', 'hstore') order by 1`,
        );
        assert.deepEqual(
          rows.map((r) => r.extname),
          ['citext', 'hstore'],
        );
      } finally {
        await client.end();
      }
    });

    it('postgresql bind with empty parameters {} is accepted (the binding schema has no properties)', async () => {
      const bindingId = randomUUID();
      const res = await osb(depot).put(bindingPath(PG_ID, bindingId), bindBody({ parameters: {} }));
      assert.equal(res.status, 201, res.text);
      const login = postgresNames(PG_ID, bindingId).login!;
      assert.equal((await adminQuery('select 1 from pg_roles where rolname = $1', [login])).length, 1);
      await osb(depot)
        .delete(`${bindingPath(PG_ID, bindingId)}?${deleteQuery()}`)
        .expect(200);
      assert.equal((await adminQuery('select 1 from pg_roles where rolname = $1', [login])).length, 0);
    });

    it('redis update with empty parameters {} is accepted and changes nothing', async () => {
      const res = await osb(depot).patch(`${instancePath(REDIS_ID)}${ASYNC}`, {
        service_id: REDIS_SERVICE_ID,
        parameters: {},
      });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual((await getInstance(REDIS_ID)).parameters, {});
    });

    /** Binds the redis instance with `parameters` and connects as the binding's user. */
    async function redisBinding(parameters: Record<string, unknown>) {
      const bindingId = randomUUID();
      const res = await osb(depot).put(bindingPath(REDIS_ID, bindingId), redisBindBody({ parameters }));
      assert.equal(res.status, 201, res.text);
      const credentials = (res.body as { credentials: RedisCredentials }).credentials;
      assert.equal(credentials.key_prefix, redisNames(REDIS_ID).keyPrefix);
      const client = bindingRedis(credentials.uri);
      return {
        credentials,
        client,
        async unbind() {
          client.disconnect();
          await osb(depot)
            .delete(`${bindingPath(REDIS_ID, bindingId)}?${redisDeleteQuery}`)
            .expect(200);
          const users = (await redisAdmin.call('ACL', 'USERS')) as string[];
          assert.ok(!users.includes(credentials.username), 'the binding user is still there after unbind');
        },
      };
    }

    it('redis bind with read_only: true gives a user that can GET but not SET under its key_prefix', async () => {
      const { credentials, client, unbind } = await redisBinding({ read_only: true });
      try {
        const key = `${credentials.key_prefix}greeting`;
        await redisAdmin.set(key, 'hello');
        assert.equal(await client.get(key), 'hello');
        assert.equal(await client.exists(key), 1);
        await assert.rejects(client.set(key, 'overwritten'), /NOPERM/);
        await assert.rejects(client.set(`${credentials.key_prefix}new-key`, 'x'), /NOPERM/);
        await assert.rejects(client.del(key), /NOPERM/);
        assert.equal(await redisAdmin.get(key), 'hello');
        assert.equal(await redisAdmin.exists(`${credentials.key_prefix}new-key`), 0);
      } finally {
        await unbind();
      }
    });

    it('redis bind with read_only: false (or no parameters): a user that can SET under its key_prefix', async () => {
      for (const parameters of [{ read_only: false }, {}]) {
        const { credentials, client, unbind } = await redisBinding(parameters);
        try {
          const key = `${credentials.key_prefix}writable-${randomUUID()}`;
          assert.equal(await client.set(key, 'written'), 'OK');
          assert.equal(await client.get(key), 'written');
          assert.equal(await redisAdmin.get(key), 'written');
        } finally {
          await unbind();
        }
      }
    });
  });
});

describe('catalog rules as Cloud Foundry applies them at cf create-service-broker', () => {
  const logger = createLogger('silent');
  const postgresql = new PostgresqlOffering({ serviceUrl: ADMIN_URL, logger });
  const redis = new RedisOffering({ serviceUrl: REDIS_URL, logger });
  const mysql = new MysqlOffering({ serviceUrl: 'mysql://root@127.0.0.1:3306', logger });
  const rabbitmq = new RabbitmqOffering({ serviceUrl: 'http://guest:guest@127.0.0.1:15672', logger });
  const offerings = [postgresql, redis, mysql, rabbitmq];
  after(async () => Promise.all([postgresql.close(), redis.close(), mysql.close(), rabbitmq.close()]));

  const objectSchema = (extra: Record<string, unknown> = {}) => ({
    $schema: DRAFT_04,
    type: 'object',
    additionalProperties: false,
    properties: {},
    ...extra,
  });
  const schemas = (overrides: { create?: unknown; update?: unknown; bind?: unknown } = {}) => ({
    service_instance: {
      create: { parameters: overrides.create ?? objectSchema() },
      update: { parameters: overrides.update ?? objectSchema() },
    },
    service_binding: { create: { parameters: overrides.bind ?? objectSchema() } },
  });
  const plan = (overrides: Record<string, unknown> = {}) => ({
    id: 'plan-small',
    name: 'small',
    description: 'A plan',
    maintenance_info: { version: '1.0.0', description: 'first' },
    'x-depot': { connection_limit: 5 },
    schemas: schemas(),
    ...overrides,
  });
  const redisPlan = (overrides: Record<string, unknown> = {}) => ({
    id: 'plan-shared',
    name: 'shared',
    description: 'A plan',
    schemas: schemas(),
    ...overrides,
  });
  /** Two services: postgresql (services[0]) and redis (services[1]), each with one plan. */
  const document = (pgOverrides: Record<string, unknown> = {}, redisOverrides: Record<string, unknown> = {}) => ({
    services: [
      {
        id: 'service-postgresql',
        name: 'postgresql',
        description: 'A service',
        bindable: true,
        'x-depot': { offering: 'postgresql' },
        plans: [plan()],
        ...pgOverrides,
      },
      {
        id: 'service-redis',
        name: 'redis',
        description: 'Another service',
        bindable: true,
        'x-depot': { offering: 'redis' },
        plans: [redisPlan()],
        ...redisOverrides,
      },
    ],
  });

  /** buildCatalog refuses the document with exactly one problem, which matches `problem`. */
  function refuses(doc: unknown, problem: RegExp): void {
    assert.throws(
      () => buildCatalog(doc, offerings),
      (error: Error) => {
        assert.equal(error.name, 'CatalogError');
        const problems = error.message
          .split('\n')
          .slice(1)
          .map((line) => line.replace(/^\s*- /, ''));
        assert.equal(problems.length, 1, `expected one problem, got: ${error.message}`);
        assert.match(problems[0]!, problem);
        return true;
      },
    );
  }

  it('accepts the two-service document these tests start from', () => {
    const catalog = buildCatalog(document(), offerings);
    assert.ok(catalog.plan('service-postgresql', 'plan-small'));
    assert.ok(catalog.plan('service-redis', 'plan-shared'));
  });

  // Cloud Foundry validates plan schemas against the draft-04 meta-schema only; any other
  // $schema is "Custom meta schemas are not supported."
  const positions: Array<['create' | 'update' | 'bind', SchemaName]> = [
    ['create', 'service_instance.create'],
    ['update', 'service_instance.update'],
    ['bind', 'service_binding.create'],
  ];
  for (const draft of ['http://json-schema.org/draft-07/schema#', 'https://json-schema.org/draft/2020-12/schema']) {
    for (const [position, name] of positions) {
      it(`refuses a ${name} schema with $schema ${draft}, naming the plan and draft-04`, () => {
        const escaped = draft.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
        refuses(
          document({}, { plans: [redisPlan({ schemas: schemas({ [position]: objectSchema({ $schema: draft }) }) })] }),
          new RegExp(
            `^services\\[1\\] \\(redis\\)\\.plans\\[0\\] \\(shared\\): ` +
              `schema ${name.replace('.', '\\.')} is invalid: .*draft-04.*${escaped}`,
          ),
        );
      });
    }
  }

  const metaSchemaViolations: Array<[string, Record<string, unknown>, RegExp]> = [
    ["type: 'objekt'", { type: 'objekt' }, /data\/type must be equal to one of the allowed values/],
    [
      'exclusiveMinimum as a number (draft-06 style; draft-04 wants a boolean)',
      { properties: { size: { type: 'integer', minimum: 1, exclusiveMinimum: 5 } } },
      /data\/properties\/size\/exclusiveMinimum must be boolean/,
    ],
    [
      'an empty required list (draft-04: minItems 1)',
      { required: [] },
      /data\/required must NOT have fewer than 1 items/,
    ],
    ['properties as an array', { properties: ['extensions'] }, /data\/properties must be object/],
  ];
  for (const [what, extra, detail] of metaSchemaViolations) {
    it(`refuses a draft-04 schema that the draft-04 meta-schema rejects: ${what}`, () => {
      refuses(
        document({ plans: [plan({ schemas: schemas({ update: objectSchema(extra) }) })] }),
        new RegExp(
          `^services\\[0\\] \\(postgresql\\)\\.plans\\[0\\] \\(small\\): ` +
            `schema service_instance\\.update is invalid: schema is invalid: ${detail.source}`,
        ),
      );
    });
  }

  it('accepts "http://json-schema.org/draft-04/schema" without the trailing #', () => {
    buildCatalog(
      document({
        plans: [
          plan({ schemas: schemas({ bind: objectSchema({ $schema: 'http://json-schema.org/draft-04/schema' }) }) }),
        ],
      }),
      offerings,
    );
  });

  // cloud_controller_ng catalog_schemas.rb validate_schema_type: 'must have field "type", with
  // value "object"'.
  it('refuses a plan schema whose root type is not "object"', () => {
    for (const bad of [
      { $schema: DRAFT_04, properties: {} },
      { $schema: DRAFT_04, type: 'array' },
    ]) {
      refuses(
        document({ plans: [plan({ schemas: schemas({ create: bad }) })] }),
        /services\[0\] \(postgresql\)\.plans\[0\] \(small\).*type/,
      );
    }
  });

  it('accepts tags totalling exactly 2048 characters', () => {
    buildCatalog(document({}, { tags: ['a'.repeat(1024), 'b'.repeat(1000), 'c'.repeat(24)] }), offerings);
  });

  it('refuses tags totalling 2049 characters, naming the service', () => {
    refuses(
      document({}, { tags: ['a'.repeat(1024), 'b'.repeat(1000), 'c'.repeat(25)] }),
      /^services\[1\] \(redis\): tags total 2049 characters; Cloud Foundry allows 2048$/,
    );
  });

  const dashboardClient = (id: string) => ({ id, secret: 'a-secret', redirect_uri: 'https://dashboard.example.com' });

  it('accepts two services with different dashboard_client ids', () => {
    buildCatalog(
      document({ dashboard_client: dashboardClient('client-a') }, { dashboard_client: dashboardClient('client-b') }),
      offerings,
    );
  });

  it('refuses two services with the same dashboard_client.id, naming the second', () => {
    refuses(
      document({ dashboard_client: dashboardClient('client-a') }, { dashboard_client: dashboardClient('client-a') }),
      /^services\[1\] \(redis\): dashboard_client\.id is used twice$/,
    );
  });

  /** A maintenance_info whose JSON is exactly `length` characters. */
  const maintenanceInfo = (length: number) => {
    const base = JSON.stringify({ version: '1.0.0', description: '' }).length;
    const info = { version: '1.0.0', description: 'x'.repeat(length - base) };
    assert.equal(JSON.stringify(info).length, length);
    return info;
  };

  it('accepts a maintenance_info of exactly 2000 characters of JSON', () => {
    buildCatalog(document({}, { plans: [redisPlan({ maintenance_info: maintenanceInfo(2000) })] }), offerings);
  });

  it('refuses a maintenance_info of 2001 characters of JSON, naming the plan', () => {
    refuses(
      document({}, { plans: [redisPlan({ maintenance_info: maintenanceInfo(2001) })] }),
      /^services\[1\] \(redis\)\.plans\[0\] \(shared\): maintenance_info is longer than 2000 characters of JSON$/,
    );
  });

  it('reports every problem of a catalog at once, each naming its service or plan', () => {
    assert.throws(
      () =>
        buildCatalog(
          document(
            {
              dashboard_client: dashboardClient('same'),
              plans: [
                plan({
                  schemas: schemas({ create: objectSchema({ $schema: 'http://json-schema.org/draft-07/schema#' }) }),
                }),
              ],
            },
            {
              dashboard_client: dashboardClient('same'),
              tags: ['t'.repeat(2049)],
              plans: [
                redisPlan({
                  maintenance_info: maintenanceInfo(2001),
                  schemas: schemas({ bind: objectSchema({ type: 'objekt' }) }),
                }),
              ],
            },
          ),
          offerings,
        ),
      (error: Error) => {
        const problems = error.message.split('\n').slice(1);
        assert.equal(problems.length, 5, error.message);
        assert.match(
          error.message,
          /services\[0\] \(postgresql\)\.plans\[0\] \(small\): schema service_instance\.create is invalid: .*draft-04/,
        );
        assert.match(error.message, /services\[1\] \(redis\): tags total 2049 characters/);
        assert.match(error.message, /services\[1\] \(redis\): dashboard_client\.id is used twice/);
        assert.match(
          error.message,
          /services\[1\] \(redis\)\.plans\[0\] \(shared\): maintenance_info is longer than 2000/,
        );
        assert.match(
          error.message,
          /services\[1\] \(redis\)\.plans\[0\] \(shared\): schema service_binding\.create is invalid: .*type/,
        );
        return true;
      },
    );
  });

  it('passes the built-in default catalog, every plan with compiled create, update and bind schemas', async () => {
    const doc: unknown = parseYaml(await readFile(DEFAULT_CATALOG_FILE, 'utf8'), { merge: true });
    const catalog = buildCatalog(doc, offerings, DEFAULT_CATALOG_FILE);
    const plans: Array<[string, string]> = [
      [SERVICE_ID, SMALL_PLAN_ID],
      [SERVICE_ID, STANDARD_PLAN_ID],
      [REDIS_SERVICE_ID, REDIS_PLAN_ID],
      [MYSQL_SERVICE_ID, MYSQL_SMALL_PLAN_ID],
      [MYSQL_SERVICE_ID, MYSQL_STANDARD_PLAN_ID],
      [RABBITMQ_SERVICE_ID, RABBITMQ_PLAN_ID],
    ];
    assert.equal(catalog.response.services.flatMap((s) => s.plans).length, plans.length);
    for (const [serviceId, planId] of plans) {
      const entry = catalog.plan(serviceId, planId);
      assert.ok(entry, `plan ${planId}`);
      for (const validate of [entry.validate.provision, entry.validate.update, entry.validate.bind]) {
        assert.equal(typeof validate, 'function', `plan ${entry.plan.name}`);
      }
      const tags = (entry.service.tags ?? []).join('').length;
      assert.ok(tags <= 2048);
      if (entry.plan.maintenance_info) assert.ok(JSON.stringify(entry.plan.maintenance_info).length <= 2000);
    }
  });
});
