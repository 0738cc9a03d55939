/**
 * The catalog file's schema: the OSB catalog (spec.md, "Catalog Management") with the
 * checks Cloud Foundry's Cloud Controller applies at `cf create-service-broker`, plus the
 * `x-depot` keys Depot reads and does not serve.
 */
const nonEmpty = { type: 'string', minLength: 1, pattern: '\\S' };
const lowercaseName = { type: 'string', pattern: '^[a-z0-9][a-z0-9-]*$', maxLength: 255 };
const semver =
  '^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)' +
  '(?:-((?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\\.(?:0|[1-9]\\d*|\\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?' +
  '(?:\\+([0-9a-zA-Z-]+(?:\\.[0-9a-zA-Z-]+)*))?$';
const schemaParameters = {
  type: 'object',
  required: ['parameters'],
  properties: { parameters: { type: 'object', required: ['$schema'] } },
};

export const catalogFileSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  required: ['services'],
  properties: {
    services: {
      type: 'array',
      minItems: 1, // Cloud Foundry: "Service broker must provide at least one service"
      items: {
        type: 'object',
        required: ['id', 'name', 'description', 'bindable', 'plans', 'x-depot'],
        properties: {
          id: nonEmpty,
          name: lowercaseName,
          description: { ...nonEmpty, maxLength: 10000 },
          tags: { type: 'array', items: { type: 'string' } },
          requires: { type: 'array', items: { enum: ['syslog_drain', 'route_forwarding', 'volume_mount'] } },
          bindable: { type: 'boolean' },
          instances_retrievable: { type: 'boolean' },
          bindings_retrievable: { type: 'boolean' },
          allow_context_updates: { type: 'boolean' },
          plan_updateable: { type: 'boolean' },
          metadata: { type: 'object', properties: { shareable: { type: 'boolean' } } },
          dashboard_client: {
            type: 'object',
            required: ['id', 'secret', 'redirect_uri'],
            properties: { id: nonEmpty, secret: nonEmpty, redirect_uri: nonEmpty },
          },
          'x-depot': {
            type: 'object',
            required: ['offering'],
            properties: { offering: nonEmpty },
          },
          plans: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              required: ['id', 'name', 'description'],
              properties: {
                id: nonEmpty,
                name: lowercaseName,
                description: nonEmpty,
                metadata: { type: 'object' },
                free: { type: 'boolean' },
                bindable: { type: 'boolean' },
                binding_rotatable: { type: 'boolean' },
                plan_updateable: { type: 'boolean' },
                maximum_polling_duration: { type: 'integer', minimum: 1 },
                maintenance_info: {
                  type: 'object',
                  required: ['version'],
                  additionalProperties: false,
                  properties: { version: { type: 'string', pattern: semver }, description: { type: 'string' } },
                },
                schemas: {
                  type: 'object',
                  properties: {
                    service_instance: {
                      type: 'object',
                      properties: { create: schemaParameters, update: schemaParameters },
                    },
                    service_binding: { type: 'object', properties: { create: schemaParameters } },
                  },
                },
                'x-depot': {
                  type: 'object',
                  properties: {
                    requires_app: { type: 'boolean' },
                    credential_lifetime_seconds: { type: 'integer', minimum: 60 },
                    credential_renew_before_seconds: { type: 'integer', minimum: 1 },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
} as const;
