-- Encryption at rest (AES-256-GCM): parameters, contexts, request bodies, originating identities
-- and bind responses are stored sealed, as text `depot1:<key id>:<base64>`. The column types
-- change here; the rows that exist are sealed with the first key in the same transaction, by the
-- code step of this migration (broker/db/migration-steps.ts).
alter table service_instances
  alter column context drop default, alter column context type text using context::text,
  alter column parameters drop default, alter column parameters type text using parameters::text;

alter table service_bindings
  alter column bind_resource type text using bind_resource::text,
  alter column context drop default, alter column context type text using context::text,
  alter column parameters drop default, alter column parameters type text using parameters::text,
  alter column response type text using response::text;

alter table operations
  alter column request drop default, alter column request type text using request::text,
  alter column originating_identity type text using originating_identity::text;

-- Every key that has sealed a value and may still be named by one. A key leaves this list
-- (retired_at) only when `npm run rotate-keys` has found no value sealed with it. Depot refuses
-- to start without every key listed here that is not retired.
create table encryption_keys (
  id          text primary key,
  -- A known text sealed with the key: tells a key of the same id but other bytes.
  check_value text not null,
  created_at  timestamptz not null default now(),
  retired_at  timestamptz
);
