import type { Request } from 'express';
import { ORIGINATING_IDENTITY_HEADER, parseOriginatingIdentity, type JsonObject } from '../../osb/index.js';
import { describeErrors, type ValidateFunction } from '../catalog/json-schema.js';
import { BadRequestError } from '../errors.js';
import type { DeleteDetails, PollDetails, RequestOptions } from '../service-broker.js';

/** Longest instance or binding id accepted (the spec sets none; platforms send GUIDs). */
export const MAX_ID_LENGTH = 255;
/** spec: `operation` is at most 10,000 characters. */
const MAX_OPERATION_LENGTH = 10_000;
// Postgres text cannot hold U+0000; control characters have no place in ids.
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;

/** A path parameter that is a resource id: non-empty, bounded, no control characters. */
export function pathId(req: Request, name: 'instance_id' | 'binding_id'): string {
  const value = req.params[name];
  if (typeof value !== 'string' || value.length === 0) throw new BadRequestError(`${name} must not be empty.`);
  if (value.length > MAX_ID_LENGTH) throw new BadRequestError(`${name} must be at most ${MAX_ID_LENGTH} characters.`);
  if (CONTROL_CHARACTERS.test(value)) throw new BadRequestError(`${name} must not contain control characters.`);
  return value;
}

/** A single-valued query parameter; spec: "if present, MUST be a non-empty string". */
export function queryParameter(
  req: Request,
  name: string,
  required: boolean,
  maxLength = MAX_ID_LENGTH,
): string | undefined {
  const value = req.query[name];
  if (value === undefined) {
    if (required) throw new BadRequestError(`The query parameter ${name} is required.`);
    return undefined;
  }
  if (typeof value !== 'string') throw new BadRequestError(`The query parameter ${name} must be given once.`);
  if (value.length === 0) throw new BadRequestError(`The query parameter ${name} must not be empty.`);
  if (value.length > maxLength)
    throw new BadRequestError(`The query parameter ${name} must be at most ${maxLength} characters.`);
  if (CONTROL_CHARACTERS.test(value))
    throw new BadRequestError(`The query parameter ${name} must not contain control characters.`);
  return value;
}

/** DELETE instance and DELETE binding: service_id and plan_id are REQUIRED (spec). */
export function deleteDetails(req: Request): DeleteDetails {
  return { service_id: queryParameter(req, 'service_id', true)!, plan_id: queryParameter(req, 'plan_id', true)! };
}

/** GET instance and GET binding: service_id and plan_id are optional hints, non-empty if sent. */
export function checkHints(req: Request): void {
  queryParameter(req, 'service_id', false);
  queryParameter(req, 'plan_id', false);
}

/** last_operation: the hints, and `operation` as the broker returned it (≤ 10,000 characters). */
export function pollDetails(req: Request): PollDetails {
  const serviceId = queryParameter(req, 'service_id', false);
  const planId = queryParameter(req, 'plan_id', false);
  const operation = queryParameter(req, 'operation', false, MAX_OPERATION_LENGTH);
  return {
    ...(serviceId ? { service_id: serviceId } : {}),
    ...(planId ? { plan_id: planId } : {}),
    ...(operation ? { operation } : {}),
  };
}

/** accepts_incomplete: "true" or "false" (absent means false). */
export function acceptsIncomplete(req: Request): boolean {
  const value = queryParameter(req, 'accepts_incomplete', false, 5);
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw new BadRequestError('The query parameter accepts_incomplete must be "true" or "false".');
}

export function requestOptions(req: Request): RequestOptions {
  const header = req.get(ORIGINATING_IDENTITY_HEADER);
  let originatingIdentity: RequestOptions['originatingIdentity'] = null;
  if (header !== undefined) {
    const parsed = parseOriginatingIdentity(header);
    if ('error' in parsed) throw new BadRequestError(`${parsed.error}.`);
    const problem = jsonProblem(parsed.value, ORIGINATING_IDENTITY_HEADER);
    if (problem) throw new BadRequestError(problem);
    originatingIdentity = parsed;
  }
  return { acceptsIncomplete: acceptsIncomplete(req), originatingIdentity, requestIdentity: req.requestIdentity };
}

/** The JSON body checked against its OSB shape; 400 naming each failing field. */
export function body<T>(req: Request, validate: ValidateFunction): T {
  const value: unknown = req.body;
  if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new BadRequestError('The request body must be a JSON object.');
  }
  const problem = jsonProblem(value, 'The request body');
  if (problem) throw new BadRequestError(problem);
  if (!validate(value))
    throw new BadRequestError(`The request body is invalid: ${describeErrors(validate.errors, '').join('; ')}.`);
  return value as T;
}

/** Deepest nesting accepted in a body; deeper JSON would exhaust the stack of validators and drivers. */
export const MAX_BODY_DEPTH = 64;

// An unpaired UTF-16 surrogate cannot be stored in jsonb.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * One pass over a JSON value from a client, without recursion: the first reason it cannot be
 * stored (U+0000, a lone surrogate, nesting too deep), if any. `what` names it in the message.
 */
export function jsonProblem(root: unknown, what: string): string | undefined {
  const stack: Array<{ value: unknown; depth: number }> = [{ value: root, depth: 1 }];
  while (stack.length > 0) {
    const { value, depth } = stack.pop()!;
    if (typeof value === 'string') {
      const problem = stringProblem(value, what);
      if (problem) return problem;
    } else if (value !== null && typeof value === 'object') {
      if (depth > MAX_BODY_DEPTH) return `${what} is nested deeper than ${MAX_BODY_DEPTH} levels.`;
      for (const [key, child] of Object.entries(value as JsonObject)) {
        const problem = stringProblem(key, what);
        if (problem) return problem;
        stack.push({ value: child, depth: depth + 1 });
      }
    }
  }
  return undefined;
}

function stringProblem(text: string, what: string): string | undefined {
  if (text.includes('\u0000')) return `${what} must not contain the character U+0000.`;
  if (LONE_SURROGATE.test(text)) return `${what} must not contain unpaired UTF-16 surrogates.`;
  return undefined;
}
