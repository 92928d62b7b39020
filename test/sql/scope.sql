-- Scope settings and ids (SPEC §5, §4)
SELECT meter.current_environment() AS default_environment;
SELECT meter.current_tenant();
SET meter.tenant_id = '';
SELECT meter.current_tenant();
SET meter.tenant_id = 'acme';
SELECT meter.current_tenant();
SET meter.environment_id = 'prod';
SELECT meter.current_environment();
SELECT meter.current_user_id() IS NULL AS no_user;
SET meter.user_id = 'alice';
SELECT meter.current_user_id();
SET meter.no_such_setting = 'x';
-- ids: prefix, 26 Crockford characters, time-ordered within a backend
SELECT meter.new_id('meter') ~ '^meter_[0-9A-HJKMNP-TV-Z]{26}$' AS well_formed;
SELECT length(meter.new_id('')) AS bare_length;
SELECT bool_and(a < b) AS ordered
FROM (SELECT meter.new_id('e') AS a, meter.new_id('e') AS b FROM generate_series(1, 1000)) s;
SELECT count(DISTINCT meter.new_id('e')) AS distinct_ids FROM generate_series(1, 10000);
