#!/usr/bin/python3
"""End-to-end: a real client (psycopg2) ingests usage events three ways and checks them.

  (a) meter.ingest() with a JSON array (FlexPrice's bulk format), including a 100k batch;
  (b) a multi-row INSERT into meter.events;
  (c) COPY into meter.events;
plus re-sent events (duplicates), row-level security between tenants, and meters of
several types whose stored usage (kept by the tracking trigger) must equal what the raw
events say: meter.verify() empty, stored totals and meter.usage per customer equal to
figures computed with plain SQL from meter.events, before and after meter.compact().

Connects with PGHOST/PGPORT/PGUSER from the environment, creates its own database and
drops it afterwards. Exit status 0 means every check passed.
"""
import datetime as dt
import io
import json
import os
import sys

import psycopg2
import psycopg2.extras

TENANT = "acme"
OTHER_TENANT = "globex"
UTC = dt.timezone.utc
BASE = dt.datetime(2024, 3, 10, 20, 0, tzinfo=UTC)

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def check_eq(got, want, what):
    check(got == want, what if got == want else f"{what}: got {got!r}, want {want!r}")


def connect(dbname):
    conn = psycopg2.connect(dbname=dbname, application_name="meter-e2e-client")
    conn.autocommit = True
    return conn


def rfc3339(t):
    return t.isoformat().replace("+00:00", "Z")


def ingest(cur, events):
    cur.execute("SELECT accepted, duplicates FROM meter.ingest(%s::jsonb)", (json.dumps(events),))
    return cur.fetchone()


def have_tracking(cur):
    """True when the tracking trigger, meter.create_meter and meter.verify are installed."""
    cur.execute("""
        SELECT (SELECT count(*) FROM pg_catalog.pg_proc p
                JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = 'meter' AND p.proname IN ('create_meter', 'verify', 'track_usage')
                GROUP BY () HAVING count(DISTINCT p.proname) = 3) IS NOT NULL
           AND EXISTS (SELECT FROM pg_catalog.pg_trigger
                       WHERE tgrelid = 'meter.events'::regclass AND NOT tgisinternal)""")
    return cur.fetchone()[0]


def main():
    dbname = f"meter_e2e_client_{os.getpid()}"
    admin = connect(os.environ.get("PGDATABASE", "postgres"))
    role = f"meter_e2e_reader_{os.getpid()}"
    with admin.cursor() as c:
        c.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        c.execute(f'CREATE DATABASE "{dbname}"')
    try:
        conn = connect(dbname)
        try:
            run(conn, role)
        finally:
            conn.close()
    finally:
        with admin.cursor() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
            c.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


def run(conn, role):
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION meter")
    cur.execute("SET meter.tenant_id = %s", (TENANT,))

    tracking = have_tracking(cur)
    check(tracking, "meter.track_usage is attached to meter.events; meter.create_meter and meter.verify exist")
    meters = create_meters(cur) if tracking else {}

    # What the client sent and expects stored: id -> (event_name, customer, external, ts, props)
    sent = {}

    # (a) meter.ingest with a JSON array: FlexPrice's bulk format.
    batch = []
    for i in range(300):
        e = {
            "event_id": f"ing-{i}",
            "event_name": "api_call",
            "external_customer_id": f"cus_{i % 5}",
            "timestamp": rfc3339(BASE + dt.timedelta(seconds=37 * i)),
            "properties": {"model": "gpt-4o" if i % 3 else "o1-mini", "tokens": i % 50, "path": "/v1/ü"},
            "source": "sdk",
        }
        batch.append(e)
        sent[e["event_id"]] = ("api_call", None, e["external_customer_id"],
                               BASE + dt.timedelta(seconds=37 * i), e["properties"])
    # Re-sent inside the same call (a retry glued to the batch): duplicates, first wins.
    batch += [dict(batch[7], properties={"tokens": 999}), dict(batch[8])]
    check_eq(ingest(cur, batch), (300, 2), "(a) meter.ingest: 300 accepted, 2 re-sent in the call")
    check_eq(ingest(cur, batch[:50]), (0, 50), "(a) re-sending 50 stored events: all duplicates")
    # FlexPrice's Event JSON as exported (id, tenant_id, environment_id, ingested_at, customer_id "").
    exported = {"id": "ing-exported", "tenant_id": TENANT, "environment_id": "",
                "event_name": "api_call", "customer_id": "", "external_customer_id": "cus_0",
                "timestamp": "2024-03-10T20:00:00.5+01:00", "ingested_at": "2024-03-10T19:00:01Z",
                "properties": {"tokens": 5, "model": "gpt-4o"}, "source": ""}
    check_eq(ingest(cur, [exported]), (1, 0), "(a) an exported FlexPrice Event re-ingests")
    sent["ing-exported"] = ("api_call", None, "cus_0", dt.datetime(2024, 3, 10, 19, 0, 0, 500000, tzinfo=UTC),
                            exported["properties"])
    # A bad element rejects the whole call.
    try:
        ingest(cur, [{"event_name": "api_call", "external_customer_id": "cus_1", "id": "never-1"},
                     {"event_name": "api_call", "external_customer_id": "cus_1", "timestamp": "2024-03-10 20:00"}])
        check(False, "(a) a bad element raises an error")
    except psycopg2.Error as err:
        check_eq(err.pgcode, "22023", "(a) a bad element raises 22023")
        check('event 1: "timestamp"' in err.pgerror, "(a) the error names index 1 and the field")
    cur.execute("SELECT count(*) FROM meter.events WHERE id = 'never-1'")
    check_eq(cur.fetchone()[0], 0, "(a) nothing of the rejected call was stored")

    # (b) multi-row INSERT into meter.events (tenant from the session's scope).
    rows = []
    for i in range(200):
        ts = BASE + dt.timedelta(minutes=i)
        props = {"tokens": str(i % 7), "model": "gpt-4o"}  # numeric strings count as numbers
        rows.append((f"ins-{i}", "api_call", f"c{i % 4}", None, ts, json.dumps(props)))
        sent[f"ins-{i}"] = ("api_call", f"c{i % 4}", None, ts, props)
    psycopg2.extras.execute_values(cur, """
        INSERT INTO meter.events (id, event_name, customer_id, external_customer_id, "timestamp", properties)
        VALUES %s""", rows, template="(%s, %s, %s, %s, %s, %s::jsonb)", page_size=1000)
    check_eq(cur.rowcount, 200, "(b) multi-row INSERT stored 200 rows")
    try:
        cur.execute("""INSERT INTO meter.events (id, event_name, customer_id) VALUES ('ins-new', 'api_call', 'c1'),
                       ('ins-3', 'api_call', 'c1')""")
        check(False, "(b) a plain INSERT of a stored id raises unique_violation")
    except psycopg2.errors.UniqueViolation:
        check(True, "(b) a plain INSERT of a stored id raises unique_violation")
    cur.execute("SELECT count(*) FROM meter.events WHERE id = 'ins-new'")
    check_eq(cur.fetchone()[0], 0, "(b) ... and stores none of its rows")
    psycopg2.extras.execute_values(cur, """
        INSERT INTO meter.events (id, event_name, customer_id, external_customer_id, "timestamp", properties)
        VALUES %s ON CONFLICT (tenant_id, environment_id, id) DO NOTHING""", rows[:20] + [
        ("ins-extra", "api_call", "c1", None, BASE, '{"tokens": 1}')],
        template="(%s, %s, %s, %s, %s, %s::jsonb)")
    check_eq(cur.rowcount, 1, "(b) INSERT ... ON CONFLICT DO NOTHING skips the 20 re-sent rows")
    sent["ins-extra"] = ("api_call", "c1", None, BASE, {"tokens": 1})

    # (c) COPY into meter.events.
    buf = io.StringIO()
    for i in range(500):
        ts = BASE + dt.timedelta(seconds=11 * i, microseconds=123)
        props = {"tokens": i % 11, "model": "o1-mini" if i % 2 else "gpt-4o", "note": 'quote " and, comma'}
        cust, ext = (f"c{i % 4}", None) if i % 2 else (None, f"cus_{i % 5}")
        sent[f"copy-{i}"] = ("api_call", cust, ext, ts, props)
        buf.write(",".join([f"copy-{i}", "api_call", cust or "", ext or "", "copy",
                            ts.isoformat(), '"' + json.dumps(props).replace('"', '""') + '"']) + "\n")
    buf.seek(0)
    cur.copy_expert("""COPY meter.events (id, event_name, customer_id, external_customer_id, source, "timestamp", properties)
                       FROM STDIN WITH (FORMAT csv, FORCE_NULL (customer_id, external_customer_id))""", buf)
    check_eq(cur.rowcount, 500, "(c) COPY stored 500 rows")
    buf = io.StringIO("copy-new,api_call,c1,,copy,2024-03-10T20:00:00Z,{}\ncopy-0,api_call,c1,,copy,2024-03-10T20:00:00Z,{}\n")
    try:
        cur.copy_expert("COPY meter.events (id, event_name, customer_id, external_customer_id, source, \"timestamp\", properties) "
                        "FROM STDIN WITH (FORMAT csv, FORCE_NULL (external_customer_id))", buf)
        check(False, "(c) COPY of a stored id raises unique_violation")
    except psycopg2.errors.UniqueViolation:
        check(True, "(c) COPY of a stored id raises unique_violation")
    cur.execute("SELECT count(*) FROM meter.events WHERE id = 'copy-new'")
    check_eq(cur.fetchone()[0], 0, "(c) ... and stores none of its rows")

    # 100k events in one meter.ingest call, 10k of them re-sent ids.
    big = [{"id": f"big-{i % 90000}", "event_name": "bulk", "external_customer_id": f"cus_{i % 5}",
            "timestamp": rfc3339(BASE + dt.timedelta(milliseconds=i)), "properties": {"n": i}}
           for i in range(100000)]
    check_eq(ingest(cur, big), (90000, 10000), "(a) 100k events in one call: 90000 accepted, 10000 duplicates")
    cur.execute("SELECT count(*), sum((properties->>'n')::bigint) FROM meter.events WHERE event_name = 'bulk'")
    check_eq(cur.fetchone(), (90000, sum(range(90000))), "(a) the first occurrence of each big-* id was stored")

    # The stored events equal what was sent.
    cur.execute("""SELECT id, tenant_id, environment_id, event_name, customer_id, external_customer_id,
                          "timestamp", properties FROM meter.events WHERE event_name = 'api_call'""")
    stored = {r[0]: r for r in cur.fetchall()}
    check_eq(len(stored), len(sent), f"{len(sent)} api_call events stored, no more, no less")
    check_eq(set(stored), set(sent), "the stored ids are the ids sent")
    bad = [i for i, (name, cust, ext, ts, props) in sent.items()
           if i in stored and stored[i][1:] != (TENANT, "", name, cust, ext, ts, props)]
    check(not bad, f"every stored event equals what was sent{'' if not bad else ' (differ: ' + ', '.join(bad[:5]) + ')'}")
    cur.execute("SELECT properties FROM meter.events WHERE id = 'ing-7'")
    check_eq(cur.fetchone()[0]["tokens"], 7, "a duplicate inside a call did not overwrite the first")

    # Row-level security: another tenant, through a plain role, sees none of these events.
    cur.execute(f'CREATE ROLE "{role}"')
    cur.execute(f'GRANT USAGE ON SCHEMA meter TO "{role}"; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA meter TO "{role}"')
    cur.execute(f'SET ROLE "{role}"')
    cur.execute("SET meter.tenant_id = %s", (OTHER_TENANT,))
    cur.execute("SELECT count(*) FROM meter.events")
    check_eq(cur.fetchone()[0], 0, "RLS: another tenant sees no events")
    check_eq(ingest(cur, [{"id": "ing-1", "event_name": "api_call", "customer_id": "x"}]), (1, 0),
             "another tenant may use the same id")
    cur.execute("SET meter.tenant_id = %s", (TENANT,))
    cur.execute("SELECT count(*) FROM meter.events WHERE event_name = 'api_call'")
    check_eq(cur.fetchone()[0], len(sent), "RLS: the tenant sees exactly its own events")
    cur.execute("RESET ROLE")

    if tracking:
        check_rollups(cur, meters)


def create_meters(cur):
    """A few meters of different types; returns name -> (id, kind)."""
    specs = [
        ("calls", '{"type":"COUNT"}', "[]"),
        ("tokens", '{"type":"SUM","field":"tokens"}', "[]"),
        ("gpt4o_calls", '{"type":"COUNT"}', '[{"key":"model","values":["gpt-4o"]}]'),
        ("max_tokens", '{"type":"MAX","field":"tokens"}', "[]"),
    ]
    meters = {}
    for name, agg, filters in specs:
        cur.execute("""SELECT id FROM meter.create_meter(event_name => 'api_call', name => %s,
                       aggregation => %s::meter.aggregation, filters => %s::meter.filters)""", (name, agg, filters))
        meters[name] = cur.fetchone()[0]
    return meters


RANGE = "'2000-01-01', '2100-01-01'"


def usage(cur, meter, customer=None, external=None):
    """meter.usage over the whole range (one window), for one customer or all."""
    cur.execute("SELECT value FROM meter.usage(%s, " + RANGE + ", customer_id => %s, external_customer_id => %s)",
                (meter, customer, external))
    return cur.fetchone()[0]


def check_rollups(cur, meters):
    """Stored usage (kept by the tracking trigger) against figures computed here with plain
    SQL over the raw events: per customer and in total, through meter.stored_slots (what is
    stored) and meter.usage (what is billed)."""
    # This session is a superuser (row-level security does not apply): filter by tenant.
    cur.execute("SELECT count(*) FROM meter.verify()")
    check_eq(cur.fetchone()[0], 0, "meter.verify() is empty")
    raw_q = """SELECT coalesce(customer_id, '') AS c, coalesce(external_customer_id, '') AS x, count(*) AS n
               FROM meter.events WHERE tenant_id = 'acme' AND event_name = 'api_call' GROUP BY 1, 2"""
    # COUNT: per customer, stored events = raw events.
    cur.execute("""
        WITH raw AS (""" + raw_q + """),
             r AS (SELECT customer_id AS c, external_customer_id AS x, sum(events) AS n
                   FROM meter.stored_slots(%s) GROUP BY 1, 2)
        SELECT count(*) FROM raw FULL JOIN r USING (c, x) WHERE raw.n IS DISTINCT FROM r.n""", (meters["calls"],))
    check_eq(cur.fetchone()[0], 0, "COUNT meter: stored events per customer equal the raw event counts")
    cur.execute(raw_q)
    per_customer = cur.fetchall()
    bad = [(c, x, n, usage(cur, meters["calls"], c, x)) for c, x, n in per_customer]
    bad = [b for b in bad if b[2] != b[3]]
    check(not bad and len(per_customer) > 5,
          "COUNT meter: meter.usage per customer equals the raw event counts (%d customers)%s"
          % (len(per_customer), "" if not bad else " (differ: %r)" % bad[:5]))
    total_calls = usage(cur, meters["calls"])
    cur.execute("SELECT count(*) FROM meter.events WHERE tenant_id = 'acme' AND event_name = 'api_call'")
    check_eq(total_calls, cur.fetchone()[0], "COUNT meter: usage equals the number of api_call events")
    # SUM of tokens (numbers and numeric strings), from the raw events.
    cur.execute("""SELECT coalesce(sum((properties->>'tokens')::numeric), 0) FROM meter.events
                   WHERE tenant_id = 'acme' AND event_name = 'api_call' AND jsonb_typeof(properties->'tokens') IN ('number', 'string')""")
    want_sum = cur.fetchone()[0]
    check_eq(usage(cur, meters["tokens"]), want_sum, "SUM meter: usage equals the sum over the raw events")
    cur.execute("SELECT coalesce(sum(sum), 0) FROM meter.stored_slots(%s)", (meters["tokens"],))
    check_eq(cur.fetchone()[0], want_sum, "SUM meter: the stored sums add up to the sum over the raw events")
    # Filtered COUNT.
    cur.execute("SELECT count(*) FROM meter.events WHERE tenant_id = 'acme' AND event_name = 'api_call' AND properties->>'model' = 'gpt-4o'")
    want = cur.fetchone()[0]
    check_eq(usage(cur, meters["gpt4o_calls"]), want, "filtered COUNT meter: usage equals the matching raw events")
    # MAX.
    cur.execute("""SELECT max((properties->>'tokens')::numeric) FROM meter.events
                   WHERE tenant_id = 'acme' AND event_name = 'api_call' AND jsonb_typeof(properties->'tokens') IN ('number', 'string')""")
    want = cur.fetchone()[0]
    check_eq(usage(cur, meters["max_tokens"]), want, "MAX meter: usage equals the raw maximum")
    # Re-sent events changed nothing: ingest duplicates again, verify stays empty, totals stay.
    cur.execute("SELECT accepted, duplicates FROM meter.ingest((SELECT jsonb_agg(jsonb_build_object("
                "'id', id, 'event_name', event_name, 'customer_id', customer_id, 'external_customer_id', "
                "external_customer_id, 'properties', properties)) FROM meter.events WHERE tenant_id = 'acme' AND event_name = 'api_call'))")
    acc, dup = cur.fetchone()
    check_eq((acc, dup > 0), (0, True), "re-sending every stored event: all duplicates")
    check_eq(usage(cur, meters["calls"]), total_calls, "duplicates did not change usage")
    cur.execute("SELECT coalesce(sum(events), 0) FROM meter.stored_slots(%s)", (meters["calls"],))
    check_eq(cur.fetchone()[0], total_calls, "duplicates did not change the stored usage")
    cur.execute("SELECT count(*) FROM meter.verify()")
    check_eq(cur.fetchone()[0], 0, "meter.verify() is still empty")
    # Folding what is pending changes no figure.
    cur.execute("SELECT meter.compact()")
    check(cur.fetchone()[0] > 0, "meter.compact() folded the pending rows")
    check_eq((usage(cur, meters["calls"]), usage(cur, meters["tokens"])), (total_calls, want_sum),
             "after compacting: the same COUNT and SUM usage")
    cur.execute("SELECT count(*) FROM meter.verify()")
    check_eq(cur.fetchone()[0], 0, "after compacting: meter.verify() is empty")


if __name__ == "__main__":
    sys.exit(main())
