-- Drift repair: when a worker last checked an instance's objects on its offering's server. Workers
-- claim the instances due (null first) with FOR UPDATE SKIP LOCKED, so each is checked once a period.
alter table service_instances add column drift_checked_at timestamptz;
create index service_instances_drift_due on service_instances (drift_checked_at nulls first)
  where state = 'provisioned';
