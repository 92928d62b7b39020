#!/usr/bin/python3
"""Fuzzing every input of the extension (SPEC §9: bad input gets a clear error, never a
crash, never silent loss).

Generated and mutated inputs — random bytes, truncated and deeply nested JSON, huge
numbers (1e400, 1e100000, 1e1000000), \\u0000 and lone-surrogate escapes, very long keys
and values, wrong JSON types — are fed to:
  - the text input of meter.aggregation, meter.filters and meter.aggregate_state (and,
    when the text is JSON, their casts from jsonb; accepted values must round-trip);
  - meter.matches / meter.explain_filters (filters × properties);
  - meter.ingest(jsonb), when it exists;
  - the tracking trigger: INSERTs into meter.events with random properties and
    timestamps (meters of every aggregation type defined), plus UPDATEs and DELETEs;
  - invalid UTF-8 (only a SQL_ASCII database lets such bytes reach an input function).
Inputs are sent in arrays to a plpgsql loop that runs each one in its own EXCEPTION
block and records its SQLSTATE. Allowed error classes (CLEAN below):
  22 data exception (22P02 not JSON, 22023 rule broken, 22003 out of range, 22P05,
     22021, 22008 bad timestamp), 23 integrity (CHECK on events.properties),
  42 syntax/access rule, 54 program limit (stack depth of deep nesting),
  0A feature not supported, P0 plpgsql RAISE (P0001) and not found (P0002).
Anything else (XX000 internal error, a lost connection) fails. At the end the server
must not have restarted (pg_postmaster_start_time unchanged) and meter.verify() must be
empty in every tenant.

Knobs: FUZZ_N (default 100000 inputs), FUZZ_SEED (default random; printed).
"""
import os
import random
import sys
import time

import psycopg2

N = int(os.environ.get("FUZZ_N", "5000" if os.environ.get("METER_VALGRIND") == "1" else "100000"))
SEED = int(os.environ.get("FUZZ_SEED", str(random.randrange(1 << 30))))
DB = "meter_fuzz_%d" % os.getpid()
DB_ASCII = "meter_fuzz_ascii_%d" % os.getpid()
CLEAN = ("22", "23", "42", "54", "0A", "P0")
BATCH = 2000

rng = random.Random(SEED)

HUGE = ["1e400", "1e100000", "-1e100000", "1e1000000", "1e-400", "1e-100000",
        "123456789012345678901234567890.123456789e-20", "-0", "0.0000000000000000001",
        "9" * 2000, "1" + "0" * 131072, "NaN", "Infinity", "-Infinity", "1e", "1.e5", "-",
        ".5", "01", "1E+2", "0x10", "1_000"]
ESCAPES = ["\\u0000", "\\ud800", "\\udfff", "\\ud83d\\ude00", "\\uffff", "\\u00e9",
           "\\x41", "\\", "\\\"", "\\n", "\\u12", "\\uZZZZ"]
WRONG = ["[]", "{}", "null", "true", "false", "1", "\"\"", "\"x\"", "[null]", "[1,2]",
         "{\"a\":{}}", "[[]]", "-1", "1e400"]
TYPES = ["COUNT", "SUM", "AVG", "COUNT_UNIQUE", "MAX", "MIN", "LATEST",
         "SUM_WITH_MULTIPLIER", "WEIGHTED_SUM"]
WINDOWS = ["MINUTE", "15MIN", "30MIN", "HOUR", "3HOUR", "6HOUR", "12HOUR", "DAY", "WEEK",
           "MONTH"]
KEYS = ["v", "model", "ключ", "tokens", "region", "", " ", "a\"b", "\\u0000"]
ALPHABET = '{}[]":,\\-+.eE0123456789 tnfrualsx\u00e9\u4e2d\U0001F600\t\n'


def size(small, big):
    """Mostly small; a giant size (deep nesting, 100 kB strings) for a few inputs only,
    so that 100,000 inputs stay fast."""
    return big if rng.random() < 0.004 else small


def jstr(s):
    """A JSON string literal for s (already escaped parts kept as they are)."""
    return '"' + s + '"'


def long_text(n):
    return rng.choice(["k", "é", "中", "x1"]) * n


def rand_scalar():
    r = rng.random()
    if r < 0.3:
        return str(rng.choice([0, 1, -1, 2.5, 42, 10 ** 20, -3.75]))
    if r < 0.45:
        h = rng.choice(HUGE)
        return h if len(h) < 100 else size("1e400", h)
    if r < 0.6:
        return jstr(rng.choice(["1", "2.0", "gpt-4o", "o1-mini", "true", "", " 1", "NaN", "1e400",
                                "abc", "中文"]))
    if r < 0.7:
        return jstr(rng.choice(ESCAPES))
    if r < 0.75:
        return jstr(long_text(size(rng.choice([100, 1000]), 100000)))
    return rng.choice(WRONG)


def nest(s, depth):
    r = rng.random()
    if r < 0.5:
        return "[" * depth + s + "]" * depth
    if r < 0.8:
        return '{"a":' * depth + s + "}" * depth
    return "[" * depth + s  # unbalanced


def valid_aggregation():
    t = rng.choice(TYPES)
    parts = ['"type":' + jstr(t)]
    if t != "COUNT" or rng.random() < 0.2:
        parts.append('"field":' + jstr(rng.choice(KEYS[:4])))
    if t == "SUM_WITH_MULTIPLIER":
        parts.append('"multiplier":' + rng.choice(["1.5", "2", "\"0.001\"", "1e400"]))
    if t in ("MAX", "SUM") and rng.random() < 0.5:
        parts.append('"bucket_size":' + jstr(rng.choice(WINDOWS)))
    rng.shuffle(parts)
    return "{" + ",".join(parts) + "}"


def valid_filters():
    fs = []
    for _ in range(rng.randrange(0, 4)):
        vals = ",".join(jstr(rng.choice(["gpt-4o", "1", "2.0", "true", "false", "x", "中"]))
                        for _ in range(rng.randrange(1, 4)))
        fs.append('{"key":%s,"values":[%s]}' % (jstr(rng.choice(KEYS[:5])), vals))
    return "[" + ",".join(fs) + "]"


def properties():
    items = []
    for _ in range(rng.randrange(0, 6)):
        k = rng.choice(KEYS) if rng.random() < 0.9 else long_text(size(300, 70000))
        v = rand_scalar()
        if rng.random() < 0.05:
            v = nest(v, size(rng.choice([2, 50]), 3000))
        items.append(jstr(k) + ":" + v)
    return "{" + ",".join(items) + "}"


def mutate(s):
    """One to three random mutations of a JSON text."""
    for _ in range(rng.randrange(1, 4)):
        r = rng.random()
        n = len(s)
        if r < 0.15 and n:
            s = s[:rng.randrange(n)]                              # truncate
        elif r < 0.3:
            i = rng.randrange(n + 1)
            s = s[:i] + rng.choice(ALPHABET) + s[i:]              # insert a character
        elif r < 0.4 and n:
            i = rng.randrange(n)
            s = s[:i] + s[i + rng.randrange(1, 5):]               # delete a few
        elif r < 0.5 and n:
            i = rng.randrange(n)
            j = min(n, i + rng.randrange(1, 20))
            s = s[:j] + s[i:j] + s[j:]                            # duplicate a slice
        elif r < 0.6:
            h = rng.choice(HUGE)
            s = s.replace(rng.choice(["1.5", "2", "42", "1", "0"]), h if len(h) < 100 else size("1e-400", h), 1)
        elif r < 0.68:
            s = s.replace('"', '"' + rng.choice(ESCAPES), 1)
        elif r < 0.76:
            s = nest(s, size(rng.choice([1, 2, 10, 200]), rng.choice([1000, 100000])))
        elif r < 0.84:
            for w in ('"SUM"', '"COUNT"', '"gpt-4o"', '"v"', '[', '"values"'):
                if w in s:
                    s = s.replace(w, rng.choice(WRONG), 1)
                    break
        elif r < 0.9:
            s = s.replace('"v"', jstr(long_text(size(1000, 200000))), 1)
        elif r < 0.95:
            i = rng.randrange(n + 1)                              # a duplicate key
            s = s[:i] + '"type":"SUM","type":"COUNT",' + s[i:]
        else:
            s = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 40)))
    return s


def random_text():
    r = rng.random()
    if r < 0.5:
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 30)))
    if r < 0.8:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(0, 30)))
    return rng.choice(["", " ", "null", "[]", "{}", "\"\"", "{\"type\":null}", "[{}]"])


def no_nul(s):
    return s.replace("\x00", "\\u0000")


def gen(valid, share_valid=0.05, share_random=0.1):
    r = rng.random()
    if r < share_valid:
        return valid()
    if r < share_valid + share_random:
        return no_nul(random_text())
    return no_nul(mutate(valid()))


def valid_state(samples):
    return rng.choice(samples)


TIMESTAMPS = ["2024-01-01 00:00:00+00", "1999-12-31 23:59:59.999999+00", "2000-01-01 00:00:00+00",
              "1970-01-01 00:00:00+00", "1969-12-31 23:52:30+00", "infinity", "-infinity",
              "4713-01-01 00:00:00+00 BC", "294276-12-31 23:59:59+00", "2024-13-01", "garbage",
              "2024-03-31 01:30:00 Europe/Berlin", "0001-01-01 00:00:00+00"]


def rand_ts():
    if rng.random() < 0.8:
        return "2024-%02d-%02d %02d:%02d:%02d+00" % (rng.randrange(1, 13), rng.randrange(1, 29),
                                                      rng.randrange(24), rng.randrange(60), rng.randrange(60))
    return rng.choice(TIMESTAMPS)


def ingest_input():
    def event():
        keys = {"event_name": jstr(rng.choice(["e", "", "x" * 300])),
                "customer_id": jstr(rng.choice(["c1", "c2", ""])),
                "timestamp": jstr(rng.choice(["2024-01-02T03:04:05Z", "2024-01-02T03:04:05+01:00",
                                              "not a time", "infinity", "2024-02-30T00:00:00Z"])),
                "properties": properties()}
        if rng.random() < 0.5:
            keys["id"] = jstr("ev%d" % rng.randrange(500))
        if rng.random() < 0.1:
            keys["event_id"] = jstr("ev%d" % rng.randrange(500))
        if rng.random() < 0.1:
            keys["external_customer_id"] = rng.choice(WRONG + ['"x"'])
        if rng.random() < 0.1:
            del keys[rng.choice(list(keys))]
        return "{" + ",".join(jstr(k) + ":" + v for k, v in keys.items()) + "}"
    if rng.random() < 0.5:
        s = event()
    else:
        s = "[" + ",".join(event() for _ in range(rng.randrange(0, 5))) + "]"
    return no_nul(mutate(s)) if rng.random() < 0.4 else s


SETUP = r"""
CREATE EXTENSION meter;
CREATE FUNCTION fuzz_types(kind text, inputs text[], props text)
RETURNS TABLE (what text, sqlstate text, n bigint, example text, message text)
LANGUAGE plpgsql AS $f$
DECLARE
	x text; st text; msg text; w text;
	a meter.aggregation; f meter.filters; s meter.aggregate_state;
	whats text[] := '{}'; states text[] := '{}'; examples text[] := '{}'; msgs text[] := '{}';
BEGIN
	FOREACH x IN ARRAY inputs LOOP
		-- 1. the text input (and output, round trip)
		w := kind || ' text';
		BEGIN
			IF kind = 'aggregation' THEN
				a := x::meter.aggregation;
				IF a::text::meter.aggregation::text IS DISTINCT FROM a::text THEN
					RAISE EXCEPTION 'no round trip' USING ERRCODE = 'XX001';
				END IF;
				PERFORM meter.type_of(a), meter.field_of(a), meter.multiplier_of(a), meter.bucket_size_of(a),
					meter.aggregate(a, props::jsonb, now(), now(), now() + interval '1 day');
			ELSIF kind = 'filters' THEN
				f := x::meter.filters;
				IF f::text::meter.filters::text IS DISTINCT FROM f::text THEN
					RAISE EXCEPTION 'no round trip' USING ERRCODE = 'XX001';
				END IF;
				PERFORM meter.filter_keys(f), meter.matches(f, props::jsonb), meter.explain_filters(f, props::jsonb);
			ELSE
				s := x::meter.aggregate_state;
				IF s::text::meter.aggregate_state::text IS DISTINCT FROM s::text THEN
					RAISE EXCEPTION 'no round trip' USING ERRCODE = 'XX001';
				END IF;
				PERFORM meter.aggregate_final(s), meter.aggregate_combine(s, s), meter.aggregate_state_send(s);
			END IF;
			st := 'ok'; msg := NULL;
		EXCEPTION WHEN OTHERS THEN
			st := SQLSTATE; msg := SQLERRM;
		END;
		whats := whats || w; states := states || st; examples := examples || x; msgs := msgs || msg;
		-- 2. the cast from jsonb, when the text is JSON
		BEGIN
			w := kind || ' jsonb';
			IF kind = 'aggregation' THEN
				a := x::jsonb::meter.aggregation;
				PERFORM a::jsonb;
			ELSIF kind = 'filters' THEN
				f := x::jsonb::meter.filters;
				PERFORM f::jsonb;
			ELSE
				CONTINUE;
			END IF;
			st := 'ok'; msg := NULL;
		EXCEPTION WHEN OTHERS THEN
			st := SQLSTATE; msg := SQLERRM;
		END;
		whats := whats || w; states := states || st; examples := examples || x; msgs := msgs || msg;
	END LOOP;
	RETURN QUERY SELECT u.w, u.s, count(*), min(u.x), min(u.m)
		FROM unnest(whats, states, examples, msgs) AS u(w, s, x, m) GROUP BY u.w, u.s;
END $f$;

CREATE FUNCTION fuzz_matches(filters text[], props text[])
RETURNS TABLE (what text, sqlstate text, n bigint, example text, message text)
LANGUAGE plpgsql AS $f$
DECLARE
	i int; st text; msg text;
	states text[] := '{}'; examples text[] := '{}'; msgs text[] := '{}';
BEGIN
	FOR i IN 1 .. coalesce(array_length(filters, 1), 0) LOOP
		BEGIN
			PERFORM meter.matches(filters[i]::meter.filters, props[i]::jsonb),
				meter.explain_filters(filters[i]::meter.filters, props[i]::jsonb),
				meter.numeric_value(props[i]::jsonb, 'v'), meter.unique_value(props[i]::jsonb, 'v');
			st := 'ok'; msg := NULL;
		EXCEPTION WHEN OTHERS THEN
			st := SQLSTATE; msg := SQLERRM;
		END;
		states := states || st; examples := examples || props[i]; msgs := msgs || msg;
	END LOOP;
	RETURN QUERY SELECT 'matches', u.s, count(*), min(u.x), min(u.m)
		FROM unnest(states, examples, msgs) AS u(s, x, m) GROUP BY u.s;
END $f$;

CREATE FUNCTION fuzz_ingest(inputs text[])
RETURNS TABLE (what text, sqlstate text, n bigint, example text, message text)
LANGUAGE plpgsql AS $f$
DECLARE
	x text; st text; msg text;
	states text[] := '{}'; examples text[] := '{}'; msgs text[] := '{}';
BEGIN
	FOREACH x IN ARRAY inputs LOOP
		BEGIN
			EXECUTE 'SELECT * FROM meter.ingest($1::jsonb)' USING x;
			st := 'ok'; msg := NULL;
		EXCEPTION WHEN OTHERS THEN
			st := SQLSTATE; msg := SQLERRM;
		END;
		states := states || st; examples := examples || x; msgs := msgs || msg;
	END LOOP;
	RETURN QUERY SELECT 'ingest', u.s, count(*), min(u.x), min(u.m)
		FROM unnest(states, examples, msgs) AS u(s, x, m) GROUP BY u.s;
END $f$;

-- ops: i = insert one row, b = insert a batch of rows (one statement), u = update the
-- properties of a random event, d = delete a random event.
CREATE FUNCTION fuzz_trigger(ops text[], names text[], customers text[], stamps text[], props text[])
RETURNS TABLE (what text, sqlstate text, n bigint, example text, message text)
LANGUAGE plpgsql AS $f$
DECLARE
	i int; st text; msg text;
	whats text[] := '{}'; states text[] := '{}'; examples text[] := '{}'; msgs text[] := '{}';
BEGIN
	FOR i IN 1 .. coalesce(array_length(ops, 1), 0) LOOP
		BEGIN
			IF ops[i] = 'i' THEN
				INSERT INTO meter.events (event_name, customer_id, "timestamp", properties)
				VALUES (names[i], customers[i], stamps[i]::timestamptz, props[i]::jsonb);
			ELSIF ops[i] = 'b' THEN
				INSERT INTO meter.events (event_name, customer_id, "timestamp", properties)
				SELECT names[i], 'c' || g % 3, stamps[i]::timestamptz + g * interval '7 minutes',
					props[i]::jsonb FROM generate_series(1, 20) g;
			ELSIF ops[i] = 'u' THEN
				UPDATE meter.events SET properties = props[i]::jsonb, "timestamp" = stamps[i]::timestamptz
				WHERE id = (SELECT id FROM meter.events WHERE event_name = 'e'
					AND tenant_id = current_setting('meter.tenant_id') ORDER BY id
					OFFSET (hashtext(props[i]) & 1023) LIMIT 1);
			ELSE
				DELETE FROM meter.events
				WHERE id = (SELECT id FROM meter.events WHERE tenant_id = current_setting('meter.tenant_id')
					ORDER BY id OFFSET (hashtext(props[i]) & 1023) LIMIT 1);
			END IF;
			st := 'ok'; msg := NULL;
		EXCEPTION WHEN OTHERS THEN
			st := SQLSTATE; msg := SQLERRM;
		END;
		whats := whats || ('trigger ' || ops[i]); states := states || st;
		examples := examples || (stamps[i] || ' ' || props[i]); msgs := msgs || msg;
	END LOOP;
	RETURN QUERY SELECT u.w, u.s, count(*), min(u.x), min(u.m)
		FROM unnest(whats, states, examples, msgs) AS u(w, s, x, m) GROUP BY u.w, u.s;
END $f$;
"""

METERS = [
    ('COUNT', '{"type":"COUNT"}', '[]'),
    ('COUNT filtered', '{"type":"COUNT"}', '[{"key":"model","values":["gpt-4o","1"]}]'),
    ('SUM', '{"type":"SUM","field":"v"}', '[]'),
    ('SUM bucketed', '{"type":"SUM","field":"v","bucket_size":"HOUR"}', '[]'),
    ('AVG', '{"type":"AVG","field":"v"}', '[]'),
    ('COUNT_UNIQUE', '{"type":"COUNT_UNIQUE","field":"v"}', '[]'),
    ('COUNT_UNIQUE unicode', '{"type":"COUNT_UNIQUE","field":"ключ"}', '[]'),
    ('MAX', '{"type":"MAX","field":"v"}', '[{"key":"region","values":["true","x"]}]'),
    ('MAX bucketed', '{"type":"MAX","field":"v","bucket_size":"DAY"}', '[]'),
    ('MIN', '{"type":"MIN","field":"tokens"}', '[]'),
    ('LATEST', '{"type":"LATEST","field":"v"}', '[]'),
    ('SUM_WITH_MULTIPLIER', '{"type":"SUM_WITH_MULTIPLIER","field":"v","multiplier":1.5}', '[]'),
    ('WEIGHTED_SUM', '{"type":"WEIGHTED_SUM","field":"v"}', '[]'),
]


def record(totals, examples, rows):
    for what, st, n, ex, msg in rows:
        totals[(what, st)] = totals.get((what, st), 0) + n
        if st != "ok" and not st.startswith(CLEAN) and (what, st) not in examples:
            examples[(what, st)] = (ex[:300], msg)


def run_batches(cur, totals, examples, fn, arrays):
    n = len(arrays[0])
    t0 = time.time()
    for i in range(0, n, BATCH):
        cur.execute("SELECT * FROM %s(%s)" % (fn, ", ".join(["%s"] * len(arrays))),
                    [a[i:i + BATCH] for a in arrays])
        record(totals, examples, cur.fetchall())
    print("%s: %d inputs in %.1f s" % (fn, n, time.time() - t0))


def main():
    print("fuzz: FUZZ_N=%d FUZZ_SEED=%d" % (N, SEED))
    admin = psycopg2.connect(dbname="postgres")
    admin.autocommit = True
    cur = admin.cursor()
    cur.execute("SELECT pg_postmaster_start_time()")
    started = cur.fetchone()[0]
    cur.execute("CREATE DATABASE " + DB)
    cur.execute("CREATE DATABASE %s ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
                % DB_ASCII)
    ok = False
    try:
        totals, examples = {}, {}
        t0 = time.time()
        count = fuzz(totals, examples)
        count += fuzz_ascii(totals, examples)
        elapsed = time.time() - t0
        cur.execute("SELECT pg_postmaster_start_time()")
        restarted = cur.fetchone()[0] != started
        print("%d inputs in %.1f s" % (count, elapsed))
        by_state = {}
        for (what, st), n in sorted(totals.items()):
            print("  %-22s %-6s %8d" % (what, st, n))
            by_state[st] = by_state.get(st, 0) + n
        print("by SQLSTATE: " + ", ".join("%s %d" % kv for kv in sorted(by_state.items())))
        ok = True
        if examples:
            ok = False
            for (what, st), (ex, msg) in examples.items():
                print("FAIL: %s raised %s (%s) for %r" % (what, st, msg, ex))
        if restarted:
            ok = False
            print("FAIL: the server restarted")
        if count < N:
            ok = False
            print("FAIL: only %d inputs" % count)
    finally:
        cur.execute("DROP DATABASE IF EXISTS " + DB)
        cur.execute("DROP DATABASE IF EXISTS " + DB_ASCII)
        admin.close()
    return ok


def fuzz(totals, examples):
    conn = psycopg2.connect(dbname=DB)
    try:
        return fuzz_in(conn, totals, examples)
    finally:
        conn.close()


def fuzz_in(conn, totals, examples):
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(SETUP)
    cur.execute("SELECT to_regprocedure('meter.ingest(jsonb)') IS NOT NULL")
    has_ingest = cur.fetchone()[0]
    for tenant in ("fuzz", "other"):
        cur.execute("SELECT set_config('meter.tenant_id', %s, false)", (tenant,))
        for name, agg, flt in METERS:
            cur.execute("SELECT meter.create_meter('e', %s, %s, %s)", (name, agg, flt))
    cur.execute("""
        SELECT meter.aggregate_partial(a::meter.aggregation, jsonb_build_object('v', g, 'tokens', g %% 7 - 3),
            timestamptz '2024-01-01' + g * interval '13 minutes')::text
        FROM unnest(%s::text[]) a, generate_series(1, 9) g GROUP BY a
        UNION ALL
        SELECT meter.aggregate_partial('{"type":"WEIGHTED_SUM","field":"v"}', jsonb_build_object('v', g),
            timestamptz '2024-01-01' + g * interval '1 hour', '2024-01-01', '2024-02-01')::text
        FROM generate_series(1, 5) g""",
                ([m[1] for m in METERS if "WEIGHTED" not in m[1]] +
                 ['{"type":"COUNT_UNIQUE","field":"tokens"}'],))
    states = [r[0] for r in cur.fetchall()]

    share = {"state": 0.14, "matches": 0.16, "trigger": 0.07, "ingest": 0.07 if has_ingest else 0.0}
    share["aggregation"] = share["filters"] = (0.95 - sum(share.values())) / 2   # and 5% SQL_ASCII
    counts = {k: int(N * v) + 1 for k, v in share.items()}
    total = 0
    props = ['{"v":1,"model":"gpt-4o"}', '{}', '{"v":"1e400","model":1}', '{"region":true}']
    for kind, valid in (("aggregation", valid_aggregation), ("filters", valid_filters),
                        ("state", lambda: valid_state(states))):
        inputs = [gen(valid) for _ in range(counts[kind])]
        for i in range(0, len(inputs), BATCH):
            cur.execute("SELECT * FROM fuzz_types(%s, %s, %s)", (kind, inputs[i:i + BATCH], rng.choice(props)))
            record(totals, examples, cur.fetchall())
        total += len(inputs)

    n = counts["matches"]
    fl = [valid_filters() if rng.random() < 0.7 else gen(valid_filters) for _ in range(n)]
    pr = [properties() if rng.random() < 0.6 else no_nul(mutate(properties())) for _ in range(n)]
    run_batches(cur, totals, examples, "fuzz_matches", [fl, pr])
    total += n

    if has_ingest:
        cur.execute("SET meter.tenant_id = 'fuzz'")
        ins = [ingest_input() for _ in range(counts["ingest"])]
        run_batches(cur, totals, examples, "fuzz_ingest", [ins])
        total += len(ins)

    # Inserts (one row, or a batch of 20 in one statement), then a few updates and deletes.
    # Tenant fuzz compacts on every statement (meter.compaction_threshold = 1); tenant
    # other leaves its partial states pending until meter.compact() at the end.
    n = counts["trigger"]
    ops = [rng.choice("iiiiiiiiib") for _ in range(n)] + ["u", "d"] * 40
    n = len(ops)
    names = [rng.choice(["e", "e", "e", "other"]) for _ in range(n)]
    custs = [rng.choice(["c1", "c2", None, ""]) for _ in range(n)]
    stamps = [rand_ts() for _ in range(n)]
    pr = [properties() if rng.random() < 0.85 else gen(properties, 0, 0.3) for _ in range(n)]
    for tenant, sel in (("fuzz", "ib"), ("other", "ib"), ("fuzz", "ud"), ("other", "ud")):
        idx = [i for i in range(n) if ops[i] in sel]
        idx = idx[:len(idx) // 2] if tenant == "fuzz" else idx[len(idx) // 2:]
        cur.execute("SELECT set_config('meter.tenant_id', %s, false), set_config('meter.compaction_threshold', %s, false)",
                    (tenant, "1" if tenant == "fuzz" else "20000"))
        if sel == "ud":
            cur.execute("ANALYZE meter.events; ANALYZE meter.pending; ANALYZE meter.rollups")
        run_batches(cur, totals, examples, "fuzz_trigger",
                    [[a[i] for i in idx] for a in (ops, names, custs, stamps, pr)])
    total += n

    # Stored usage still equals a recomputation from the raw events, in both tenants,
    # before and after folding what is pending.
    for tenant in ("fuzz", "other"):
        cur.execute("SELECT set_config('meter.tenant_id', %s, false)", (tenant,))
        cur.execute("SELECT count(*) FROM meter.events WHERE tenant_id = %s", (tenant,))
        nev = cur.fetchone()[0]
        for when in ("pending", "compacted"):
            if when == "compacted":
                try:
                    cur.execute("SELECT meter.compact()")
                except psycopg2.Error as e:
                    examples[("compact " + tenant, e.pgcode or "error")] = ("meter.compact()", str(e).strip()[:300])
                    continue
            cur.execute("SELECT v::text FROM meter.verify() v LIMIT 5")
            diff = cur.fetchall()
            print("tenant %s (%s): %d events stored, verify() %s" % (tenant, when, nev, "empty" if not diff else diff))
            if diff:
                examples[("verify %s %s" % (tenant, when), "diff")] = (repr(diff)[:300], "verify() not empty")
    return total


def fuzz_ascii(totals, examples):
    """Invalid UTF-8 reaches input functions only in a SQL_ASCII database."""
    conn = psycopg2.connect(dbname=DB_ASCII)
    try:
        return fuzz_ascii_in(conn, totals, examples)
    finally:
        conn.close()


def fuzz_ascii_in(conn, totals, examples):
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(SETUP)
    cur.execute("""
        CREATE FUNCTION fuzz_bytes(kind text, inputs bytea[], props text) RETURNS SETOF record
        LANGUAGE sql AS $$
            SELECT t.what, t.sqlstate, t.n, encode(convert_to(t.example, 'SQL_ASCII'), 'escape'),
                encode(convert_to(t.message, 'SQL_ASCII'), 'escape')
            FROM fuzz_types(kind, ARRAY(SELECT convert_from(b, 'SQL_ASCII') FROM unnest(inputs) b), props) t
        $$""")
    n = max(1, int(N * 0.05))
    total = 0
    bad = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\x80", b"\xe2\x82"]
    for kind, valid in (("aggregation", valid_aggregation), ("filters", valid_filters)):
        inputs = []
        for _ in range(n // 2):
            s = bytearray(gen(valid).encode("utf-8", "surrogatepass"))
            for _ in range(rng.randrange(1, 4)):
                i = rng.randrange(len(s) + 1)
                s[i:i] = rng.choice(bad)
            inputs.append(bytes(s).replace(b"\x00", b""))
        for i in range(0, len(inputs), BATCH):
            cur.execute("SELECT * FROM fuzz_bytes(%s, %s::bytea[], %s) AS t(what text, sqlstate text, n bigint,"
                        " example text, message text)",
                        (kind, [psycopg2.Binary(b) for b in inputs[i:i + BATCH]],
                         '{"v":"\\u00e9","model":"x"}'))
            rows = [("ascii " + w, st, c, ex, m) for w, st, c, ex, m in cur.fetchall()]
            record(totals, examples, rows)
        total += len(inputs)
    return total


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
