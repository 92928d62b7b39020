-- meter.track_usage() attached by hand (not through meter.track) to a table that is not
-- tracked (SPEC §7): the user's statement fails with 55000 and a hint to run
-- meter.track(); the trigger never registers the table or rebuilds usage from inside the
-- user's INSERT. Following the hint, the table's existing rows count once, later
-- statements add and remove incrementally, and verify() stays empty. A table registered
-- by hand and tracked by a row-level trigger of the user's own counts like any other.
BEGIN;
SET client_min_messages = warning;
SELECT plan(26);
SET LOCAL meter.tenant_id = 'manual';

-- Runs a statement; returns 'ok' or 'SQLSTATE: message | hint'.
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	msg text; hnt text;
BEGIN
	EXECUTE stmt;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hnt = PG_EXCEPTION_HINT;
	RETURN SQLSTATE || ': ' || msg || ' | ' || hnt;
END $$;
CREATE FUNCTION pg_temp.usage(m text) RETURNS numeric LANGUAGE sql AS $$
	SELECT value FROM meter.usage(m, now() - interval '1 day', now() + interval '1 day') $$;
CREATE FUNCTION pg_temp.raw(m text) RETURNS numeric LANGUAGE sql AS $$
	SELECT value FROM meter.usage_from_events(m, now() - interval '1 day', now() + interval '1 day') $$;

CREATE TABLE public.manual_events (LIKE meter.events INCLUDING DEFAULTS);
INSERT INTO public.manual_events (id, event_name, external_customer_id, properties)
	SELECT 'old' || g, 'e', 'c1', jsonb_build_object('v', g) FROM generate_series(1, 5) g;
SELECT lives_ok($$SELECT meter.create_meter('e', 'count', id => 'man_count')$$, 'meter created');
SELECT lives_ok($$SELECT meter.create_meter('e', 'sum', '{"type":"SUM","field":"v"}', id => 'man_sum')$$, 'second meter');

-- ── A row-level trigger attached by hand to an untracked table ──────────────────────
CREATE TRIGGER by_hand AFTER INSERT OR UPDATE OR DELETE ON public.manual_events
	FOR EACH ROW EXECUTE FUNCTION meter.track_usage();
SELECT throws_ok($$INSERT INTO public.manual_events (id, event_name, external_customer_id, properties)
	VALUES ('new0', 'e', 'c1', '{"v": 1}')$$,
	'55000', 'table public.manual_events is not tracked', 'an INSERT through it fails with 55000');
SELECT matches(pg_temp.err($$INSERT INTO public.manual_events (id, event_name, external_customer_id) VALUES ('new0', 'e', 'c1')$$),
	$$\| Run SELECT meter\.track\('public\.manual_events'\)$$, 'the hint says to run meter.track()');
SELECT throws_ok($$UPDATE public.manual_events SET properties = '{"v": 9}' WHERE id = 'old1'$$,
	'55000', 'table public.manual_events is not tracked', 'an UPDATE fails too');
SELECT throws_ok($$DELETE FROM public.manual_events WHERE id = 'old2'$$,
	'55000', 'table public.manual_events is not tracked', 'a DELETE fails too');
SELECT ok(NOT EXISTS (SELECT 1 FROM meter.tracked_tables WHERE relid = 'public.manual_events'::regclass),
	'the table was not registered from inside the user''s statements');
SELECT results_eq($$SELECT string_agg(id COLLATE "default", ',' ORDER BY id), sum((properties->>'v')::int) FROM public.manual_events$$,
	$$VALUES ('old1,old2,old3,old4,old5'::text, 15::bigint)$$, 'the failed statements changed no row');
SELECT is(pg_temp.usage('man_count'), 0::numeric, 'nothing of the untracked table counts');
DROP TRIGGER by_hand ON public.manual_events;

-- The same for a statement-level trigger with a transition table.
CREATE TRIGGER by_hand_stmt AFTER INSERT ON public.manual_events
	REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION meter.track_usage();
SELECT throws_ok($$INSERT INTO public.manual_events (id, event_name, external_customer_id) VALUES ('new0', 'e', 'c1')$$,
	'55000', 'table public.manual_events is not tracked', 'a statement-level trigger attached by hand fails too');
DROP TRIGGER by_hand_stmt ON public.manual_events;

-- ── Following the hint ──────────────────────────────────────────────────────────────
SELECT lives_ok($$SELECT meter.track('public.manual_events')$$, 'meter.track() of the table');
SELECT is(pg_temp.usage('man_count'), 5::numeric, 'the rows from before count once');
INSERT INTO public.manual_events (id, event_name, external_customer_id, properties)
	SELECT 'new' || g, 'e', 'c1', jsonb_build_object('v', 10 * g) FROM generate_series(1, 3) g;
SELECT is(pg_temp.usage('man_count'), 8::numeric, 'rows from before and the first statement count once');
SELECT is(pg_temp.usage('man_sum'), 75::numeric, 'sum over old and new rows');
INSERT INTO public.manual_events (id, event_name, external_customer_id, properties)
	VALUES ('later', 'e', 'c1', '{"v": 100}');
DELETE FROM public.manual_events WHERE id = 'old1';
SELECT is(pg_temp.usage('man_sum'), 174::numeric, 'later statements add and remove incrementally');
SELECT is(pg_temp.usage('man_sum'), pg_temp.raw('man_sum'), 'usage = usage_from_events');
SELECT is_empty($$SELECT * FROM meter.verify()$$, 'verify() is empty');

-- ── A table registered by hand, tracked by a row-level trigger of the user's own ────
CREATE TABLE public.manual_rows (LIKE meter.events INCLUDING DEFAULTS);
INSERT INTO meter.tracked_tables (relid) VALUES ('public.manual_rows');
CREATE TRIGGER by_hand AFTER INSERT OR UPDATE OR DELETE ON public.manual_rows
	FOR EACH ROW EXECUTE FUNCTION meter.track_usage();
SELECT lives_ok($$INSERT INTO public.manual_rows (id, event_name, external_customer_id, properties)
	SELECT 'row' || g, 'e', 'c2', jsonb_build_object('v', g) FROM generate_series(1, 4) g$$,
	'a registered table tracked by a row-level trigger accepts inserts');
UPDATE public.manual_rows SET properties = '{"v": 40}', external_customer_id = 'c3' WHERE id = 'row4';
DELETE FROM public.manual_rows WHERE id = 'row1';
SELECT is((SELECT value FROM meter.usage('man_sum', now() - interval '1 day', now() + interval '1 day', external_customer_id => 'c2')),
	5::numeric, 'row by row: inserts, an update moving an event to another customer and a delete (c2)');
SELECT is((SELECT value FROM meter.usage('man_sum', now() - interval '1 day', now() + interval '1 day', external_customer_id => 'c3')),
	40::numeric, 'row by row: the moved event counts for its new customer (c3)');
SELECT is(pg_temp.usage('man_count'), pg_temp.raw('man_count'), 'usage = usage_from_events over the three tables');
SELECT is_empty($$SELECT * FROM meter.verify()$$, 'verify() is empty');
-- ── The hint followed without dropping the trigger attached by hand ─────────────────
-- Two tracking triggers on one table must not count its events twice: meter.track()
-- either refuses (the INSERT then keeps failing) or the events count once.
CREATE TABLE public.manual_twice (LIKE meter.events INCLUDING DEFAULTS);
CREATE TRIGGER by_hand AFTER INSERT OR UPDATE OR DELETE ON public.manual_twice
	FOR EACH ROW EXECUTE FUNCTION meter.track_usage();
SELECT isnt(pg_temp.err($$SELECT meter.track('public.manual_twice')$$), NULL, 'meter.track() with a trigger attached by hand: answers');
SELECT isnt(pg_temp.err($$INSERT INTO public.manual_twice (id, event_name, external_customer_id, properties)
	VALUES ('twice1', 'e', 'c1', '{"v": 1000}')$$), NULL, 'an INSERT into it: answers');
SELECT is(pg_temp.usage('man_sum'), pg_temp.raw('man_sum'),
	'with a trigger by hand beside meter.track()''s: usage = usage_from_events (no event counted twice)');
SELECT is_empty($$SELECT * FROM meter.verify()$$, 'verify() is empty');

SELECT * FROM finish();
ROLLBACK;
