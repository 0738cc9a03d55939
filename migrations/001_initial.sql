-- Depot's state: service instances, service bindings and the operations that change them.
-- Postgres is the source of truth; BullMQ jobs only carry an operation id.

create table service_instances (
  id                text primary key,
  service_id        text not null,
  plan_id           text not null,
  organization_guid text,
  space_guid        text,
  context           jsonb not null default '{}',
  parameters        jsonb not null default '{}',
  maintenance_info  jsonb,
  dashboard_url     text,
  -- provisioning → provisioned → deprovisioning → deleted; a failed create is create_failed.
  state             text not null check (state in ('provisioning', 'provisioned', 'create_failed', 'deprovisioning', 'deleted')),
  created_at        timestamptz not null default now(),
  updated_at        timestamptz not null default now(),
  deleted_at        timestamptz
);
create index service_instances_deleted_at on service_instances (deleted_at) where deleted_at is not null;

create table service_bindings (
  id             text primary key,
  instance_id    text not null references service_instances (id) on delete cascade,
  service_id     text not null,
  plan_id        text not null,
  app_guid       text,
  bind_resource  jsonb,
  context        jsonb not null default '{}',
  parameters     jsonb not null default '{}',
  -- The bind response (credentials, endpoints, metadata), kept so an identical PUT and
  -- GET binding return the same body.
  response       jsonb,
  state          text not null check (state in ('binding', 'bound', 'create_failed', 'unbinding', 'deleted')),
  created_at     timestamptz not null default now(),
  updated_at     timestamptz not null default now(),
  deleted_at     timestamptz
);
create index service_bindings_instance on service_bindings (instance_id);

create table operations (
  id                   text primary key,
  instance_id          text not null references service_instances (id) on delete cascade,
  binding_id           text,
  type                 text not null check (type in ('provision', 'update', 'deprovision', 'bind', 'unbind')),
  state                text not null default 'in progress' check (state in ('in progress', 'succeeded', 'failed')),
  description          text,
  -- What the job needs to carry out the operation: the target plan, parameters, context.
  request              jsonb not null default '{}',
  originating_identity jsonb,
  request_identity     text,
  -- Only for a failed update or deprovision (spec: instance_usable, update_repeatable).
  instance_usable      boolean,
  update_repeatable    boolean,
  attempts             integer not null default 0,
  created_at           timestamptz not null default now(),
  updated_at           timestamptz not null default now(),
  finished_at          timestamptz,
  check ((binding_id is null) = (type in ('provision', 'update', 'deprovision')))
);

-- last_operation: the latest operation of an instance or a binding, one index scan.
create index operations_instance_latest on operations (instance_id, created_at desc) where binding_id is null;
create index operations_binding_latest on operations (binding_id, created_at desc) where binding_id is not null;
create index operations_in_progress on operations (updated_at) where state = 'in progress';

-- At most one instance operation and one operation per binding run at a time, whichever
-- replica accepted them (the API also locks the instance row; these are the backstop).
create unique index operations_one_active_per_instance on operations (instance_id)
  where state = 'in progress' and binding_id is null;
create unique index operations_one_active_per_binding on operations (binding_id)
  where state = 'in progress' and binding_id is not null;
