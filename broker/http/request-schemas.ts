import { compileSchema } from '../catalog/json-schema.js';

/**
 * Shapes of the OSB request bodies (spec.md, "Request" tables). Unknown fields are allowed
 * everywhere (spec: receivers MUST ignore unknown fields). Compiled once at start.
 */
const id = { type: 'string', minLength: 1, maxLength: 255 };
const object = { type: 'object' };
const maintenanceInfo = {
  type: 'object',
  properties: { version: { type: 'string', minLength: 1 }, description: { type: 'string' } },
};
const draft = 'http://json-schema.org/draft-07/schema#';

export const validateProvisionBody = compileSchema({
  $schema: draft,
  type: 'object',
  required: ['service_id', 'plan_id', 'organization_guid', 'space_guid'],
  properties: {
    service_id: id,
    plan_id: id,
    organization_guid: id,
    space_guid: id,
    context: object,
    parameters: object,
    maintenance_info: maintenanceInfo,
  },
});

export const validateUpdateBody = compileSchema({
  $schema: draft,
  type: 'object',
  required: ['service_id'],
  properties: {
    service_id: id,
    plan_id: id,
    context: object,
    parameters: object,
    maintenance_info: maintenanceInfo,
    previous_values: {
      type: 'object',
      properties: {
        service_id: { type: 'string' },
        plan_id: { type: 'string' },
        organization_id: { type: 'string' },
        space_id: { type: 'string' },
        maintenance_info: maintenanceInfo,
      },
    },
  },
});

export const validateBindBody = compileSchema({
  $schema: draft,
  type: 'object',
  required: ['service_id', 'plan_id'],
  properties: {
    service_id: id,
    plan_id: id,
    context: object,
    app_guid: id,
    bind_resource: { type: 'object', properties: { app_guid: id, route: { type: 'string', minLength: 1 } } },
    parameters: object,
    predecessor_binding_id: id,
  },
});
