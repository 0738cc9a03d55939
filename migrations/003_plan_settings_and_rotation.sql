-- maintenance_info: an instance keeps the offering settings (`x-depot`) of its plan as they
-- were when it was provisioned or last upgraded, so a catalog change reaches it only through
-- an upgrade (a PATCH with the plan's maintenance_info) or a plan change.
-- Null for instances created before this migration: they follow the catalog's settings.
alter table service_instances add column plan_settings jsonb;

-- Binding rotation (OSB v2.17): the binding this one replaces, if it was created by rotation.
alter table service_bindings add column predecessor_binding_id text;
