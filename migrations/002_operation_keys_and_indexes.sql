-- A binding's operations go with it when its tombstone is purged (last_operation → 404).
alter table operations
  add constraint operations_binding_fk foreign key (binding_id) references service_bindings (id) on delete cascade;

-- Mutations look up the operations running on an instance while holding its row lock.
create index operations_active_by_instance on operations (instance_id) where state = 'in progress';
-- Deleting an instance (reprovision, purge) finds all its operations.
create index operations_by_instance on operations (instance_id);
-- The purge of binding tombstones.
create index service_bindings_deleted_at on service_bindings (deleted_at) where state = 'deleted';

-- Never read.
alter table operations drop column attempts;
