
-- ── Repository functions (SPEC §6): FlexPrice's meter Repository in SQL ──────────────
-- Each acts inside the current scope only: the tenant from meter.current_tenant() (error
-- 55000 when unset, checked before anything else) and the environment from
-- meter.current_environment(). SECURITY INVOKER: callers need privileges on
-- meter.meters, and row-level security applies to them as to any direct query.
-- Parameters are referred to as function.parameter and columns as m.column, so that
-- names shared by both (id, name, status, …) can never be confused.

CREATE FUNCTION meter.create_meter(
	event_name text,
	name text,
	aggregation meter.aggregation DEFAULT '{"type":"COUNT"}',
	filters meter.filters DEFAULT '[]',
	reset_usage meter.reset_usage DEFAULT 'BILLING_PERIOD',
	id text DEFAULT NULL)
RETURNS meter.meters
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	new_id text := COALESCE(create_meter.id, meter.new_id('meter'));
	created meter.meters;
BEGIN
	INSERT INTO meter.meters AS m (id, tenant_id, environment_id, event_name, name,
		aggregation, filters, reset_usage)
	VALUES (new_id, tenant, environment, create_meter.event_name, create_meter.name,
		create_meter.aggregation, create_meter.filters, create_meter.reset_usage)
	RETURNING m.* INTO created;
	RETURN created;
EXCEPTION WHEN unique_violation THEN
	RAISE EXCEPTION 'meter "%" already exists', new_id
		USING ERRCODE = 'unique_violation',
			DETAIL = 'Meter ids are unique across all tenants and environments.',
			HINT = 'Choose another id, or pass none (NULL) to get a generated one.';
END
$$;
COMMENT ON FUNCTION meter.create_meter(text, text, meter.aggregation, meter.filters, meter.reset_usage, text) IS
	'CreateMeter: a new published meter in the current scope; NULL id → meter_ + a ULID. Errors: 55000 no tenant, 22023 invalid meter, 23505 id taken';

CREATE FUNCTION meter.create_meter(meter jsonb)
RETURNS meter.meters
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	j jsonb := $1;
	key text;
	value jsonb;
	expected text;
	given text;
	new_id text;
	agg meter.aggregation;
	flt meter.filters;
	reset_value meter.reset_usage := 'BILLING_PERIOD';
	status_value meter.status := 'published';
	created_time timestamptz;
	updated_time timestamptz;
	created meter.meters;
BEGIN
	IF j IS NULL OR pg_catalog.jsonb_typeof(j) <> 'object' THEN
		RAISE EXCEPTION 'meter must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Got %s.', COALESCE('a JSON ' || pg_catalog.jsonb_typeof(j), 'NULL')),
				HINT = 'Pass an object such as {"event_name":"api_call","name":"API calls","aggregation":{"type":"COUNT"}}.';
	END IF;

	-- Every key known and of the right JSON type; null counts as absent.
	FOR key, value IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(j) AS e LOOP
		expected := CASE key
			WHEN 'aggregation' THEN 'object'
			WHEN 'filters' THEN 'array'
			WHEN 'id' THEN 'string' WHEN 'event_name' THEN 'string' WHEN 'name' THEN 'string'
			WHEN 'reset_usage' THEN 'string' WHEN 'status' THEN 'string'
			WHEN 'tenant_id' THEN 'string' WHEN 'environment_id' THEN 'string'
			WHEN 'created_at' THEN 'string' WHEN 'updated_at' THEN 'string'
			WHEN 'created_by' THEN 'string' WHEN 'updated_by' THEN 'string'
		END;
		IF expected IS NULL THEN
			RAISE EXCEPTION 'unknown meter key %', pg_catalog.to_json(key)
				USING ERRCODE = 'invalid_parameter_value',
					DETAIL = 'A meter has the keys id, event_name, name, aggregation, filters, reset_usage, status, '
						'tenant_id, environment_id, created_at, updated_at, created_by and updated_by only.',
					HINT = format('Remove %s or correct its spelling.', pg_catalog.to_json(key));
		END IF;
		IF pg_catalog.jsonb_typeof(value) NOT IN (expected, 'null') THEN
			RAISE EXCEPTION 'meter key "%" must be a JSON %', key, expected
				USING ERRCODE = 'invalid_parameter_value',
					DETAIL = format('Got a JSON %s.', pg_catalog.jsonb_typeof(value)),
					HINT = CASE expected
						WHEN 'object' THEN 'Write the aggregation as an object, e.g. {"type":"SUM","field":"tokens"}.'
						WHEN 'array' THEN 'Write the filters as an array, e.g. [{"key":"model","values":["gpt-4o"]}].'
						ELSE format('Write "%s" as a JSON string, or leave it out.', key) END;
		END IF;
	END LOOP;

	-- The scope comes from the settings; the JSON may repeat it, not contradict it.
	given := j->>'tenant_id';
	IF given IS NOT NULL AND given <> tenant THEN
		RAISE EXCEPTION 'tenant_id does not match the current tenant'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('The meter names tenant %s; the current tenant (meter.tenant_id) is %s.',
					pg_catalog.to_json(given), pg_catalog.to_json(tenant)),
				HINT = 'Leave tenant_id out of the JSON, or SET meter.tenant_id to that tenant first.';
	END IF;
	given := j->>'environment_id';
	IF given IS NOT NULL AND given <> environment THEN
		RAISE EXCEPTION 'environment_id does not match the current environment'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('The meter names environment %s; the current environment (meter.environment_id) is %s.',
					pg_catalog.to_json(given), pg_catalog.to_json(environment)),
				HINT = 'Leave environment_id out of the JSON, or SET meter.environment_id to that environment first.';
	END IF;

	given := j->>'reset_usage';
	IF given IS NOT NULL THEN
		IF NOT given = ANY (pg_catalog.enum_range(NULL::meter.reset_usage)::text[]) THEN
			RAISE EXCEPTION 'invalid reset_usage'
				USING ERRCODE = 'invalid_parameter_value',
					DETAIL = format('Got %s.', pg_catalog.to_json(given)),
					HINT = 'Use "BILLING_PERIOD" or "NEVER" (upper case), or leave it out for "BILLING_PERIOD".';
		END IF;
		reset_value := given::meter.reset_usage;
	END IF;
	given := j->>'status';
	IF given IS NOT NULL THEN
		IF NOT given = ANY (pg_catalog.enum_range(NULL::meter.status)::text[]) THEN
			RAISE EXCEPTION 'invalid status'
				USING ERRCODE = 'invalid_parameter_value',
					DETAIL = format('Got %s.', pg_catalog.to_json(given)),
					HINT = 'Use "published", "archived" or "deleted" (lower case), or leave it out for "published".';
		END IF;
		status_value := given::meter.status;
	END IF;

	-- Timestamps (FlexPrice's BaseModel) are kept when given, so meters can be imported.
	FOREACH key IN ARRAY ARRAY['created_at', 'updated_at'] LOOP
		given := j->>key;
		CONTINUE WHEN given IS NULL;
		IF given !~ '^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$' THEN
			RAISE EXCEPTION 'invalid %', key
				USING ERRCODE = 'invalid_parameter_value',
					DETAIL = format('Got %s, which is not an RFC 3339 timestamp.', pg_catalog.to_json(given)),
					HINT = format('Write %s like "2024-03-20T15:04:05Z", or leave it out for now().', key);
		END IF;
		BEGIN
			IF key = 'created_at' THEN
				created_time := given::timestamptz;
			ELSE
				updated_time := given::timestamptz;
			END IF;
		EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
			RAISE EXCEPTION 'invalid %', key
				USING ERRCODE = 'invalid_parameter_value',
					DETAIL = format('Got %s, which is not a valid date and time.', pg_catalog.to_json(given)),
					HINT = format('Write %s like "2024-03-20T15:04:05Z", or leave it out for now().', key);
		END;
	END LOOP;

	-- The types validate their own JSON (22023 with their own messages).
	IF j->'aggregation' IS NULL OR j->'aggregation' = 'null' THEN
		agg := '{"type":"COUNT"}';
	ELSE
		agg := (j->'aggregation')::meter.aggregation;
	END IF;
	IF j->'filters' IS NULL OR j->'filters' = 'null' THEN
		flt := '[]';
	ELSE
		flt := (j->'filters')::meter.filters;
	END IF;

	new_id := COALESCE(j->>'id', meter.new_id('meter'));
	BEGIN
		INSERT INTO meter.meters AS m (id, tenant_id, environment_id, event_name, name,
			aggregation, filters, reset_usage, status, created_at, updated_at, created_by, updated_by)
		VALUES (new_id, tenant, environment, j->>'event_name', j->>'name', agg, flt, reset_value, status_value,
			COALESCE(created_time, pg_catalog.now()),
			COALESCE(updated_time, pg_catalog.now()),
			COALESCE(j->>'created_by', meter.current_user_id()),
			COALESCE(j->>'updated_by', meter.current_user_id()))
		RETURNING m.* INTO created;
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'meter "%" already exists', new_id
			USING ERRCODE = 'unique_violation',
				DETAIL = 'Meter ids are unique across all tenants and environments.',
				HINT = 'Choose another id, or leave "id" out to get a generated one.';
	END;
	RETURN created;
END
$$;
COMMENT ON FUNCTION meter.create_meter(jsonb) IS
	'CreateMeter from FlexPrice''s meter JSON {id?, event_name, name, aggregation?, filters?, reset_usage?, status?, BaseModel keys?}. Errors: 55000, 22023 (unknown key, wrong JSON type, other scope, invalid value), 23505';

CREATE FUNCTION meter.get_meter(id text)
RETURNS meter.meters
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	found_meter meter.meters;
BEGIN
	IF get_meter.id IS NULL THEN
		RAISE EXCEPTION 'id is required'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'The meter id is NULL.',
				HINT = 'Pass the id of a meter; meter.list_meters() shows the meters of the current scope.';
	END IF;
	SELECT m.* INTO found_meter
	FROM meter.meters AS m
	WHERE m.id = get_meter.id AND m.tenant_id = tenant AND m.environment_id = environment
		AND m.status <> 'deleted';
	IF NOT FOUND THEN
		RAISE EXCEPTION 'meter "%" not found', get_meter.id
			USING ERRCODE = 'no_data_found',
				DETAIL = format('No meter with this id exists in tenant %s, environment %s (deleted meters count as not found).',
					pg_catalog.to_json(tenant), pg_catalog.to_json(environment)),
				HINT = 'Check the id and the settings meter.tenant_id and meter.environment_id; meter.list_meters() shows the meters of the current scope.';
	END IF;
	RETURN found_meter;
END
$$;
COMMENT ON FUNCTION meter.get_meter(text) IS
	'GetMeter: the meter with this id in the current scope. Errors: 55000 no tenant, P0002 unknown or deleted';

-- The listing engine behind list_meters and list_all_meters ("limit" NULL = no limit).
-- The sort column is chosen by CASE expressions, never by building SQL from the argument.
CREATE FUNCTION meter.list_meters_page(
	event_name text, meter_ids text[], status meter.status,
	start_time timestamptz, end_time timestamptz, sort text, "order" text,
	"limit" integer, "offset" integer)
RETURNS SETOF meter.meters
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	sort_by text := pg_catalog.lower(COALESCE(list_meters_page.sort, 'created_at'));
	direction text := pg_catalog.lower(COALESCE(list_meters_page."order", 'desc'));
	up boolean;
BEGIN
	IF sort_by NOT IN ('created_at', 'updated_at', 'name', 'event_name') THEN
		RAISE EXCEPTION 'invalid sort field'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Got sort => %s.', pg_catalog.to_json(list_meters_page.sort)),
				HINT = 'Sort by created_at, updated_at, name or event_name.';
	END IF;
	IF direction NOT IN ('asc', 'desc') THEN
		RAISE EXCEPTION 'invalid sort order'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Got "order" => %s.', pg_catalog.to_json(list_meters_page."order")),
				HINT = 'Use "order" => ''asc'' or ''desc''.';
	END IF;
	up := direction = 'asc';
	IF list_meters_page.end_time < list_meters_page.start_time THEN
		RAISE EXCEPTION 'end_time must not be before start_time'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Got start_time %s and end_time %s.', pg_catalog.to_json(list_meters_page.start_time), pg_catalog.to_json(list_meters_page.end_time)),
				HINT = 'Swap the two, or leave either out for an open-ended range (the range is inclusive on created_at).';
	END IF;

	RETURN QUERY
	SELECT m.*
	FROM meter.meters AS m
	WHERE m.tenant_id = tenant AND m.environment_id = environment
		AND (list_meters_page.event_name IS NULL OR m.event_name = list_meters_page.event_name)
		AND (list_meters_page.meter_ids IS NULL OR m.id = ANY (list_meters_page.meter_ids))
		AND CASE WHEN list_meters_page.status IS NULL THEN m.status <> 'deleted'
			ELSE m.status = list_meters_page.status END
		AND (list_meters_page.start_time IS NULL OR m.created_at >= list_meters_page.start_time)
		AND (list_meters_page.end_time IS NULL OR m.created_at <= list_meters_page.end_time)
	ORDER BY
		CASE WHEN sort_by = 'created_at' AND up THEN m.created_at END ASC,
		CASE WHEN sort_by = 'created_at' AND NOT up THEN m.created_at END DESC,
		CASE WHEN sort_by = 'updated_at' AND up THEN m.updated_at END ASC,
		CASE WHEN sort_by = 'updated_at' AND NOT up THEN m.updated_at END DESC,
		CASE WHEN sort_by = 'name' AND up THEN m.name END ASC,
		CASE WHEN sort_by = 'name' AND NOT up THEN m.name END DESC,
		CASE WHEN sort_by = 'event_name' AND up THEN m.event_name END ASC,
		CASE WHEN sort_by = 'event_name' AND NOT up THEN m.event_name END DESC,
		CASE WHEN up THEN m.id END ASC,
		CASE WHEN NOT up THEN m.id END DESC
	LIMIT list_meters_page."limit" OFFSET COALESCE(list_meters_page."offset", 0);
END
$$;
COMMENT ON FUNCTION meter.list_meters_page(text, text[], meter.status, timestamptz, timestamptz, text, text, integer, integer) IS
	'Internal: the listing behind meter.list_meters and meter.list_all_meters (limit NULL = all); call those instead';

CREATE FUNCTION meter.list_meters(
	event_name text DEFAULT NULL,
	meter_ids text[] DEFAULT NULL,
	status meter.status DEFAULT NULL,
	start_time timestamptz DEFAULT NULL,
	end_time timestamptz DEFAULT NULL,
	sort text DEFAULT 'created_at',
	"order" text DEFAULT 'desc',
	"limit" integer DEFAULT 50,
	"offset" integer DEFAULT 0)
RETURNS SETOF meter.meters
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	page_size integer := COALESCE(list_meters."limit", 50);
	skip integer := COALESCE(list_meters."offset", 0);
BEGIN
	IF page_size < 1 OR page_size > 1000 THEN
		RAISE EXCEPTION 'limit must be between 1 and 1000'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Got "limit" => %s.', page_size),
				HINT = 'Page through longer lists with "offset", or use meter.list_all_meters().';
	END IF;
	IF skip < 0 THEN
		RAISE EXCEPTION 'offset must not be negative'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Got "offset" => %s.', skip),
				HINT = 'Use "offset" => 0 for the first page.';
	END IF;
	RETURN QUERY
	SELECT * FROM meter.list_meters_page(list_meters.event_name, list_meters.meter_ids,
		list_meters.status, list_meters.start_time, list_meters.end_time,
		list_meters.sort, list_meters."order", page_size, skip);
END
$$;
COMMENT ON FUNCTION meter.list_meters(text, text[], meter.status, timestamptz, timestamptz, text, text, integer, integer) IS
	'List: one page of the meters of the current scope (no status → published and archived; created_at range inclusive; ties by id). Errors: 55000, 22023 bad limit/offset/sort/order/range';

CREATE FUNCTION meter.list_all_meters(
	event_name text DEFAULT NULL,
	meter_ids text[] DEFAULT NULL,
	status meter.status DEFAULT NULL,
	start_time timestamptz DEFAULT NULL,
	end_time timestamptz DEFAULT NULL,
	sort text DEFAULT 'created_at',
	"order" text DEFAULT 'desc')
RETURNS SETOF meter.meters
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
BEGIN
	RETURN QUERY
	SELECT * FROM meter.list_meters_page(list_all_meters.event_name, list_all_meters.meter_ids,
		list_all_meters.status, list_all_meters.start_time, list_all_meters.end_time,
		list_all_meters.sort, list_all_meters."order", NULL, 0);
END
$$;
COMMENT ON FUNCTION meter.list_all_meters(text, text[], meter.status, timestamptz, timestamptz, text, text) IS
	'ListAll: every meter of the current scope that list_meters would page through. Errors: 55000, 22023 bad sort/order/range';

CREATE FUNCTION meter.count_meters(
	event_name text DEFAULT NULL,
	meter_ids text[] DEFAULT NULL,
	status meter.status DEFAULT NULL,
	start_time timestamptz DEFAULT NULL,
	end_time timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	total bigint;
BEGIN
	IF count_meters.end_time < count_meters.start_time THEN
		RAISE EXCEPTION 'end_time must not be before start_time'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = format('Got start_time %s and end_time %s.', pg_catalog.to_json(count_meters.start_time), pg_catalog.to_json(count_meters.end_time)),
				HINT = 'Swap the two, or leave either out for an open-ended range (the range is inclusive on created_at).';
	END IF;
	SELECT pg_catalog.count(*) INTO total
	FROM meter.meters AS m
	WHERE m.tenant_id = tenant AND m.environment_id = environment
		AND (count_meters.event_name IS NULL OR m.event_name = count_meters.event_name)
		AND (count_meters.meter_ids IS NULL OR m.id = ANY (count_meters.meter_ids))
		AND CASE WHEN count_meters.status IS NULL THEN m.status <> 'deleted'
			ELSE m.status = count_meters.status END
		AND (count_meters.start_time IS NULL OR m.created_at >= count_meters.start_time)
		AND (count_meters.end_time IS NULL OR m.created_at <= count_meters.end_time);
	RETURN total;
END
$$;
COMMENT ON FUNCTION meter.count_meters(text, text[], meter.status, timestamptz, timestamptz) IS
	'Count: how many meters list_all_meters would return for the same filters. Errors: 55000, 22023 bad range';

CREATE FUNCTION meter.disable_meter(id text)
RETURNS meter.meters
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	changed meter.meters;
BEGIN
	IF disable_meter.id IS NULL THEN
		RAISE EXCEPTION 'id is required'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'The meter id is NULL.',
				HINT = 'Pass the id of a meter; meter.list_meters() shows the meters of the current scope.';
	END IF;
	-- The stamps are set here as well as by the catalog trigger: on a Citus cluster the
	-- statement carries them, evaluated once, on the coordinator (README "Scaling out").
	UPDATE meter.meters AS m SET status = 'archived', updated_at = pg_catalog.now(),
		updated_by = meter.current_user_id()
	WHERE m.id = disable_meter.id AND m.tenant_id = tenant AND m.environment_id = environment
		AND m.status = 'published'
	RETURNING m.* INTO changed;
	IF FOUND THEN
		RETURN changed;
	END IF;
	-- Already archived: nothing to do (idempotent; updated_at stays).
	SELECT m.* INTO changed
	FROM meter.meters AS m
	WHERE m.id = disable_meter.id AND m.tenant_id = tenant AND m.environment_id = environment
		AND m.status = 'archived';
	IF NOT FOUND THEN
		RAISE EXCEPTION 'meter "%" not found', disable_meter.id
			USING ERRCODE = 'no_data_found',
				DETAIL = format('No meter with this id exists in tenant %s, environment %s (deleted meters count as not found).',
					pg_catalog.to_json(tenant), pg_catalog.to_json(environment)),
				HINT = 'Check the id and the settings meter.tenant_id and meter.environment_id; meter.list_meters() shows the meters of the current scope.';
	END IF;
	RETURN changed;
END
$$;
COMMENT ON FUNCTION meter.disable_meter(text) IS
	'DisableMeter: status archived (stops counting; usage history stays); idempotent. Errors: 55000 no tenant, P0002 unknown or deleted';

CREATE FUNCTION meter.update_meter(id text, filters meter.filters)
RETURNS meter.meters
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	tenant text := meter.current_tenant();
	environment text := meter.current_environment();
	changed meter.meters;
BEGIN
	IF update_meter.id IS NULL THEN
		RAISE EXCEPTION 'id is required'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'The meter id is NULL.',
				HINT = 'Pass the id of a meter; meter.list_meters() shows the meters of the current scope.';
	END IF;
	IF update_meter.filters IS NULL THEN
		RAISE EXCEPTION 'filters cannot be null'
			USING ERRCODE = 'invalid_parameter_value',
				DETAIL = 'update_meter replaces the meter''s filters with the ones given.',
				HINT = 'Use ''[]'' for a meter that counts every event of its event name.';
	END IF;
	UPDATE meter.meters AS m SET filters = update_meter.filters, updated_at = pg_catalog.now(),
		updated_by = meter.current_user_id()
	WHERE m.id = update_meter.id AND m.tenant_id = tenant AND m.environment_id = environment
		AND m.status <> 'deleted'
	RETURNING m.* INTO changed;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'meter "%" not found', update_meter.id
			USING ERRCODE = 'no_data_found',
				DETAIL = format('No meter with this id exists in tenant %s, environment %s (deleted meters count as not found).',
					pg_catalog.to_json(tenant), pg_catalog.to_json(environment)),
				HINT = 'Check the id and the settings meter.tenant_id and meter.environment_id; meter.list_meters() shows the meters of the current scope.';
	END IF;
	RETURN changed;
END
$$;
COMMENT ON FUNCTION meter.update_meter(text, meter.filters) IS
	'UpdateMeter: replaces the filters (''[]'' allowed) of a published or archived meter. Errors: 55000 no tenant, 22023 NULL filters, P0002 unknown or deleted';
