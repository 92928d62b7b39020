-- meter.track_usage() attached by hand (not through meter.track) to a table that already
-- holds events: the table joins the tracked tables, its existing rows count, nothing
-- counts twice, and verify() stays empty (SPEC §7).
BEGIN;
SET client_min_messages = warning;
SELECT plan(8);
SET meter.tenant_id = 'manual';
CREATE TABLE public.manual_events (LIKE meter.events INCLUDING DEFAULTS);
INSERT INTO public.manual_events (id, event_name, external_customer_id, properties)
	SELECT 'old' || g, 'e', 'c1', jsonb_build_object('v', g) FROM generate_series(1, 5) g;
SELECT lives_ok($$SELECT meter.create_meter('e', 'count', id => 'man_count')$$, 'meter created');
SELECT lives_ok($$SELECT meter.create_meter('e', 'sum', '{"type":"SUM","field":"v"}', id => 'man_sum')$$, 'second meter');
CREATE TRIGGER by_hand AFTER INSERT OR UPDATE OR DELETE ON public.manual_events
	FOR EACH ROW EXECUTE FUNCTION meter.track_usage();
INSERT INTO public.manual_events (id, event_name, external_customer_id, properties)
	SELECT 'new' || g, 'e', 'c1', jsonb_build_object('v', 10 * g) FROM generate_series(1, 3) g;
SELECT ok(EXISTS (SELECT 1 FROM meter.tracked_tables WHERE relid = 'public.manual_events'::regclass),
	'the table is registered as tracked');
SELECT is((SELECT sum(events) FROM meter.rollups WHERE meter_id = 'man_count'), 8::numeric,
	'rows from before the trigger and the first statement count once');
SELECT is((SELECT sum(sum) FROM meter.rollups WHERE meter_id = 'man_sum'), 75::numeric,
	'sum over old and new rows');
INSERT INTO public.manual_events (id, event_name, external_customer_id, properties)
	VALUES ('later', 'e', 'c1', '{"v": 100}');
DELETE FROM public.manual_events WHERE id = 'old1';
SELECT is((SELECT sum(sum) FROM meter.rollups WHERE meter_id = 'man_sum'), 174::numeric,
	'later statements add and remove incrementally');
SELECT is((SELECT count(*) FROM meter.verify()), 0::bigint, 'verify() is empty');
SELECT is((SELECT value FROM meter.usage('man_sum', now() - interval '1 day', now() + interval '1 day')), 174::numeric,
	'usage covers the table');
SELECT * FROM finish();
ROLLBACK;
