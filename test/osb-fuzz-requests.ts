/**
 * Random OSB requests for test/fuzz-osb.test.ts: every endpoint, with bodies generated from the
 * request schemas (broker/http/request-schemas.ts) and the plans' schemas, ids and plans from the
 * catalog and the resources that exist, and mutations of every part of a request.
 *
 * A request is built in three steps: a valid request for an endpoint (`base`), then any
 * number of neutral mutations that keep it valid (header spellings, content types, charsets,
 * encodings of the ids, unknown fields and query parameters, originating identities), then, for
 * the endpoints that change state, one or more breaking mutations, each of which alone makes the
 * request one the spec says to refuse with a 4xx (wrong credentials, an unsupported version, a
 * broken id, a body that is not JSON or too large or of the wrong shape, an id the catalog does
 * not have, a target that does not exist, a missing accepts_incomplete, ...). Reads get neutral
 * and breaking mutations alike and may answer anything but a 5xx.
 */
import { gzipSync, deflateSync } from 'node:zlib';
import fc from 'fast-check';
import {
  API_VERSION_HEADER,
  ORIGINATING_IDENTITY_HEADER,
  REQUEST_IDENTITY_HEADER,
  parseApiVersion,
  parseOriginatingIdentity,
} from '../osb/index.js';
import { BODY_LIMIT_BYTES } from '../broker/http/app.js';
import { MAX_HEADER_BYTES } from '../broker/http/client-error.js';
import { MAX_BODY_DEPTH, MAX_ID_LENGTH } from '../broker/http/request.js';
import { validateBindBody, validateProvisionBody, validateUpdateBody } from '../broker/http/request-schemas.js';
import { PASSWORD, USERNAME } from './helpers.js';
import { anyText, freeJson, invalidValue, validValue, type JsonSchema } from './json-schema-arbitrary.js';

export type Endpoint =
  | 'catalog'
  | 'provision'
  | 'getInstance'
  | 'update'
  | 'deprovision'
  | 'lastOperation'
  | 'bind'
  | 'getBinding'
  | 'unbind'
  | 'lastBindingOperation';

export const ENDPOINTS: readonly Endpoint[] = [
  'catalog',
  'provision',
  'getInstance',
  'update',
  'deprovision',
  'lastOperation',
  'bind',
  'getBinding',
  'unbind',
  'lastBindingOperation',
];
const MUTATING: ReadonlySet<Endpoint> = new Set(['provision', 'update', 'deprovision', 'bind', 'unbind']);
const METHOD: Record<Endpoint, string> = {
  catalog: 'GET',
  provision: 'PUT',
  getInstance: 'GET',
  update: 'PATCH',
  deprovision: 'DELETE',
  lastOperation: 'GET',
  bind: 'PUT',
  getBinding: 'GET',
  unbind: 'DELETE',
  lastBindingOperation: 'GET',
};

// ---- What the generator knows ----

export interface FuzzPlan {
  id: string;
  name: string;
  maintenanceVersion?: string;
  /** The plan's parameter schemas (`schemas.service_instance.create.parameters`, …). */
  schemas: { provision?: JsonSchema; update?: JsonSchema; bind?: JsonSchema };
}
export interface FuzzService {
  id: string;
  name: string;
  plans: FuzzPlan[];
}
/** An instance or binding that exists in Depot's state while requests are sent. */
export interface FuzzInstance {
  id: string;
  serviceId: string;
  planId: string;
  /** live: provisioned; failed: its provision failed; deleted: deprovisioned. */
  state: 'live' | 'failed' | 'deleted';
  bindings: Array<{ id: string; live: boolean }>;
}
export interface FuzzWorld {
  services: FuzzService[];
  instances: FuzzInstance[];
  /** Operation ids that exist, for `operation=` of last_operation. */
  operations: string[];
}

// ---- The request ----

export type IdEncoding = 'component' | 'every-byte' | 'lowercase' | 'sub-delims';
/** A path segment: an id and how it is percent-encoded, or bytes as they are sent. */
export type PathId = { id: string; encoding: IdEncoding } | { raw: string };

export interface Draft {
  endpoint: Endpoint;
  method: string;
  instance: PathId;
  binding: PathId;
  /** Replaces the route (an endpoint that does not exist). */
  route?: string;
  query: Array<[string, string | null]>;
  headers: Record<string, string>;
  body?: DraftBody;
  /** What each mutation did, for the failure report. */
  notes: string[];
  /** Breaking mutations applied: the answer must be a 4xx. */
  breaks: string[];
}
export type DraftBody =
  | {
      json: unknown;
      contentType?: string;
      charset?: 'utf-8' | 'utf-16le';
      encoding?: 'gzip' | 'deflate';
      chunked?: boolean;
    }
  | { raw: Buffer; contentType?: string; chunked?: boolean; headers?: Record<string, string> };

/** What is sent, as bytes, and what the answer must be. */
export interface FuzzRequest {
  endpoint: Endpoint;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  chunked: boolean;
  /** Must be refused with a 4xx (else: anything but a 5xx). */
  mustReject: boolean;
  label: string;
}

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** A header value Node sends as is: printable Latin-1. */
export const headerText = (maxLength = 40): fc.Arbitrary<string> =>
  fc.string({
    unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c === 0x7f ? 0x7e : c)),
    maxLength,
  });

export function render(draft: Draft): FuzzRequest {
  const segment = (p: PathId) => ('raw' in p ? p.raw : encodeId(p.id, p.encoding));
  const instance = `/v2/service_instances/${segment(draft.instance)}`;
  const binding = `${instance}/service_bindings/${segment(draft.binding)}`;
  const route =
    draft.route ??
    {
      catalog: '/v2/catalog',
      provision: instance,
      getInstance: instance,
      update: instance,
      deprovision: instance,
      lastOperation: `${instance}/last_operation`,
      bind: binding,
      getBinding: binding,
      unbind: binding,
      lastBindingOperation: `${binding}/last_operation`,
    }[draft.endpoint];
  const query = draft.query
    .map(([k, v]) => (v === null ? encodeURIComponent(k) : `${encodeURIComponent(k)}=${encodeURIComponent(v)}`))
    .join('&');
  const headers = { ...draft.headers };
  let body: Buffer | undefined;
  let chunked = false;
  if (draft.body && 'json' in draft.body) {
    const text = JSON.stringify(draft.body.json) ?? 'null';
    body = Buffer.from(text, draft.body.charset === 'utf-16le' ? 'utf16le' : 'utf8');
    if (draft.body.encoding === 'gzip') body = gzipSync(body);
    if (draft.body.encoding === 'deflate') body = deflateSync(body);
    if (draft.body.encoding) headers['Content-Encoding'] = draft.body.encoding;
    const type = draft.body.contentType ?? 'application/json';
    if (type) headers['Content-Type'] = draft.body.charset ? `${type}; charset=${draft.body.charset}` : type;
    chunked = draft.body.chunked ?? false;
  } else if (draft.body) {
    body = draft.body.raw;
    if (draft.body.contentType) headers['Content-Type'] = draft.body.contentType;
    Object.assign(headers, draft.body.headers ?? {});
    chunked = draft.body.chunked ?? false;
  }
  const request: FuzzRequest = {
    endpoint: draft.endpoint,
    method: draft.method,
    path: query ? `${route}?${query}` : route,
    headers,
    ...(body ? { body } : {}),
    chunked,
    mustReject: draft.breaks.length > 0,
    label: `${draft.endpoint}${draft.notes.length ? ` [${draft.notes.join('; ')}]` : ''}`,
  };
  // fast-check shows a counterexample so: the request line, headers and the start of the body.
  Object.defineProperty(request, fc.toStringMethod, { value: () => describeRequest(request) });
  return request;
}

/** The request line, the headers and the start of the body, and what the generator did to it. */
export function describeRequest(request: FuzzRequest): string {
  const size = request.body ? `${request.body.length} bytes${request.chunked ? ', chunked' : ''}` : '';
  const body = request.body ? ` body (${size}): ${request.body.toString('utf8', 0, 200)}` : '';
  const headers = JSON.stringify(request.headers).slice(0, 400);
  return `${request.method} ${request.path.slice(0, 300)} ${headers}${body} -- ${request.label}`;
}

/** Percent-encodes an id; every spelling decodes to the same id. */
export function encodeId(id: string, encoding: IdEncoding): string {
  const component = encodeURIComponent(id);
  switch (encoding) {
    case 'component':
      return component;
    case 'every-byte':
      return [...Buffer.from(id, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
    case 'lowercase':
      return component.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
    case 'sub-delims':
      // RFC 3986: sub-delims, ':' and '@' may appear unencoded in a path segment.
      return component.replace(/%(21|24|26|27|28|29|2A|2B|2C|3B|3D|3A|40)/g, (m) => decodeURIComponent(m));
  }
}

// ---- Ids ----

const CONTROL = /[\u0000-\u001f\u007f]/g;
const idEncoding = fc.constantFrom<IdEncoding>('component', 'component', 'every-byte', 'lowercase', 'sub-delims');

/** Ids Depot accepts and has never seen: GUIDs, unicode text, odd characters, 255 characters. */
export const freshId: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.uuid() },
  { weight: 3, arbitrary: anyText.map((t) => t.replace(CONTROL, '')).filter((t) => t.length > 0) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('.', '..', '%', 'a/b', '?x', '#', ' ', '+', "'", '"', '\\', '~', 'é', '😀', '%2F'),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom('x', 'é', '\u05e9', '😀')
      .map((unit) => unit.repeat(Math.floor(MAX_ID_LENGTH / unit.length))),
  },
);

// ---- Mutations ----

export interface Mutation {
  name: string;
  breaks: boolean;
  apply(draft: Draft): Draft;
}
const neutral = (name: string, apply: (d: Draft) => Draft): Mutation => ({ name, breaks: false, apply });
const breaking = (name: string, apply: (d: Draft) => Draft): Mutation => ({ name, breaks: true, apply });

function mutate(draft: Draft, mutation: Mutation): Draft {
  const next = mutation.apply(structuredCloneDraft(draft));
  next.notes.push(mutation.name);
  if (mutation.breaks) next.breaks.push(mutation.name);
  return next;
}

function structuredCloneDraft(draft: Draft): Draft {
  const body = draft.body && 'raw' in draft.body ? { ...draft.body } : draft.body && structuredClone(draft.body);
  return {
    ...draft,
    query: draft.query.map(([k, v]) => [k, v]),
    headers: { ...draft.headers },
    notes: [...draft.notes],
    breaks: [...draft.breaks],
    ...(body ? { body } : {}),
  };
}

const setQuery = (d: Draft, name: string, value: string | null): Draft => ({
  ...d,
  query: [...d.query.filter(([k]) => k !== name), [name, value]],
});
const dropQuery = (d: Draft, name: string): Draft => ({ ...d, query: d.query.filter(([k]) => k !== name) });
const jsonBody = (d: Draft): Record<string, unknown> | undefined =>
  d.body && 'json' in d.body && d.body.json !== null && typeof d.body.json === 'object' && !Array.isArray(d.body.json)
    ? (d.body.json as Record<string, unknown>)
    : undefined;
const withJson = (d: Draft, json: unknown): Draft => ({
  ...d,
  body: d.body && 'json' in d.body ? { ...d.body, json } : { json },
});

const neutrals = new Map<Endpoint, fc.Arbitrary<Mutation>>();
const neutralMutations = (endpoint: Endpoint): fc.Arbitrary<Mutation> => {
  let found = neutrals.get(endpoint);
  if (!found) neutrals.set(endpoint, (found = neutralList(endpoint)));
  return found;
};

/** Neutral mutations: the request stays one Depot must accept (or refuse for its own reasons). */
function neutralList(endpoint: Endpoint): fc.Arbitrary<Mutation> {
  const list: Array<fc.MaybeWeightedArbitrary<Mutation>> = [
    fc.tuple(fc.integer({ min: 13, max: 17 }), fc.constantFrom('', ' ', '  ')).map(([minor, pad]) =>
      neutral(`version 2.${minor}`, (d) => ({
        ...d,
        headers: { ...d.headers, [API_VERSION_HEADER]: `${pad}2.${minor}${pad}` },
      })),
    ),
    fc.constantFrom('basic', 'BASIC', 'Basic  ').map((scheme) =>
      neutral(`auth scheme ${JSON.stringify(scheme)}`, (d) => ({
        ...d,
        headers: { ...d.headers, Authorization: basic(USERNAME, PASSWORD).replace(/^Basic /, `${scheme} `) },
      })),
    ),
    headerText(300).map((id) =>
      neutral('request identity', (d) => ({ ...d, headers: { ...d.headers, [REQUEST_IDENTITY_HEADER]: id } })),
    ),
    fc.tuple(fc.constantFrom('cloudfoundry', 'kubernetes', 'x-platform'), originatingValue).map(([platform, value]) =>
      neutral('originating identity', (d) => ({
        ...d,
        headers: {
          ...d.headers,
          [ORIGINATING_IDENTITY_HEADER]: `${platform} ${Buffer.from(JSON.stringify(value)).toString('base64')}`,
        },
      })),
    ),
    fc
      .tuple(fc.stringMatching(/^X-Fuzz-[A-Za-z0-9-]{1,12}$/), headerText(200))
      .map(([name, value]) => neutral('unknown header', (d) => ({ ...d, headers: { ...d.headers, [name]: value } }))),
    fc
      .tuple(
        anyText.filter((k) => k !== '' && !['accepts_incomplete', 'service_id', 'plan_id', 'operation'].includes(k)),
        anyText,
      )
      .map(([k, v]) => neutral('unknown query parameter', (d) => ({ ...d, query: [...d.query, [k, v]] }))),
    idEncoding.map((encoding) =>
      neutral(`ids ${encoding}`, (d) => ({
        ...d,
        instance: 'id' in d.instance ? { ...d.instance, encoding } : d.instance,
        binding: 'id' in d.binding ? { ...d.binding, encoding } : d.binding,
      })),
    ),
  ];
  if (endpoint === 'provision' || endpoint === 'update' || endpoint === 'bind') {
    list.push(
      fc
        .constantFrom(
          '',
          'application/json',
          'text/plain',
          'application/x-www-form-urlencoded',
          'application/octet-stream',
          'application/vnd.api+json',
          'APPLICATION/JSON',
        )
        .map((contentType) =>
          neutral(`content type ${JSON.stringify(contentType)}`, (d) =>
            d.body && 'json' in d.body ? { ...d, body: { ...d.body, contentType } } : d,
          ),
        ),
      fc
        .constantFrom('utf-8' as const, 'utf-16le' as const)
        .map((charset) =>
          neutral(`charset ${charset}`, (d) =>
            d.body && 'json' in d.body ? { ...d, body: { ...d.body, charset } } : d,
          ),
        ),
      fc
        .constantFrom('gzip' as const, 'deflate' as const)
        .map((encoding) =>
          neutral(`content encoding ${encoding}`, (d) =>
            d.body && 'json' in d.body ? { ...d, body: { ...d.body, encoding } } : d,
          ),
        ),
      fc.constant(neutral('chunked', (d) => (d.body ? { ...d, body: { ...d.body, chunked: true } } : d))),
      fc
        .tuple(
          anyText.filter((k) => k !== '' && k !== '__proto__'),
          freeJson(),
        )
        .map(([name, value]) =>
          neutral('unknown body member', (d) => {
            const json = jsonBody(d);
            return json && !(name in json) ? withJson(d, { [name]: value, ...json }) : d;
          }),
        ),
      {
        weight: 1,
        arbitrary: fc.integer({ min: 10_000, max: 200_000 }).map((size) =>
          neutral(`large body (${size} characters)`, (d) => {
            const json = jsonBody(d);
            return json && !('x-padding' in json) ? withJson(d, { ...json, 'x-padding': 'p'.repeat(size) }) : d;
          }),
        ),
      },
      fc.integer({ min: 10, max: 55 }).map((depth) =>
        neutral(`context nested ${depth} deep`, (d) => {
          const json = jsonBody(d);
          return json ? withJson(d, { ...json, context: { ...(json.context as object), deep: nest(depth) } }) : d;
        }),
      ),
    );
  }
  return fc.oneof(...list);
}

const originatingValue = fc.record(
  { user_id: fc.uuid(), name: anyText, extra: freeJson(anyText, 2) },
  { requiredKeys: ['user_id'] },
);

const nest = (depth: number): unknown => {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
};

/** Bytes above the body limit (a JSON prefix, cut off): the limit is checked before any parsing. */
const OVERSIZED = Buffer.from(`{"parameters":{"p":"${'x'.repeat(BODY_LIMIT_BYTES + 64 * 1024)}`);
const OVERSIZED_HEADER = 'h'.repeat(MAX_HEADER_BYTES + 4096);

/** Breaking mutations for every endpoint: answered before any route logic. */
let common: Array<fc.WeightedArbitrary<Mutation>> | undefined;
const commonBreakerList = () => (common ??= commonBreakers().map(([weight, arbitrary]) => ({ weight, arbitrary })));

function commonBreakers(): Array<[number, fc.Arbitrary<Mutation>]> {
  const badVersion = fc
    .oneof(
      fc.constantFrom('2.12', '2.18', '2.0', '1.0', '3.0', '2', '2.17.0', 'v2.17', '', '2.1 7', 'latest'),
      headerText(12),
    )
    .filter((v) => parseApiVersion(v) === undefined);
  const badAuth = fc.oneof(
    fc.constant(undefined),
    anyText.filter((p) => p !== PASSWORD).map((p) => basic(USERNAME, p)),
    anyText.filter((u) => u !== USERNAME).map((u) => basic(u, PASSWORD)),
    fc.constant(basic(USERNAME.toUpperCase(), PASSWORD)),
    fc.constant(`Bearer ${Buffer.from(PASSWORD).toString('base64')}`),
    fc.constant('Basic'),
    fc.constant('Basic !!!'),
    fc.constant(`Basic ${USERNAME}:${PASSWORD}`),
    headerText(60).filter((h) => !h.trim().toLowerCase().startsWith('basic')),
  );
  return [
    [
      4,
      badAuth.map((value) =>
        breaking(`credentials ${value === undefined ? 'missing' : JSON.stringify(value.slice(0, 40))}`, (d) => {
          const headers = { ...d.headers };
          if (value === undefined) delete headers.Authorization;
          else headers.Authorization = value;
          return { ...d, headers };
        }),
      ),
    ],
    [
      4,
      fc.option(badVersion, { nil: undefined }).map((value) =>
        breaking(`version ${value === undefined ? 'missing' : JSON.stringify(value)}`, (d) => {
          const headers = { ...d.headers };
          if (value === undefined) delete headers[API_VERSION_HEADER];
          else headers[API_VERSION_HEADER] = value;
          return { ...d, headers };
        }),
      ),
    ],
    [
      4,
      notJsonText.map((text) =>
        breaking(`body not JSON ${JSON.stringify(text.slice(0, 30))}`, (d) => ({
          ...d,
          body: { raw: Buffer.from(text), contentType: 'application/json' },
        })),
      ),
    ],
    [
      1,
      fc.tuple(fc.integer({ min: 1, max: OVERSIZED.length - BODY_LIMIT_BYTES }), fc.boolean()).map(([extra, chunked]) =>
        breaking(`body of ${BODY_LIMIT_BYTES + extra} bytes${chunked ? ', chunked' : ''}`, (d) => ({
          ...d,
          body: { raw: OVERSIZED.subarray(0, BODY_LIMIT_BYTES + extra), contentType: 'application/json', chunked },
        })),
      ),
    ],
    [
      2,
      fc
        .constantFrom('iso-8859-1', 'latin1', 'us-ascii', 'windows-1252', 'koi8-r', 'utf-99', 'x-unknown')
        .map((charset) =>
          breaking(`charset ${charset}`, (d) => ({
            ...d,
            body: {
              raw: Buffer.from(JSON.stringify(jsonBody(d) ?? {})),
              contentType: `application/json; charset=${charset}`,
            },
          })),
        ),
    ],
    [
      2,
      fc.constantFrom('compress', 'x-fuzz', 'gzip, identity, zstd').map((encoding) =>
        breaking(`content encoding ${encoding}`, (d) => ({
          ...d,
          body: {
            raw: Buffer.from(JSON.stringify(jsonBody(d) ?? {})),
            contentType: 'application/json',
            headers: { 'Content-Encoding': encoding },
          },
        })),
      ),
    ],
    [
      1,
      fc
        .tuple(
          fc.integer({ min: 1, max: 4096 }),
          fc.constantFrom(ORIGINATING_IDENTITY_HEADER, 'X-Fuzz-Large', 'Cookie'),
        )
        .map(([extra, name]) =>
          breaking(`header ${name} of ${MAX_HEADER_BYTES + extra} bytes`, (d) => ({
            ...d,
            headers: { ...d.headers, [name]: OVERSIZED_HEADER.slice(0, MAX_HEADER_BYTES + extra) },
          })),
        ),
    ],
    [
      1,
      fc.constant(
        breaking('gzip claimed, plain body', (d) => ({
          ...d,
          body: {
            raw: Buffer.from(JSON.stringify(jsonBody(d) ?? { a: 1 })),
            contentType: 'application/json',
            headers: { 'Content-Encoding': 'gzip' },
          },
        })),
      ),
    ],
  ];
}

/** Text that is not JSON (truncated, single-quoted, trailing garbage, random bytes). */
const notJsonText: fc.Arbitrary<string> = fc
  .oneof(
    fc.constantFrom(
      '{',
      '{"service_id":',
      "{'service_id':'x'}",
      '{"a":1}x',
      'NaN',
      '{"a":1,}',
      '[1,]',
      'undefined',
      ' ',
    ),
    fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 40 }),
    freeJson().map((v) => JSON.stringify(v).slice(0, -1)),
  )
  .filter((text) => {
    try {
      JSON.parse(text);
      return false;
    } catch {
      return text.length > 0;
    }
  });

/** Breaks an id of the path: too long, a control character, broken percent-encoding, empty. */
function pathBreakers(which: 'instance' | 'binding'): fc.Arbitrary<Mutation> {
  const set =
    (raw: string) =>
    (d: Draft): Draft => ({ ...d, [which]: { raw } });
  return fc.oneof(
    fc
      .tuple(fc.integer({ min: MAX_ID_LENGTH + 1, max: 600 }), fc.constantFrom('x', 'é', '😀'))
      .map(([length, unit]) =>
        breaking(
          `${which} id of ${length}+ characters`,
          set(encodeURIComponent(unit.repeat(Math.ceil(length / unit.length)))),
        ),
      ),
    fc.tuple(fc.uuid(), fc.integer({ min: 0, max: 0x20 }), fc.nat(36)).map(([id, c, at]) => {
      const code = c === 0x20 ? 0x7f : c;
      const encoded = `${id.slice(0, at)}%${code.toString(16).padStart(2, '0')}${id.slice(at)}`;
      return breaking(`${which} id with control character %${code.toString(16)}`, set(encoded));
    }),
    fc
      .tuple(fc.uuid(), fc.constantFrom('%', '%z', '%4', '%zz', '%C3%28', '%FF', '%ED%A0%80', '%E2%82', '%C0%AF'))
      .map(([id, bad]) => breaking(`${which} id with ${bad}`, set(`${id}${bad}`))),
    fc.constant(breaking(`${which} id empty`, set(''))),
  );
}

const ROUTE_BREAKERS: Array<[string, string, string]> = [
  ['POST an instance', 'POST', ''],
  ['PATCH a binding', 'PATCH', '/service_bindings/b'],
  ['the bindings of an instance', 'GET', '/service_bindings'],
  ['below last_operation', 'GET', '/last_operation/x'],
];

/** An endpoint that does not exist (a 404), in place of the draft's route. */
const routeBreaker: fc.Arbitrary<Mutation> = fc
  .tuple(fc.constantFrom(...ROUTE_BREAKERS), fc.uuid())
  .map(([[name, method, suffix], id]) =>
    breaking(`no such endpoint: ${name}`, (d) => ({ ...d, method, route: `/v2/service_instances/${id}${suffix}` })),
  );

/** accepts_incomplete that is not "true" or "false" (given twice, empty, other words). */
const badAcceptsIncomplete: fc.Arbitrary<Mutation> = fc
  .oneof(
    fc.constantFrom('maybe', 'TRUE', 'True', '1', 'yes', '', 'true ', 'false!'),
    anyText.filter((v) => v !== 'true' && v !== 'false'),
  )
  .chain((value) =>
    fc.constantFrom(
      breaking(`accepts_incomplete=${JSON.stringify(value)}`, (d) => setQuery(d, 'accepts_incomplete', value)),
      breaking('accepts_incomplete twice', (d) => ({
        ...dropQuery(d, 'accepts_incomplete'),
        query: [
          ...dropQuery(d, 'accepts_incomplete').query,
          ['accepts_incomplete', 'true'],
          ['accepts_incomplete', 'true'],
        ],
      })),
      breaking('accepts_incomplete without a value', (d) => setQuery(d, 'accepts_incomplete', null)),
    ),
  );

/** X-Broker-API-Originating-Identity that is not `<platform> <base64 JSON object>`. */
const badIdentity: fc.Arbitrary<Mutation> = fc
  .oneof(
    fc.stringMatching(/^[a-z]{1,12}$/),
    fc.constantFrom('cloudfoundry ', ' cloudfoundry', 'cloudfoundry !!!', 'cloudfoundry e30=e30='),
    fc
      .constantFrom('[]', '"u"', 'null', '1', '{', 'user_id=u1', '{"user_id":"\\u0000"}', '{"u":"\\ud800"}')
      .map((json) => `cloudfoundry ${Buffer.from(json).toString('base64')}`),
    fc.constant(`cloudfoundry ${Buffer.from(`{"deep":${JSON.stringify(nest(70))}}`).toString('base64')}`),
  )
  .filter((value) => {
    const parsed = parseOriginatingIdentity(value);
    return (
      'error' in parsed || /\\u0000|\\ud800|"deep"/.test(Buffer.from(value.split(' ')[1] ?? '', 'base64').toString())
    );
  })
  .map((value) =>
    breaking(`originating identity ${JSON.stringify(value.slice(0, 40))}`, (d) => ({
      ...d,
      headers: { ...d.headers, [ORIGINATING_IDENTITY_HEADER]: value },
    })),
  );

/** A body PUT and PATCH refuse as a whole: JSON, but not an object. */
const notAnObject: fc.Arbitrary<Mutation> = fc
  .oneof(
    fc.constant([]),
    fc.constant(null),
    fc.integer(),
    fc.boolean(),
    anyText,
    fc.array(freeJson(), { maxLength: 3 }),
  )
  .map((json) => breaking(`body ${JSON.stringify(json).slice(0, 30)} (not an object)`, (d) => withJson(d, json)));

/** Raw JSON nested deeper than the broker takes (up to 200,000 levels, beyond any recursive parser). */
const tooDeepRaw: fc.Arbitrary<Mutation> = fc.integer({ min: MAX_BODY_DEPTH, max: 200_000 }).map((depth) =>
  breaking(`body nested ${depth} deep`, (d) => ({
    ...d,
    body: {
      raw: Buffer.from(`{"context":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`),
      contentType: 'application/json',
    },
  })),
);

/** Something jsonb cannot store, or nesting deeper than the broker takes, inside a PUT or PATCH body. */
const unstorable: fc.Arbitrary<Mutation> = fc
  .tuple(
    fc.constantFrom('context', 'parameters'),
    fc.constantFrom('nul', 'lone surrogate', 'nul key', 'too deep'),
    anyText,
  )
  .map(([member, what, text]) =>
    breaking(`${what} in ${member}`, (d) => {
      const json = jsonBody(d) ?? {};
      const poison =
        what === 'nul'
          ? { x: `${text}\u0000` }
          : what === 'lone surrogate'
            ? { x: `${text}\ud800` }
            : what === 'nul key'
              ? { [`k\u0000${text}`]: 1 }
              : { x: nest(70) };
      return withJson(d, { ...json, [member]: { ...(json[member] as object), ...poison } });
    }),
  );

// ---- Endpoints ----

export type BodyEndpoint = 'provision' | 'update' | 'bind';

export interface Generators {
  /** Any endpoint, mutated; requests of endpoints that change state must be refused. */
  request: fc.Arbitrary<FuzzRequest>;
  /** Requests of these endpoints that change state, with at least one breaking mutation. */
  refused(endpoints: Endpoint[]): fc.Arbitrary<FuzzRequest>;
  /** A body the request schema and the plan's schema accept, naming the plan. */
  body(endpoint: BodyEndpoint, service: FuzzService, plan: FuzzPlan): fc.Arbitrary<Record<string, unknown>>;
}

export function osbGenerators(world: FuzzWorld): Generators {
  const g = new EndpointGenerators(world);
  const schemas = { provision: validateProvisionBody, update: validateUpdateBody, bind: validateBindBody };
  return {
    request: fc
      .constantFrom(...ENDPOINTS)
      .chain((e) => g.mutated(e))
      .map(render),
    refused: (endpoints) =>
      fc
        .constantFrom(...endpoints.filter((e) => MUTATING.has(e)))
        .chain((e) => g.mutated(e))
        .map(render),
    body: (endpoint, service, plan) =>
      g.validBody(schemas[endpoint].schema as JsonSchema, { service, plan }, plan.schemas[endpoint]),
  };
}

type Target = { instance: FuzzInstance | undefined; id: string };

class EndpointGenerators {
  private readonly plans: Array<{ service: FuzzService; plan: FuzzPlan }>;

  constructor(private readonly world: FuzzWorld) {
    this.plans = world.services.flatMap((service) => service.plans.map((plan) => ({ service, plan })));
  }

  /** A request for the endpoint with 0-3 neutral mutations and, if it changes state, 1-2 breaking ones. */
  mutated(endpoint: Endpoint): fc.Arbitrary<Draft> {
    return this.base(endpoint).chain((draft) => {
      const neutrals = fc.array(neutralMutations(endpoint), { maxLength: 3 });
      const breakers = this.breakers(draft);
      const mustBreak = MUTATING.has(endpoint);
      const breaks = fc.array(breakers, { minLength: mustBreak ? 1 : 0, maxLength: 2 });
      return fc.tuple(neutrals, breaks).map(([n, b]) => [...n, ...b].reduce(mutate, draft));
    });
  }

  private base(endpoint: Endpoint): fc.Arbitrary<Draft> {
    const start = (partial: Partial<Draft>): Draft => ({
      endpoint,
      method: METHOD[endpoint],
      instance: { id: 'unused', encoding: 'component' },
      binding: { id: 'unused', encoding: 'component' },
      query: [],
      headers: { Authorization: basic(USERNAME, PASSWORD), [API_VERSION_HEADER]: '2.17' },
      notes: [],
      breaks: [],
      ...partial,
    });
    const ids = (t: Target, encoding: IdEncoding) => ({ instance: { id: t.id, encoding } });
    switch (endpoint) {
      case 'catalog':
        return fc
          .option(fc.oneof(headerText(30), fc.constant('*')), { freq: 4 })
          .map((etag) => start(etag === null ? {} : { headers: { ...start({}).headers, 'If-None-Match': etag } }));
      case 'getInstance':
      case 'lastOperation':
        return fc
          .tuple(this.instanceTarget(), idEncoding, this.readQuery(endpoint === 'lastOperation'))
          .map(([t, encoding, query]) => start({ ...ids(t, encoding), query }));
      case 'getBinding':
      case 'lastBindingOperation':
        return fc
          .tuple(this.bindingTarget(), idEncoding, this.readQuery(endpoint === 'lastBindingOperation'))
          .map(([[t, bindingId], encoding, query]) =>
            start({ ...ids(t, encoding), binding: { id: bindingId, encoding }, query }),
          );
      case 'provision':
        return fc
          .tuple(this.instanceTarget(), idEncoding, this.planChoice())
          .chain(([t, encoding, choice]) =>
            this.validBody(validateProvisionBody.schema as JsonSchema, choice, choice.plan.schemas.provision).map(
              (json) => start({ ...ids(t, encoding), query: [['accepts_incomplete', 'true']], body: { json } }),
            ),
          );
      case 'update':
        return fc.tuple(this.instanceTarget(), idEncoding).chain(([t, encoding]) => {
          const choice = this.choiceOf(t);
          return fc
            .tuple(
              this.validBody(validateUpdateBody.schema as JsonSchema, choice, choice.plan.schemas.update),
              fc.option(fc.constantFrom(...choice.service.plans), { nil: undefined }),
            )
            .map(([json, plan]) => {
              const body = { ...(json as Record<string, unknown>) };
              if (plan) body.plan_id = plan.id;
              else delete body.plan_id;
              return start({ ...ids(t, encoding), query: [['accepts_incomplete', 'true']], body: { json: body } });
            });
        });
      case 'deprovision':
        return fc.tuple(this.instanceTarget(), idEncoding).map(([t, encoding]) => {
          const choice = this.choiceOf(t);
          return start({
            ...ids(t, encoding),
            query: [
              ['accepts_incomplete', 'true'],
              ['service_id', choice.service.id],
              ['plan_id', choice.plan.id],
            ],
          });
        });
      case 'bind':
        return fc
          .tuple(this.instanceTarget(), fc.oneof(freshId, this.anyBindingId()), idEncoding, this.asyncChoice())
          .chain(([t, bindingId, encoding, query]) => {
            const choice = this.choiceOf(t);
            return this.validBody(validateBindBody.schema as JsonSchema, choice, choice.plan.schemas.bind).map((json) =>
              start({ ...ids(t, encoding), binding: { id: bindingId, encoding }, query, body: { json } }),
            );
          });
      case 'unbind':
        return fc
          .tuple(this.bindingTarget(), idEncoding, this.asyncChoice())
          .map(([[t, bindingId], encoding, async]) => {
            const choice = this.choiceOf(t);
            return start({
              ...ids(t, encoding),
              binding: { id: bindingId, encoding },
              query: [...async, ['service_id', choice.service.id], ['plan_id', choice.plan.id]],
            });
          });
    }
  }

  /** Arbitraries built once (building them costs more than drawing from them). */
  private readonly memo = new Map<string, fc.Arbitrary<unknown>>();
  private once<T>(key: string, build: () => fc.Arbitrary<T>): fc.Arbitrary<T> {
    let found = this.memo.get(key) as fc.Arbitrary<T> | undefined;
    if (!found) this.memo.set(key, (found = build()));
    return found;
  }

  /** The breaking mutations that apply to the draft's endpoint and target. */
  private breakers(draft: Draft): fc.Arbitrary<Mutation> {
    const target = this.world.instances.find((i) => 'id' in draft.instance && i.id === draft.instance.id);
    return this.once(`breakers ${draft.endpoint} ${target?.id ?? 'fresh'}`, () =>
      this.breakerList(draft.endpoint, target),
    );
  }

  private breakerList(e: Endpoint, target: FuzzInstance | undefined): fc.Arbitrary<Mutation> {
    const list: Array<fc.MaybeWeightedArbitrary<Mutation>> = [...commonBreakerList()];
    // Each of the endpoint's own breakers weighs as much as the most frequent common one.
    const own: Array<fc.Arbitrary<Mutation>> = [routeBreaker];
    if (e !== 'catalog') own.push(pathBreakers('instance'));
    if (e === 'bind' || e === 'getBinding' || e === 'unbind' || e === 'lastBindingOperation')
      own.push(pathBreakers('binding'));
    if (MUTATING.has(e)) own.push(badAcceptsIncomplete, badIdentity);
    if (e === 'provision' || e === 'update' || e === 'bind') {
      const schema = { provision: validateProvisionBody, update: validateUpdateBody, bind: validateBindBody }[e];
      own.push(
        notAnObject,
        unstorable,
        tooDeepRaw,
        this.schemaViolation(schema.schema as JsonSchema, schema),
        this.catalogBreaker(),
      );
      const planSchema = this.planSchemaBreaker();
      if (planSchema) own.push(planSchema);
    }
    if (e === 'provision' || e === 'update') own.push(this.maintenanceBreaker());
    if (e === 'provision' && !target) own.push(fc.constant(syncRequired));
    if (e === 'update') own.push(fc.constant(syncRequired), this.freshTarget());
    if (e === 'deprovision') {
      own.push(this.deleteQueryBreaker(), this.freshTarget());
      if (target?.state === 'live') own.push(fc.constant(syncRequired));
    }
    if (e === 'unbind') own.push(this.deleteQueryBreaker(), this.freshBinding());
    if (e === 'bind') own.push(this.freshTarget(), this.predecessorBreaker());
    return fc.oneof(...list, ...own.map((arbitrary) => ({ weight: 4, arbitrary })));
  }

  // ---- Targets ----

  private instanceTarget(): fc.Arbitrary<Target> {
    const fresh = freshId.map((id): Target => ({ instance: undefined, id }));
    if (this.world.instances.length === 0) return fresh;
    const fixture = fc.constantFrom(...this.world.instances).map((instance): Target => ({ instance, id: instance.id }));
    return fc.oneof({ weight: 3, arbitrary: fixture }, { weight: 1, arbitrary: fresh });
  }

  private bindingTarget(): fc.Arbitrary<[Target, string]> {
    return this.instanceTarget().chain((t) => {
      const own = t.instance?.bindings.map((b) => b.id) ?? [];
      const choices = own.length > 0 ? fc.oneof(fc.constantFrom(...own), freshId) : freshId;
      return choices.map((bindingId): [Target, string] => [t, bindingId]);
    });
  }

  private anyBindingId(): fc.Arbitrary<string> {
    const all = this.world.instances.flatMap((i) => i.bindings.map((b) => b.id));
    return all.length > 0 ? fc.constantFrom(...all) : freshId;
  }

  /** The service and plan of an existing instance, or any plan for a fresh one. */
  private choiceOf(t: Target): { service: FuzzService; plan: FuzzPlan } {
    const found = t.instance && this.plans.find((p) => p.plan.id === t.instance!.planId);
    return found ?? this.plans[t.id.length % this.plans.length]!;
  }

  private planChoice(): fc.Arbitrary<{ service: FuzzService; plan: FuzzPlan }> {
    return fc.constantFrom(...this.plans);
  }

  private asyncChoice(): fc.Arbitrary<Array<[string, string]>> {
    return fc.constantFrom<Array<[string, string]>>(
      [],
      [['accepts_incomplete', 'true']],
      [['accepts_incomplete', 'false']],
    );
  }

  /** Hints of GET and last_operation: valid, empty, repeated, too long, or with control characters. */
  private readQuery(withOperation: boolean): fc.Arbitrary<Array<[string, string | null]>> {
    const ids = this.plans.flatMap((p) => [p.plan.id, p.service.id]);
    const value = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom(...ids) },
      { weight: 2, arbitrary: anyText },
      { weight: 1, arbitrary: fc.constantFrom('', 'a\u0000b', 'x'.repeat(256), 'o'.repeat(10_001)) },
    );
    const operation =
      this.world.operations.length > 0 ? fc.oneof(fc.constantFrom(...this.world.operations), value) : value;
    const names = withOperation ? ['service_id', 'plan_id', 'operation'] : ['service_id', 'plan_id'];
    const pair = fc
      .constantFrom(...names)
      .chain((name) => (name === 'operation' ? operation : value).map((v): [string, string | null] => [name, v]));
    return fc.array(pair, { maxLength: 3 });
  }

  // ---- Bodies ----

  /** A body the request schema accepts, with the catalog's ids and parameters from the plan's schema. */
  validBody(
    schema: JsonSchema,
    choice: { service: FuzzService; plan: FuzzPlan },
    parameters: JsonSchema | undefined,
  ): fc.Arbitrary<Record<string, unknown>> {
    const key = `body ${JSON.stringify(schema.required)} ${choice.plan.id} ${JSON.stringify(parameters)}`;
    return this.once(key, () => this.bodyOf(schema, choice, parameters));
  }

  private bodyOf(
    schema: JsonSchema,
    choice: { service: FuzzService; plan: FuzzPlan },
    parameters: JsonSchema | undefined,
  ): fc.Arbitrary<Record<string, unknown>> {
    const version = choice.plan.maintenanceVersion;
    return validValue(schema, {
      field: (path) => {
        if (path === 'service_id') return fc.constant(choice.service.id);
        if (path === 'plan_id') return fc.constant(choice.plan.id);
        if (path === 'parameters' && parameters) return validValue(parameters);
        if (path === 'maintenance_info' && version) return fc.constant({ version });
        if (path === 'maintenance_info') return fc.constant({});
        if (path === 'predecessor_binding_id') return fc.constant(undefined);
        return undefined;
      },
    }).map((body) => {
      const object = { ...(body as Record<string, unknown>) };
      // An absent member is left out (fc.record with a constant(undefined) keeps the key).
      for (const [key, value] of Object.entries(object)) if (value === undefined) delete object[key];
      return object;
    });
  }

  private schemaViolation(schema: JsonSchema, validate: (value: unknown) => boolean): fc.Arbitrary<Mutation> {
    const ids = this.plans.flatMap((p) => [p.plan.id, p.service.id]);
    return invalidValue(schema, {
      field: (path) => (path === 'service_id' || path === 'plan_id' ? fc.constantFrom(...ids) : undefined),
    })
      .filter((bad) => !validate(bad.value))
      .map((bad) => breaking(`schema: ${bad.violation}`, (d) => withJson(d, bad.value)));
  }

  /** A service_id the catalog does not have, a plan_id not of the service, a plan of another service. */
  private catalogBreaker(): fc.Arbitrary<Mutation> {
    const knownIds = new Set(this.plans.flatMap((p) => [p.plan.id, p.service.id]));
    const unknown = fc
      .oneof(
        fc.uuid(),
        anyText.filter((t) => t.length > 0),
      )
      .filter((id) => !knownIds.has(id));
    const otherServicePlan = fc.constantFrom(...this.plans);
    return fc.oneof(
      unknown.map((id) =>
        breaking(`service_id ${JSON.stringify(id)} not in the catalog`, (d) => patchIds(d, { service_id: id })),
      ),
      unknown.map((id) =>
        breaking(`plan_id ${JSON.stringify(id)} not in the catalog`, (d) => patchIds(d, { plan_id: id })),
      ),
      otherServicePlan.map((other) =>
        breaking(`plan ${other.plan.name} with another service`, (d) => {
          const service = this.world.services.find((s) => s.id !== other.service.id);
          return service
            ? patchIds(d, { service_id: service.id, plan_id: other.plan.id })
            : patchIds(d, { plan_id: 'x' });
        }),
      ),
    );
  }

  /** Parameters a restrictive plan schema refuses, with that plan (another plan than the target's is a 400 too). */
  private planSchemaBreaker(): fc.Arbitrary<Mutation> | undefined {
    const restrictive = this.plans.filter((p) => p.plan.schemas.provision?.additionalProperties === false);
    if (restrictive.length === 0) return undefined;
    return fc
      .tuple(fc.constantFrom(...restrictive), fc.constantFrom('provision' as const, 'update' as const, 'bind' as const))
      .chain(([choice, key]) =>
        invalidValue(choice.plan.schemas[key] ?? choice.plan.schemas.provision!)
          .filter((bad) => bad.value !== null && typeof bad.value === 'object' && !Array.isArray(bad.value))
          .map((bad) =>
            breaking(`parameters for plan ${choice.plan.name}: ${bad.violation}`, (d) =>
              withJson(d, {
                ...jsonBody(d),
                service_id: choice.service.id,
                plan_id: choice.plan.id,
                parameters: bad.value,
              }),
            ),
          ),
      );
  }

  private maintenanceBreaker(): fc.Arbitrary<Mutation> {
    const versions = new Set(this.plans.map((p) => p.plan.maintenanceVersion));
    return fc
      .oneof(fc.constantFrom('0.0.1', '1.0.1', '2.0.0', '1.0.0-beta'), fc.string({ minLength: 1, maxLength: 12 }))
      .filter((v) => !versions.has(v))
      .map((version) =>
        breaking(`maintenance_info.version ${JSON.stringify(version)}`, (d) => {
          const json = jsonBody(d) ?? {};
          return withJson(d, { ...json, maintenance_info: { version } });
        }),
      );
  }

  private deleteQueryBreaker(): fc.Arbitrary<Mutation> {
    return fc.oneof(
      fc.constantFrom('service_id', 'plan_id').map((name) => breaking(`without ${name}`, (d) => dropQuery(d, name))),
      fc
        .tuple(fc.constantFrom('service_id', 'plan_id'), fc.constantFrom('', 'x'.repeat(256), 'a\u0001b', 'a\u0000b'))
        .map(([name, value]) =>
          breaking(`${name}=${JSON.stringify(value.slice(0, 8))}`, (d) => setQuery(d, name, value)),
        ),
      fc
        .constantFrom('service_id', 'plan_id')
        .map((name) =>
          breaking(`${name} twice`, (d) => ({ ...d, query: [...d.query, ...d.query.filter(([k]) => k === name)] })),
        ),
      fc
        .constantFrom('service_id', 'plan_id')
        .map((name) => breaking(`${name} without a value`, (d) => setQuery(d, name, null))),
      this.catalogBreaker(),
    );
  }

  /** The instance id of a request replaced by one that was never created. */
  private freshTarget(): fc.Arbitrary<Mutation> {
    return fc
      .uuid()
      .map((id) =>
        breaking('instance that does not exist', (d) => ({ ...d, instance: { id, encoding: 'component' } })),
      );
  }

  private freshBinding(): fc.Arbitrary<Mutation> {
    return fc
      .uuid()
      .map((id) => breaking('binding that does not exist', (d) => ({ ...d, binding: { id, encoding: 'component' } })));
  }

  private predecessorBreaker(): fc.Arbitrary<Mutation> {
    return fc
      .uuid()
      .map((id) =>
        breaking('predecessor_binding_id that does not exist', (d) =>
          withJson(d, { ...jsonBody(d), predecessor_binding_id: id }),
        ),
      );
  }
}

/** spec: 422 AsyncRequired; Depot runs every provision, update and deprovision as a job. */
const syncRequired: Mutation = breaking('without accepts_incomplete', (d) => dropQuery(d, 'accepts_incomplete'));

/** Sets service_id and plan_id where the request has them: its body, or its query (DELETE). */
function patchIds(d: Draft, ids: { service_id?: string; plan_id?: string }): Draft {
  if (d.method === 'DELETE') {
    let next = d;
    for (const [name, value] of Object.entries(ids)) next = setQuery(next, name, value);
    return next;
  }
  return withJson(d, { ...jsonBody(d), ...ids });
}

/** A request Depot must accept, for the lifecycles: the route, query and body as given. */
export interface ValidSpec {
  endpoint: Endpoint;
  instanceId: string;
  bindingId?: string;
  query: Array<[string, string]>;
  body?: unknown;
}

/** The request with 0-3 neutral mutations and a version of 2.13 to 2.17: it stays valid. */
export function validRequest(spec: ValidSpec): fc.Arbitrary<FuzzRequest> {
  const draft: Draft = {
    endpoint: spec.endpoint,
    method: METHOD[spec.endpoint],
    instance: { id: spec.instanceId, encoding: 'component' },
    binding: { id: spec.bindingId ?? 'unused', encoding: 'component' },
    query: spec.query,
    headers: { Authorization: basic(USERNAME, PASSWORD), [API_VERSION_HEADER]: '2.17' },
    ...(spec.body !== undefined ? { body: { json: spec.body } } : {}),
    notes: [],
    breaks: [],
  };
  return fc.array(neutralMutations(spec.endpoint), { maxLength: 3 }).map((n) => render(n.reduce(mutate, draft)));
}

/** The request exactly as given (a poll of last_operation, built while the lifecycle runs). */
export function plainRequest(spec: ValidSpec): FuzzRequest {
  return render({
    endpoint: spec.endpoint,
    method: METHOD[spec.endpoint],
    instance: { id: spec.instanceId, encoding: 'component' },
    binding: { id: spec.bindingId ?? 'unused', encoding: 'component' },
    query: spec.query,
    headers: { Authorization: basic(USERNAME, PASSWORD), [API_VERSION_HEADER]: '2.17' },
    notes: [],
    breaks: [],
  });
}
