-- The demo: a tenant's meters, events in, usage out. Run by scripts/demo.sh.
\pset footer off
CREATE EXTENSION meter;
SET meter.tenant_id = 'acme';
SET meter.user_id = 'demo';
\echo '-- scope: tenant acme, default environment'
SELECT meter.current_tenant() AS tenant, meter.current_environment() AS environment;
