import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import type { CatalogResponse } from '../osb/index.js';
import { buildCatalog, loadCatalogFile } from '../broker/catalog/catalog-file.js';
import { MysqlOffering } from '../broker/offerings/mysql/mysql-offering.js';
import { PostgresqlOffering } from '../broker/offerings/postgresql/postgresql-offering.js';
import { RabbitmqOffering } from '../broker/offerings/rabbitmq/rabbitmq-offering.js';
import { RedisOffering } from '../broker/offerings/redis/redis-offering.js';
import { createLogger } from '../runtime/logger.js';
import { ADMIN_URL, API_VERSION, REDIS_URL, PASSWORD, USERNAME, osb, startDepot, type TestDepot } from './helpers.js';

describe('GET /v2/catalog', () => {
  let depot: TestDepot;
  before(async () => {
    depot = await startDepot('catalog');
  });
  after(async () => depot.close());

  it('serves postgresql, redis, mysql and rabbitmq with their plans, without x-depot keys', async () => {
    const res = await osb(depot).get('/v2/catalog').expect(200);
    assert.match(res.headers['content-type']!, /^application\/json/);
    const services = (res.body as { services: Array<Record<string, unknown>> }).services;
    assert.deepEqual(
      services.map((s) => s.name),
      ['postgresql', 'redis', 'mysql', 'rabbitmq'],
    );
    const [postgresql, redis, mysql, rabbitmq] = services as [
      Record<string, unknown>,
      Record<string, unknown>,
      Record<string, unknown>,
      Record<string, unknown>,
    ];
    assert.equal(postgresql.bindable, true);
    assert.equal(postgresql.plan_updateable, true);
    assert.equal(postgresql.instances_retrievable, true);
    assert.equal(postgresql.bindings_retrievable, true);
    assert.deepEqual(
      (postgresql.plans as Array<{ name: string }>).map((p) => p.name),
      ['small', 'standard'],
    );
    assert.equal(redis.bindable, true);
    assert.equal(redis.plan_updateable, false);
    assert.equal(redis.bindings_retrievable, true);
    assert.deepEqual(
      (redis.plans as Array<{ name: string; binding_rotatable?: boolean }>).map((p) => [p.name, p.binding_rotatable]),
      [['shared', true]],
    );
    assert.equal(mysql.bindable, true);
    assert.equal(mysql.plan_updateable, true);
    assert.equal(mysql.bindings_retrievable, true);
    assert.deepEqual(
      (mysql.plans as Array<{ name: string; binding_rotatable?: boolean }>).map((p) => [p.name, p.binding_rotatable]),
      [
        ['small', true],
        ['standard', true],
      ],
    );
    assert.equal(rabbitmq.bindable, true);
    assert.equal(rabbitmq.plan_updateable, false);
    assert.equal(rabbitmq.bindings_retrievable, true);
    assert.deepEqual(
      (rabbitmq.plans as Array<{ name: string; binding_rotatable?: boolean }>).map((p) => [
        p.name,
        p.binding_rotatable,
      ]),
      [['shared', true]],
    );
    assert.equal(JSON.stringify(res.body).includes('x-depot'), false);
  });

  it('every built-in plan declares draft-04 schemas for instance create and update and binding create', async () => {
    const res = await osb(depot).get('/v2/catalog').expect(200);
    const plans = (res.body as CatalogResponse).services.flatMap((s) => s.plans);
    assert.equal(plans.length, 6);
    for (const plan of plans) {
      for (const schema of [
        plan.schemas?.service_instance?.create?.parameters,
        plan.schemas?.service_instance?.update?.parameters,
        plan.schemas?.service_binding?.create?.parameters,
      ]) {
        assert.equal(schema?.$schema, 'http://json-schema.org/draft-04/schema#', `plan ${plan.name}`);
        assert.equal(schema?.additionalProperties, false, `plan ${plan.name}`);
      }
    }
  });

  it('answers 304 to a matching If-None-Match', async () => {
    const first = await osb(depot).get('/v2/catalog').expect(200);
    const etag = first.headers.etag!;
    assert.ok(etag);
    await osb(depot).get('/v2/catalog').set('If-None-Match', etag).expect(304);
  });

  it('echoes X-Broker-API-Request-Identity, and makes one up when none is sent', async () => {
    const res = await osb(depot).get('/v2/catalog').set('X-Broker-API-Request-Identity', 'req-123').expect(200);
    assert.equal(res.headers['x-broker-api-request-identity'], 'req-123');
    const generated = await osb(depot).get('/v2/catalog').expect(200);
    assert.match(generated.headers['x-broker-api-request-identity']!, /^[0-9a-f-]{36}$/);
  });

  for (const version of ['2.13', '2.14', '2.15', '2.16', '2.17']) {
    it(`accepts X-Broker-API-Version ${version}`, async () => {
      await request(depot.baseUrl)
        .get('/v2/catalog')
        .auth(USERNAME, PASSWORD)
        .set('X-Broker-API-Version', version)
        .expect(200);
    });
  }

  for (const version of [undefined, '', '2.12', '2.18', '3.0', '1.17', 'latest', '2.17.1']) {
    it(`answers 412 with a JSON error for X-Broker-API-Version ${JSON.stringify(version)}`, async () => {
      const req = request(depot.baseUrl).get('/v2/catalog').auth(USERNAME, PASSWORD);
      if (version !== undefined) req.set('X-Broker-API-Version', version);
      const res = await req.expect(412);
      assert.match(res.headers['content-type']!, /^application\/json/);
      assert.match((res.body as { description: string }).description, /X-Broker-API-Version/);
    });
  }

  it('answers 401 without credentials, with wrong ones, and checks them before the version', async () => {
    const none = await request(depot.baseUrl).get('/v2/catalog').set('X-Broker-API-Version', API_VERSION).expect(401);
    assert.match(none.headers['www-authenticate']!, /^Basic/);
    assert.ok((none.body as { description: string }).description);
    await request(depot.baseUrl)
      .get('/v2/catalog')
      .auth(USERNAME, 'wrong')
      .set('X-Broker-API-Version', API_VERSION)
      .expect(401);
    await request(depot.baseUrl)
      .get('/v2/catalog')
      .auth('wrong', PASSWORD)
      .set('X-Broker-API-Version', API_VERSION)
      .expect(401);
    await request(depot.baseUrl)
      .get('/v2/catalog')
      .set('Authorization', 'Bearer x')
      .set('X-Broker-API-Version', API_VERSION)
      .expect(401);
    // auth comes first: a bad version without credentials is still a 401
    await request(depot.baseUrl).get('/v2/catalog').set('X-Broker-API-Version', '9.9').expect(401);
  });
});

describe('catalog file validation', () => {
  const logger = createLogger('silent');
  const offering = new PostgresqlOffering({ serviceUrl: ADMIN_URL, logger });
  const redisOffering = new RedisOffering({ serviceUrl: REDIS_URL, logger });
  const rabbitmqOffering = new RabbitmqOffering({ serviceUrl: 'http://guest:guest@127.0.0.1:15672', logger });
  const mysqlOffering = new MysqlOffering({ serviceUrl: 'mysql://root@127.0.0.1:3306', logger });
  after(async () =>
    Promise.all([offering.close(), redisOffering.close(), mysqlOffering.close(), rabbitmqOffering.close()]),
  );

  const plan = (overrides: Record<string, unknown> = {}) => ({
    id: 'plan-1',
    name: 'small',
    description: 'A plan',
    'x-depot': { connection_limit: 5 },
    ...overrides,
  });
  const service = (overrides: Record<string, unknown> = {}) => ({
    id: 'service-1',
    name: 'postgresql',
    description: 'A service',
    bindable: true,
    'x-depot': { offering: 'postgresql' },
    plans: [plan()],
    ...overrides,
  });
  const rejects = (document: unknown, message: RegExp) =>
    assert.throws(
      () => buildCatalog(document, [offering]),
      (error: Error) => {
        assert.equal(error.name, 'CatalogError');
        assert.match(error.message, message);
        return true;
      },
    );

  it('accepts a minimal valid catalog', () => {
    const catalog = buildCatalog({ services: [service()] }, [offering]);
    assert.equal(catalog.plan('service-1', 'plan-1')?.plan.name, 'small');
  });

  it('rejects an empty catalog (Cloud Foundry needs at least one service)', () =>
    rejects({ services: [] }, /services/));
  it('rejects a service without a description', () =>
    rejects({ services: [service({ description: undefined })] }, /description is required/));
  it('rejects upper-case names', () => rejects({ services: [service({ name: 'PostgreSQL' })] }, /name/));
  it('rejects duplicate ids', () =>
    rejects({ services: [service({ plans: [plan(), plan({ name: 'other' })] })] }, /used twice/));
  it('rejects duplicate plan names in a service', () =>
    rejects({ services: [service({ plans: [plan(), plan({ id: 'plan-2' })] })] }, /plan name used twice/));
  it('rejects an unknown offering', () =>
    rejects({ services: [service({ 'x-depot': { offering: 'mysql' } })] }, /x-depot.offering "mysql"/));
  it("rejects plan settings that the offering doesn't take", () =>
    rejects(
      { services: [service({ plans: [plan({ 'x-depot': { connection_limit: 'ten' } })] })] },
      /connection_limit/,
    ));
  it('rejects a maintenance_info version that is not semver', () =>
    rejects({ services: [service({ plans: [plan({ maintenance_info: { version: '1.0' } })] })] }, /maintenance_info/));
  it('rejects a plan schema without $schema', () =>
    rejects(
      {
        services: [
          service({ plans: [plan({ schemas: { service_instance: { create: { parameters: { type: 'object' } } } } })] }),
        ],
      },
      /\$schema/,
    ));
  it('rejects a plan schema with an external $ref', () =>
    rejects(
      {
        services: [
          service({
            plans: [
              plan({
                schemas: {
                  service_instance: {
                    create: {
                      parameters: {
                        $schema: 'http://json-schema.org/draft-04/schema#',
                        $ref: 'http://example.com/s.json',
                      },
                    },
                  },
                },
              }),
            ],
          }),
        ],
      },
      /external \$ref/,
    ));

  it('reads the built-in default catalog file', async () => {
    const catalog = await loadCatalogFile(undefined, [offering, redisOffering, mysqlOffering, rabbitmqOffering]);
    assert.deepEqual(
      catalog.response.services.map((s) => s.name),
      ['postgresql', 'redis', 'mysql', 'rabbitmq'],
    );
  });

  it('names the file when it cannot be read', async () => {
    await assert.rejects(loadCatalogFile('/nonexistent/catalog.yaml', [offering]), /\/nonexistent\/catalog.yaml/);
  });
});
