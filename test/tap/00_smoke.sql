-- The extension installs into schema meter, with the settings and id function working.
BEGIN;
SET client_min_messages = warning;
SELECT plan(4);
SELECT has_schema('meter');
SELECT is((SELECT extrelocatable FROM pg_extension WHERE extname = 'meter'), false, 'not relocatable');
SELECT throws_ok('SELECT meter.current_tenant()', '55000', 'no tenant is set', 'unset tenant is 55000');
SELECT matches(meter.new_id('x'), '^x_[0-9A-Z]{26}$', 'new_id is prefix + ULID');
SELECT * FROM finish();
ROLLBACK;
