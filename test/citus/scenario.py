#!/usr/bin/python3
"""The Citus scenario (SPEC §9, issue 11), run by test/citus/run.sh.

One workload runs twice, statement for statement: on a Citus cluster (a coordinator and two
workers; every statement through the coordinator) and on a plain server without Citus.
Tenants whose shards sit on different workers; meters of every aggregation type created,
updated, disabled and re-published; events through meter.ingest, INSERT … SELECT, COPY,
ON CONFLICT DO NOTHING / DO UPDATE, UPDATE, DELETE and TRUNCATE, into meter.events and into
a tracked table of the user's; a sealed period. Then usage, usage_from_events,
usage_by_customer (and their _from_events twins), usage_by_group, meter.skipped and
meter.verify() must give the same answers on both, and verify() must be empty. Besides:
the distributed layout made by meter.distribute() (from an install that already held
data), the catalog identical on every placement, reader and writer roles under row-level
security, meter.aggregate pushed down (worker_partial_agg), 4 concurrent writers without a
deadlock, and the order of meter changes and in-flight ingestion across nodes.

Environment (set by run.sh): CITUS_PORTS="coordinator worker1 worker2", SINGLE_PORT, PGHOST.
Prints one line per check and `citus: N passed, N failed` last.
"""
import io
import json
import os
import random
import sys
import threading
import time

import psycopg2
import psycopg2.errors

PORTS = [int(p) for p in os.environ["CITUS_PORTS"].split()]
SINGLE = int(os.environ["SINGLE_PORT"])
DB = os.environ.get("PGDATABASE", "meter_citus")
HOST = os.environ.get("PGHOST", "127.0.0.1")

passed = 0
failed = 0


def connect(port, user="postgres", autocommit=True):
    conn = psycopg2.connect(host=HOST, port=port, dbname=DB, user=user)
    conn.autocommit = autocommit
    return conn


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok - " + what, flush=True)
    else:
        failed += 1
        print("not ok - " + what + (": " + str(detail)[:1500] if detail != "" else ""), flush=True)
    return ok


def run(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else None


def one(conn, sql, args=None):
    return run(conn, sql, args)[0][0]


def copy_in(conn, sql, data):
    with conn.cursor() as cur:
        cur.copy_expert(sql, io.StringIO(data))


def error_of(conn, sql, args=None):
    """The (sqlstate, message) of a statement that must fail; None when it succeeds."""
    try:
        run(conn, sql, args)
    except psycopg2.Error as e:
        if not conn.autocommit:
            conn.rollback()
        return e.pgcode, (e.pgerror or "").strip().splitlines()[0]
    return None


coord = connect(PORTS[0])
workers = [connect(p) for p in PORTS[1:]]
single = connect(SINGLE)
BOTH = [coord, single]


def both(sql, args=None):
    """Run a statement on the cluster and on the single server; their results."""
    return [run(c, sql, args) for c in BOTH]


def scope(tenant):
    for c in BOTH:
        run(c, "SELECT set_config('meter.tenant_id', %s, false), set_config('meter.user_id', 'alice', false)",
            (tenant,))


# ── The workload's pieces ───────────────────────────────────────────────────────────────

MODELS = ["gpt-4o", "o1", "mini"]
REGIONS = ["eu", "us"]


def event(tenant, eid, rnd, day=1, name=None):
    """One FlexPrice event (deterministic from rnd)."""
    props = {"model": rnd.choice(MODELS), "region": rnd.choice(REGIONS),
             "tokens": rnd.randrange(1, 900), "user": f"u{rnd.randrange(40)}",
             "gb": round(rnd.uniform(0, 50), 2), "volume": f"v{rnd.randrange(3)}"}
    r = rnd.random()
    if r < 0.05:
        props["tokens"] = "n/a"                    # not a number: skipped by value meters
    elif r < 0.15:
        props["tokens"] = str(props["tokens"]) + ".5"  # a numeric string
    ev = {"id": f"{tenant}-{eid}", "event_name": name or rnd.choice(["llm", "llm", "llm", "api_call"]),
          "timestamp": f"2024-03-{day + rnd.randrange(3):02d}T{rnd.randrange(24):02d}:{rnd.randrange(60):02d}:"
                       f"{rnd.randrange(60):02d}Z",
          "properties": props}
    c = rnd.randrange(8)
    if c < 5:
        ev["external_customer_id"] = f"x{c}"
    else:
        ev["customer_id"] = f"c{c}"
    return ev


def meter_defs(tenant):
    """(id, event_name, aggregation, filters) of every kind."""
    t = tenant
    return [
        (f"{t}_count", "llm", {"type": "COUNT"}, []),
        (f"{t}_sum", "llm", {"type": "SUM", "field": "tokens"}, [{"key": "model", "values": ["gpt-4o", "o1"]}]),
        (f"{t}_avg", "llm", {"type": "AVG", "field": "tokens"}, []),
        (f"{t}_uniq", "llm", {"type": "COUNT_UNIQUE", "field": "user"}, []),
        (f"{t}_max", "llm", {"type": "MAX", "field": "tokens"}, [{"key": "region", "values": ["eu"]}]),
        (f"{t}_min", "llm", {"type": "MIN", "field": "tokens"}, []),
        (f"{t}_latest", "llm", {"type": "LATEST", "field": "tokens"}, []),
        (f"{t}_mult", "llm", {"type": "SUM_WITH_MULTIPLIER", "field": "tokens", "multiplier": "0.5"}, []),
        (f"{t}_wsum", "llm", {"type": "WEIGHTED_SUM", "field": "gb"}, []),
        (f"{t}_bmax", "llm", {"type": "MAX", "field": "gb", "bucket_size": "HOUR", "group_by": "volume"}, []),
        (f"{t}_bsum", "llm", {"type": "SUM", "field": "tokens", "bucket_size": "DAY"}, []),
        (f"{t}_expr", "llm", {"type": "SUM", "expression": "gb * 2 + 1"}, [{"key": "model", "values": ["mini"]}]),
        (f"{t}_api", "api_call", {"type": "COUNT"}, [{"key": "region", "values": ["eu"]}]),
    ]


def create_meters(tenant, which):
    scope(tenant)
    for i, (mid, name, agg, flt) in enumerate(meter_defs(tenant)):
        if i % 2 == which:
            both("SELECT meter.create_meter(%s, %s, %s::meter.aggregation, %s::meter.filters, id => %s)",
                 (name, mid, json.dumps(agg), json.dumps(flt), mid))


def ingest(tenant, events):
    scope(tenant)
    return both("SELECT * FROM meter.ingest(%s)", (json.dumps(events),))


def csv_row(tenant, ev):
    def q(v):
        return '"' + str(v).replace('"', '""') + '"'
    return ",".join([q(ev["id"]), q(tenant), q(ev["event_name"]), q(ev.get("customer_id", "")),
                     q(ev.get("external_customer_id", "")), q(ev["timestamp"]),
                     q(json.dumps(ev["properties"]))]) + "\n"


COPY_SQL = ("COPY {} (id, tenant_id, event_name, customer_id, external_customer_id, \"timestamp\", properties)"
            " FROM STDIN WITH (format csv, force_null (customer_id, external_customer_id))")


def workload_events(tenant, seed, phase):
    """Every way SQL writes rows, for one tenant (the scope set)."""
    rnd = random.Random(seed)
    # meter.ingest: a batch with an id repeated inside it, then a re-send.
    batch = [event(tenant, f"{phase}i{i}", rnd) for i in range(120)]
    batch.append(dict(batch[3]))
    got = ingest(tenant, batch)
    check(got[0] == got[1] == [(120, 1)], f"{tenant} {phase}: meter.ingest counts what was inserted",
          repr(got))
    got = ingest(tenant, batch[:10] + [event(tenant, f"{phase}i-new", rnd)])
    check(got[0] == got[1] == [(1, 10)], f"{tenant} {phase}: a re-sent batch counts as duplicates", repr(got))
    # INSERT … SELECT (rows computed on the coordinator)
    both("""INSERT INTO meter.events (id, tenant_id, event_name, external_customer_id, "timestamp", properties)
            SELECT %s || '-' || %s || 's' || i, %s, 'llm', 'x' || (i %% 5),
                   '2024-03-02 00:00:00+00'::timestamptz + i * interval '7 minutes',
                   jsonb_build_object('model', (ARRAY['gpt-4o','o1','mini'])[1 + i %% 3], 'tokens', i * 3,
                                      'user', 'u' || (i %% 11), 'gb', i %% 17, 'region', 'eu', 'volume', 'v' || (i %% 2))
            FROM generate_series(1, 80) i""", (tenant, phase, tenant))
    # INSERT … SELECT between co-located tables (Citus pushes it down to the shards)
    both("""INSERT INTO meter.events (id, tenant_id, environment_id, event_name, customer_id, external_customer_id,
            "timestamp", properties)
            SELECT id || '-again', tenant_id, environment_id, event_name, customer_id, external_customer_id,
                   "timestamp", properties FROM app.usage_events WHERE tenant_id = %s
            ON CONFLICT DO NOTHING""", (tenant,))
    # COPY, into meter.events and into the user's tracked table
    copy_rows = "".join(csv_row(tenant, event(tenant, f"{phase}c{i}", rnd)) for i in range(60))
    for c in BOTH:
        copy_in(c, COPY_SQL.format("meter.events"), copy_rows)
    user_rows = "".join(csv_row(tenant, event(tenant, f"{phase}u{i}", rnd, day=2)) for i in range(40))
    for c in BOTH:
        copy_in(c, COPY_SQL.format("app.usage_events"), user_rows)
    # ON CONFLICT DO NOTHING (re-sends) and DO UPDATE
    both("""INSERT INTO meter.events (id, tenant_id, event_name, customer_id, "timestamp", properties)
            SELECT %s || '-' || %s || 'i' || i, %s, 'llm', 'c9', '2024-03-01 12:00+00', '{"tokens": 1}'
            FROM generate_series(0, 19) i ON CONFLICT DO NOTHING""", (tenant, phase, tenant))
    both("""INSERT INTO meter.events AS e (id, tenant_id, event_name, external_customer_id, "timestamp", properties)
            SELECT %s || '-' || %s || 'i' || i, %s, 'llm', 'x1', '2024-03-01 12:00+00',
                   jsonb_build_object('tokens', 1000 + i, 'model', 'o1', 'user', 'u99', 'gb', 1)
            FROM generate_series(15, 30) i
            ON CONFLICT (tenant_id, environment_id, id) DO UPDATE
            SET properties = excluded.properties, "timestamp" = excluded."timestamp",
                external_customer_id = excluded.external_customer_id, customer_id = NULL""",
         (tenant, phase, tenant))
    # UPDATE of every column the engine reads (not tenant_id: the distribution column)
    both("""UPDATE meter.events SET properties = properties || '{"tokens": 777, "region": "eu"}'
            WHERE tenant_id = %s AND id LIKE %s""", (tenant, f"{tenant}-{phase}i1%"))
    both("""UPDATE meter.events SET "timestamp" = '2024-03-03 09:30+00', customer_id = 'c1',
            external_customer_id = NULL WHERE tenant_id = %s AND id LIKE %s""", (tenant, f"{tenant}-{phase}c2%"))
    both("""UPDATE meter.events SET event_name = 'api_call' WHERE tenant_id = %s AND id LIKE %s""",
         (tenant, f"{tenant}-{phase}s1%"))
    both("""UPDATE app.usage_events SET properties = properties || '{"gb": 3}' WHERE tenant_id = %s
            AND id LIKE %s""", (tenant, f"{tenant}-{phase}u1%"))
    # DELETE
    both("DELETE FROM meter.events WHERE tenant_id = %s AND id LIKE %s", (tenant, f"{tenant}-{phase}i3%"))
    both("DELETE FROM app.usage_events WHERE tenant_id = %s AND id LIKE %s", (tenant, f"{tenant}-{phase}u2%"))
    # A rolled-back transaction leaves nothing behind.
    for c in BOTH:
        c.autocommit = False
        run(c, """INSERT INTO meter.events (id, tenant_id, event_name, customer_id, "timestamp")
                  VALUES (%s, %s, 'llm', 'c1', '2024-03-01')""", (f"{tenant}-{phase}rb", tenant))
        c.rollback()
        c.autocommit = True


# ── Usage, compared ─────────────────────────────────────────────────────────────────────

QUERIES = [
    ("usage", "SELECT * FROM meter.usage(%s, '2024-02-28', '2024-03-08')"),
    ("usage DAY Asia/Kolkata", "SELECT * FROM meter.usage(%s, '2024-02-28', '2024-03-08', window_size => 'DAY',"
                               " timezone => 'Asia/Kolkata')"),
    ("usage cut HOUR", "SELECT * FROM meter.usage(%s, '2024-03-01 10:07', '2024-03-02 13:53', window_size => 'HOUR')"),
    ("usage of x1", "SELECT * FROM meter.usage(%s, '2024-02-28', '2024-03-08', external_customer_id => 'x1',"
                    " window_size => '6HOUR')"),
    ("usage MONTH anchored", "SELECT * FROM meter.usage(%s, '2024-01-01', '2024-06-01', window_size => 'MONTH',"
                             " billing_anchor => '2024-01-02 10:00+00')"),
]
FROM_EVENTS = {name: sql.replace("meter.usage(", "meter.usage_from_events(") for name, sql in QUERIES}
BY_CUSTOMER = "SELECT * FROM meter.usage_by_customer(%s, '2024-02-28', '2024-03-08', window_size => 'DAY')"
BY_CUSTOMER_EVENTS = BY_CUSTOMER.replace("usage_by_customer(", "usage_by_customer_from_events(")
BY_GROUP = ("SELECT * FROM meter.usage_by_group(%s, ARRAY['model'], '2024-02-28', '2024-03-08',"
            " window_size => 'DAY')")


SEALED = set()


def compare_tenant(tenant, label, raced=False):
    """Every usage query of every meter of the tenant: cluster = single server, and (for the
    published meters of a tenant without a seal) stored usage = raw events; verify() empty on
    both."""
    scope(tenant)
    published = [r[0] for r in run(single, "SELECT id FROM meter.list_all_meters(status => 'published') ORDER BY id")]
    ids = published + [r[0] for r in run(single, "SELECT id FROM meter.list_all_meters(status => 'archived') ORDER BY id")]
    cluster_ids = sorted(r[0] for r in run(coord, "SELECT id FROM meter.list_all_meters()"))
    check(cluster_ids == sorted(ids), f"{tenant} {label}: the same meters on both", (cluster_ids, ids))
    diffs = []
    raw_diffs = []
    n = 0
    for mid in ids:
        for name, sql in QUERIES + [("usage_by_customer", BY_CUSTOMER), ("usage_by_group", BY_GROUP)]:
            if name == "usage_by_group" and not mid.endswith("_sum"):
                continue
            got = both(sql, (mid,))
            n += 1
            if got[0] != got[1]:
                diffs.append((mid, name, got[0][:4], got[1][:4]))
            raw_sql = FROM_EVENTS.get(name) or (BY_CUSTOMER_EVENTS if name == "usage_by_customer" else None)
            if raw_sql is not None and mid in published and tenant not in SEALED:
                raw = run(coord, raw_sql, (mid,))
                if raw != got[0]:
                    raw_diffs.append((mid, name, got[0][:4], raw[:4]))
    check(not diffs, f"{tenant} {label}: {n} usage queries over {len(ids)} meters equal to one server", diffs[:3])
    check(not raw_diffs, f"{tenant} {label}: usage = usage_from_events, usage_by_customer = its _from_events twin",
          raw_diffs[:3])
    v = both("SELECT * FROM meter.verify()")
    check(v == [[], []], f"{tenant} {label}: meter.verify() empty on the cluster and on one server", v)
    # Skips are counted from the stored states: folded first, so that slots marked for
    # recomputation (MIN, MAX, LATEST after removals) hold their final counts. After writers
    # raced, how many updates hit sealed time (each one a new sealed skip) depends on timing.
    both("SELECT meter.compact()")
    s = both("SELECT meter_id, customer_id, external_customer_id, bucket, skipped, reason FROM meter.skipped"
             + (" WHERE reason <> 'sealed period'" if raced else "") + " ORDER BY 1, 2, 3, 4, 6")
    check(s[0] == s[1] and len(s[0]) > 0, f"{tenant} {label}: meter.skipped equal ({len(s[0])} rows)",
          (s[0][:3], s[1][:3]))
    counts = [one(c, "SELECT count(*) FROM meter.events WHERE tenant_id = %s", (tenant,)) for c in BOTH]
    ucounts = [one(c, "SELECT count(*) FROM app.usage_events WHERE tenant_id = %s", (tenant,)) for c in BOTH]
    check(counts[0] == counts[1] and ucounts[0] == ucounts[1],
          f"{tenant} {label}: the same events on both ({counts[0]} + {ucounts[0]} in the user's table)",
          (counts, ucounts))


# ── 1. An install with data, distributed ────────────────────────────────────────────────

for c in BOTH:
    run(c, "CREATE SCHEMA app")
    run(c, "CREATE TABLE app.usage_events (LIKE meter.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    run(c, "ALTER TABLE app.usage_events ADD PRIMARY KEY (tenant_id, environment_id, id)")
    run(c, "SELECT meter.track('app.usage_events')")

PRE = ["acme", "globex"]
for t in PRE:
    create_meters(t, 0)
    rnd = random.Random(t)
    ingest(t, [event(t, f"pre{i}", rnd) for i in range(150)])
    scope(t)
    for c in BOTH:
        copy_in(c, COPY_SQL.format("app.usage_events"),
                "".join(csv_row(t, event(t, f"preu{i}", random.Random(f"{t}{i}"))) for i in range(30)))
    both("SELECT meter.compact()")

check(one(coord, "SELECT meter.distributed()") is False, "before meter.distribute(): not distributed")
t0 = time.time()
run(coord, "SELECT meter.distribute()")
check(one(coord, "SELECT meter.distributed()") is True,
      f"meter.distribute() made the distributed layout in one call ({time.time() - t0:.1f} s)")
run(coord, "SELECT meter.distribute()")
check(True, "meter.distribute() again: nothing to do (idempotent)")
check(one(single, "SELECT meter.distributed()") is False, "the single server is not distributed")

kinds = dict(run(coord, "SELECT logicalrelid::text, partmethod::text || ':' || colocationid FROM pg_dist_partition"))
events_group = kinds.get("meter.events", "?:?").split(":")[1]
check(all(kinds.get(t, "").startswith("n:") for t in ("meter.meters", "meter.seals", "meter.tracked_tables"))
      and all(kinds.get(t) == "h:" + events_group
              for t in ("meter.events", "meter.pending", "meter.rollups", "meter.sealed_skips", "app.usage_events")),
      "meters, seals, tracked_tables: reference tables; events, pending, rollups, sealed_skips and the "
      "user's tracked table: distributed by tenant_id, co-located", repr(kinds))
twins = run(coord, """SELECT p.proname, o.distribution_argument_index IS NOT NULL, o.force_delegation
    FROM pg_proc p LEFT JOIN pg_dist_object o ON o.classid = 'pg_proc'::regclass AND o.objid = p.oid
    WHERE p.pronamespace = 'meter'::regnamespace AND p.prosrc = 'meter_at' ORDER BY 1""")
check(len(twins) == 14 and all(r[1] and r[2] for r in twins),
      f"the {len(twins)} meter.*_at functions are distributed by tenant (force_delegation)", twins)
for i, w in enumerate(workers, 1):
    n = one(w, "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE ANY (ARRAY['meter.%', 'app.%'])")
    check(n == 8, f"worker{i} has the distribution metadata", n)
    # The registry holds OIDs: every node's placement names its own tables.
    shard = one(coord, "SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'meter.tracked_tables'::regclass")
    rows = run(w, f"SELECT relid::text, relid::oid = to_regclass(relid::text)::oid FROM meter.tracked_tables_{shard}"
                  " ORDER BY 1")
    check(rows == [("app.usage_events", True), ("meter.events", True)],
          f"worker{i}: its placement of the registry names its own tables", rows)

# Tenants whose shards sit on different workers: two per worker (acme and globex among them).
placement = dict(run(coord, """
    SELECT t, n.nodeport FROM unnest(ARRAY['acme', 'globex', 'initech', 'umbrella', 'hooli', 'wonka',
        'stark', 'wayne', 'tyrell', 'cyberdyne', 'soylent', 'oscorp', 'aperture', 'vandelay']) t
    JOIN pg_dist_placement p ON p.shardid = get_shard_id_for_distribution_column('meter.events', t)
    JOIN pg_dist_node n ON n.groupid = p.groupid"""))
TENANTS = list(PRE)
for port in PORTS[1:]:
    have = [t for t in TENANTS if placement[t] == port]
    TENANTS += [t for t, p in placement.items() if p == port and t not in TENANTS][:max(0, 2 - len(have))]
on = {t: PORTS[1:].index(placement[t]) + 1 for t in TENANTS}
check(len(TENANTS) == 4 and sorted(on.values()) == [1, 1, 2, 2],
      "tenants on both workers: " + ", ".join(f"{t} (worker{on[t]})" for t in TENANTS), repr(placement))

# Usage of the data distributed as it was: the stored usage moved along with it.
for t in PRE:
    compare_tenant(t, "after distribute()")

# A table distributed by hand: its shards would lack the TRUNCATE trigger; refused with a hint.
run(coord, "CREATE TABLE app.byhand (LIKE meter.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
run(coord, "SELECT create_distributed_table('app.byhand', 'tenant_id', colocate_with => 'meter.events')")
e = error_of(coord, "SELECT meter.track('app.byhand')")
check(e is not None and e[0] == "55000" and "distributed already" in e[1],
      "meter.track() of a table distributed by hand (no TRUNCATE trigger on its shards): 55000", e)
run(coord, "DROP TABLE app.byhand")

# Collation: a table whose tenant_id cannot be co-located is refused with a hint.
run(coord, "CREATE TABLE app.bad (LIKE meter.events)")
run(coord, "ALTER TABLE app.bad ALTER COLUMN tenant_id TYPE text COLLATE \"default\"")
e = error_of(coord, "SELECT meter.track('app.bad')")
check(e is not None and e[0] == "42804" and "collation" in e[1],
      "meter.track() of a table whose tenant_id is not COLLATE \"C\": 42804", e)

# ── 2. The workload ─────────────────────────────────────────────────────────────────────

for t in TENANTS:
    if t in PRE:
        create_meters(t, 1)           # recomputed from the events already there, on the worker
    else:
        create_meters(t, 0)
        create_meters(t, 1)
for k, t in enumerate(TENANTS):
    scope(t)
    workload_events(t, k, "a")

# Meter changes with events in place: filters replaced, disabled, re-published by a direct
# UPDATE (the statement carries the stamps on Citus: README), a meter created late.
for t in TENANTS:
    scope(t)
    both("SELECT meter.update_meter(%s, %s)", (f"{t}_sum", '[{"key":"model","values":["mini","o1"]}]'))
    both("SELECT meter.update_meter(%s, '[]')", (f"{t}_max",))
    both("SELECT meter.disable_meter(%s)", (f"{t}_latest",))
    both("SELECT meter.disable_meter(%s)", (f"{t}_min",))
    both("""UPDATE meter.meters SET status = 'published', updated_at = now(), updated_by = meter.current_user_id()
            WHERE id = %s""", (f"{t}_min",))
    both("SELECT meter.create_meter('api_call', 'late', '{\"type\":\"SUM\",\"field\":\"gb\"}', id => %s)",
         (f"{t}_late",))
for k, t in enumerate(TENANTS):
    scope(t)
    workload_events(t, 100 + k, "b")

# A table tracked once the cluster is distributed (meter.track distributes it, its events
# start counting), then untracked, then tracked again and dropped (its events leave usage).
for c in BOTH:
    run(c, "CREATE TABLE public.more_events (LIKE meter.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    for t in TENANTS:
        copy_in(c, COPY_SQL.format("public.more_events"),
                "".join(csv_row(t, event(t, f"more{i}", random.Random(f"m{t}{i}"))) for i in range(15)))
    run(c, "SELECT meter.track('public.more_events')")
check(one(coord, "SELECT partmethod::text FROM pg_dist_partition WHERE logicalrelid = 'public.more_events'::regclass") == "h",
      "meter.track() on the cluster distributes the table with meter.events")
for t in TENANTS[:2]:
    compare_tenant(t, "after meter.track() of a table with events")
both("SELECT meter.untrack('public.more_events')")
compare_tenant(TENANTS[2], "after meter.untrack()")
# Untracked, its shards keep Citus's TRUNCATE trigger: TRUNCATE works and counts nothing.
both("TRUNCATE public.more_events")
for c in BOTH:
    for t in TENANTS:
        copy_in(c, COPY_SQL.format("public.more_events"),
                "".join(csv_row(t, event(t, f"more2{i}", random.Random(f"n{t}{i}"))) for i in range(10)))
both("SELECT meter.track('public.more_events')")
compare_tenant(TENANTS[2], "after TRUNCATE of an untracked table and meter.track() again")
both("DROP TABLE public.more_events")
compare_tenant(TENANTS[3], "after DROP TABLE of a tracked table")
shard = one(coord, "SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'meter.tracked_tables'::regclass")
regs = [run(c, f"SELECT relid::text FROM meter.tracked_tables_{shard} ORDER BY 1") for c in [coord] + workers]
regs.append(run(single, "SELECT relid::text FROM meter.tracked_tables ORDER BY 1"))
check(all(r == [("app.usage_events",), ("meter.events",)] for r in regs),
      "the dropped table left the registry on every node, as on one server", regs)

# TRUNCATE of the user's table (every tenant's rows, on every shard), then new rows.
both("TRUNCATE app.usage_events")
for t in TENANTS:
    scope(t)
    for c in BOTH:
        copy_in(c, COPY_SQL.format("app.usage_events"),
                "".join(csv_row(t, event(t, f"post{i}", random.Random(f"p{t}{i}"))) for i in range(25)))

# A sealed period: later events before it are stored but not counted (meter.skipped).
scope(TENANTS[0])
both("SELECT meter.seal('2024-03-02 00:00+00')")
SEALED.add(TENANTS[0])
ingest(TENANTS[0], [event(TENANTS[0], f"late{i}", random.Random(i), day=1) for i in range(20)])
for t in TENANTS[1:]:
    scope(t)
    both("SELECT meter.compact()")

for t in TENANTS:
    compare_tenant(t, "after the workload")

# The catalog: one change on the coordinator, identical on every placement (stamps too).
shard = one(coord, "SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'meter.meters'::regclass")
placements = [run(c, f"SELECT * FROM meter.meters_{shard} ORDER BY id") for c in [coord] + workers]
check(placements[0] == placements[1] == placements[2] and len(placements[0]) > 50,
      f"meter.meters identical on its {len(placements)} placements ({len(placements[0])} meters, updated_at "
      "and updated_by included)")
stamps = run(coord, f"SELECT DISTINCT updated_by FROM meter.meters_{shard} WHERE id LIKE '%%_sum'")
check(stamps == [("alice",)], "update_meter stamped updated_by = meter.user_id on every placement", stamps)
cols = "id, tenant_id, environment_id, event_name, name, aggregation::text, filters::text, reset_usage, status, created_by, updated_by"
cat = [run(c, f"SELECT {cols} FROM meter.meters ORDER BY id") for c in BOTH]
check(cat[0] == cat[1], "the catalog equals the single server's")

# The catalog's readers: the coordinator reads its own placement of meter.meters.
scope(TENANTS[1])
props = '{"model": "o1", "region": "eu", "tokens": 12, "gb": 1.5, "user": "u1", "volume": "v1"}'
reads = {
    "matching_meters": "SELECT id FROM meter.matching_meters('llm', %s::jsonb) ORDER BY id",
    "explain_match": f"SELECT meter.explain_match('{TENANTS[1]}_max', 'llm', %s::jsonb)",
    "list_meters": "SELECT id, status FROM meter.list_meters(sort => 'name', \"order\" => 'asc', \"limit\" => 5) "
                   "WHERE %s IS NOT NULL",
    "count_meters": "SELECT meter.count_meters() WHERE %s IS NOT NULL",
    "usage_by_filter_groups": f"SELECT * FROM meter.usage_by_filter_groups('{TENANTS[1]}_sum', "
                              "'[{\"id\":\"o1\",\"filters\":{\"model\":[\"o1\"]}},{\"id\":\"rest\",\"filters\":{}}]', "
                              "'2024-02-28', '2024-03-08', window_size => 'DAY') WHERE %s IS NOT NULL",
    "stored_slots": f"SELECT count(*), sum(events) FROM meter.stored_slots('{TENANTS[1]}_uniq') WHERE %s IS NOT NULL",
}
for name, sql in reads.items():
    got = both(sql, (props,))
    check(got[0] == got[1] and got[0], f"{name} on the cluster equals one server", got)

# Errors of a function run on a worker reach the client as they are.
for sql in ("SELECT * FROM meter.usage('nope', '2024-01-01', '2024-02-01')",
            "SELECT * FROM meter.verify('nope')",
            "SELECT * FROM meter.usage_by_customer(%s, '2024-02-01', '2024-01-01')" % f"'{TENANTS[1]}_sum'",
            "SELECT * FROM meter.usage(%s, '2024-01-01', '2024-02-01', window_size => 'DAY', timezone => 'Mars/Base')"
            % f"'{TENANTS[1]}_sum'"):
    errs = [error_of(c, sql) for c in BOTH]
    check(errs[0] is not None and errs[1] is not None and errs[0] == errs[1],
          f"the same error on both: {errs[1]}", errs)
for c in BOTH:
    run(c, "RESET meter.tenant_id")
errs = [error_of(c, "SELECT * FROM meter.usage('x', '2024-01-01', '2024-02-01')") for c in BOTH]
check(errs[0] == errs[1] and errs[0][0] == "55000", f"no tenant: the same error on both: {errs[1]}", errs)
scope(TENANTS[1])

# Inside a transaction, usage reads the transaction's own writes (the call runs on the node
# holding the shards, over the connection that wrote them), and a rollback leaves nothing.
for label, c in (("cluster", coord), ("one server", single)):
    run(c, "SET meter.tenant_id = %s", (TENANTS[1],))
    before = one(c, "SELECT value FROM meter.usage(%s, '2024-02-28', '2024-03-08')", (f"{TENANTS[1]}_count",))
    c.autocommit = False
    run(c, "SELECT * FROM meter.ingest(%s)", (json.dumps([event(TENANTS[1], f"tx{i}", random.Random(i), name="llm")
                                                         for i in range(7)]),))
    inside = one(c, "SELECT value FROM meter.usage(%s, '2024-02-28', '2024-03-08')", (f"{TENANTS[1]}_count",))
    v = run(c, "SELECT * FROM meter.verify(%s)", (f"{TENANTS[1]}_count",))
    c.rollback()
    c.autocommit = True
    after = one(c, "SELECT value FROM meter.usage(%s, '2024-02-28', '2024-03-08')", (f"{TENANTS[1]}_count",))
    check(inside == before + 7 and after == before and v == [],
          f"{label}: inside a transaction usage and verify see its own events; after ROLLBACK they are gone",
          (before, inside, after, v))

# One transaction: COPY of every tenant's events (several connections per worker), a
# multi-shard UPDATE, a meter change recomputed from those uncommitted events, usage.
rows = "".join(csv_row(t, event(t, f"big{i}", random.Random(f"b{t}{i}"), name="llm"))
               for t in TENANTS for i in range(300))
inside = []
for c in BOTH:
    c.autocommit = False
    run(c, "SET LOCAL meter.tenant_id = %s", (TENANTS[2],))
    copy_in(c, COPY_SQL.format("meter.events"), rows)
    run(c, "UPDATE meter.events SET properties = properties || '{\"region\": \"eu\"}' WHERE id ~ '-big[0-9]+$'")
    run(c, "SELECT meter.update_meter(%s, '[{\"key\":\"region\",\"values\":[\"eu\"]}]')", (f"{TENANTS[2]}_max",))
    inside.append([run(c, sql, (f"{TENANTS[2]}_{m}",)) for m in ("max", "count", "uniq")
                   for sql in (QUERIES[1][1], FROM_EVENTS[QUERIES[1][0]])] + [run(c, "SELECT * FROM meter.verify()")])
    c.rollback()
    c.autocommit = True
check(inside[0] == inside[1] and inside[0][0] == inside[0][1] and inside[0][-1] == [],
      "one transaction with a multi-tenant COPY, a multi-shard UPDATE and a meter change: usage inside it "
      "equals one server's and its raw events; verify() empty", (inside[0][:2], inside[1][:2]))

# ── 3. Roles under row-level security ───────────────────────────────────────────────────

T1 = TENANTS[0]
T2 = next(t for t in TENANTS if on[t] != on[T1])
for c in BOTH:
    run(c, "DROP ROLE IF EXISTS meter_reader")
    run(c, "DROP ROLE IF EXISTS meter_writer")
    run(c, "CREATE ROLE meter_reader LOGIN")
    run(c, "CREATE ROLE meter_writer LOGIN")
    run(c, "SELECT meter.grant_reader('meter_reader'), meter.grant_writer('meter_writer')")
    # verify reads every tracked table: the reader reads the user's table too, as on one server
    run(c, "GRANT USAGE ON SCHEMA app TO meter_reader")
    run(c, "GRANT SELECT ON app.usage_events TO meter_reader")
for label, port in (("cluster", PORTS[0]), ("one server", SINGLE)):
    writer = connect(port, "meter_writer")
    run(writer, "SET meter.tenant_id = %s", (T2,))
    got = run(writer, "SELECT * FROM meter.ingest(%s)",
              (json.dumps([event(T2, f"w{i}", random.Random(i)) for i in range(30)]),))
    check(got == [(30, 0)], f"{label}: the writer's meter.ingest passes row-level security (30 accepted)", got)
    writer.autocommit = False
    run(writer, "SET LOCAL citus.propagate_set_commands = 'local'" if port != SINGLE else "SELECT 1")
    run(writer, "SET LOCAL meter.tenant_id = %s", (T2,))
    run(writer, """INSERT INTO meter.events (id, event_name, external_customer_id, "timestamp", properties)
                   VALUES ('w-direct', 'llm', 'x1', '2024-03-01 05:00+00', '{"tokens": 5}')""")
    writer.commit()
    e = error_of(writer, """INSERT INTO meter.events (id, tenant_id, event_name, customer_id, "timestamp")
                            VALUES ('w-other', %s, 'llm', 'c1', '2024-03-01')""", (T1,))
    writer.rollback()
    writer.autocommit = True
    check(e is not None and e[0] == "42501",
          f"{label}: the writer's direct INSERT (SET LOCAL scope) works; another tenant's row is refused (42501)", e)
    writer.close()

scope(T2)
want = {name: run(single, sql, (f"{T2}_sum",)) for name, sql in QUERIES[:2]}
want["by_customer"] = run(single, BY_CUSTOMER, (f"{T2}_count",))
for label, port in (("cluster", PORTS[0]), ("one server", SINGLE)):
    reader = connect(port, "meter_reader")
    run(reader, "SET meter.tenant_id = %s", (T2,))
    got = {name: run(reader, sql, (f"{T2}_sum",)) for name, sql in QUERIES[:2]}
    got["by_customer"] = run(reader, BY_CUSTOMER, (f"{T2}_count",))
    check(got == want, f"{label}: the reader's usage and usage_by_customer (session SET) equal the owner's")
    v = run(reader, "SELECT * FROM meter.verify()")
    check(v == [], f"{label}: the reader's meter.verify() is empty", v)
    n_owner = one(single, "SELECT count(*) FROM meter.events WHERE tenant_id = %s", (T2,))
    reader.autocommit = False
    if port != SINGLE:
        run(reader, "SET LOCAL citus.propagate_set_commands = 'local'")
    run(reader, "SET LOCAL meter.tenant_id = %s", (T2,))
    n = one(reader, "SELECT count(*) FROM meter.events")
    m = one(reader, "SELECT count(*) FROM meter.meters")
    reader.rollback()
    reader.autocommit = True
    check(n == n_owner and m == len(meter_defs(T2)) + 1,
          f"{label}: the reader's direct SELECTs (SET LOCAL scope) see the tenant's {n_owner} events and "
          f"{m} meters, nothing else", (n, m))
    reader.close()

# ── 4. meter.aggregate, pushed down ─────────────────────────────────────────────────────

AGG = ("SELECT event_name, meter.aggregate('{\"type\":\"SUM\",\"field\":\"tokens\"}', properties, \"timestamp\")"
       " FROM meter.events GROUP BY event_name ORDER BY 1")
plan = "\n".join(r[0] for r in run(coord, "EXPLAIN (VERBOSE, COSTS OFF) " + AGG))
check("worker_partial_agg" in plan and "coord_combine_agg" in plan,
      "meter.aggregate splits into worker_partial_agg / coord_combine_agg", plan)
got = both(AGG)
check(got[0] == got[1] and len(got[0]) == 2, "meter.aggregate across shards equals one server", got)

# ── 5. Four concurrent writers on the coordinator ──────────────────────────────────────

# An event's content depends on its id only: whoever writes it first, the result is the same.
INSERT_JSON = """INSERT INTO {} (id, tenant_id, event_name, customer_id, external_customer_id, "timestamp",
    properties) SELECT e->>'id', %s, e->>'event_name', e->>'customer_id', e->>'external_customer_id',
    (e->>'timestamp')::timestamptz, e->'properties' FROM jsonb_array_elements(%s::jsonb) e ON CONFLICT DO NOTHING"""


def writer_thread(port, k, ids, errors):
    conn = connect(port)
    rnd = random.Random(k)
    try:
        for step in range(25):
            t = TENANTS[(k + step) % len(TENANTS)]
            run(conn, "SET meter.tenant_id = %s", (t,))
            chunk = rnd.sample(ids, 12)   # ids shared by every writer, in different orders
            evs = [event(t, f"cc{i}", random.Random(i)) for i in chunk]
            kind = step % 4
            if kind == 0:
                run(conn, "SELECT * FROM meter.ingest(%s)", (json.dumps(evs),))
            elif kind == 1:
                run(conn, INSERT_JSON.format("meter.events"), (t, json.dumps(evs)))
            elif kind == 2:
                conn.autocommit = False
                run(conn, "SELECT * FROM meter.ingest(%s)", (json.dumps(evs[:6]),))
                run(conn, INSERT_JSON.format("app.usage_events"), (t, json.dumps(evs[6:])))
                conn.commit()
                conn.autocommit = True
            else:
                run(conn, """UPDATE meter.events SET properties = properties || '{"gb": 9}'
                             WHERE tenant_id = %s AND id = ANY (%s)""", (t, [e["id"] for e in evs]))
    except psycopg2.Error as err:
        errors.append((k, err.pgcode, (err.pgerror or "").strip()[:300]))
    finally:
        conn.close()


for label, port, conn in (("cluster", PORTS[0], coord), ("one server", SINGLE, single)):
    errors = []
    ids = list(range(60))
    threads = [threading.Thread(target=writer_thread, args=(port, k, ids, errors)) for k in range(4)]
    t0 = time.time()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    check(not errors, f"{label}: 4 concurrent writers (ingest, INSERT … ON CONFLICT, UPDATE, shared ids, "
                      f"4 tenants) finished without error or deadlock in {time.time() - t0:.1f} s", errors)
    # The updates raced the inserts: the same final content on both servers.
    run(conn, """UPDATE meter.events SET properties = properties || '{"gb": 9}' WHERE id ~ '-cc[0-9]+$'""")
for t in TENANTS:
    compare_tenant(t, "after the concurrent writers", raced=True)

# ── 6. Meter changes and in-flight ingestion, across nodes ──────────────────────────────

def timed(fn):
    t0 = time.time()
    fn()
    return time.time() - t0


HOLD = 2.0
other = next(t for t in TENANTS if on[t] == on[T2] and t != T2)
for label, port in (("cluster", PORTS[0]), ("one server", SINGLE)):
    # In-flight ingestion of T2 holds back a change of T2's meter, not of another tenant's.
    a = connect(port, autocommit=False)
    run(a, "SET meter.tenant_id = %s", (T2,))
    run(a, "SELECT * FROM meter.ingest(%s)", (json.dumps([event(T2, f"fl{label[0]}{i}", random.Random(i))
                                                           for i in range(20)]),))
    waited = {}

    def change(t, key, filters):
        c = connect(port)
        run(c, "SET meter.tenant_id = %s", (t,))
        waited[key] = timed(lambda: run(c, "SELECT meter.update_meter(%s, %s)", (f"{t}_sum", filters)))
        c.close()

    # (Another tenant's change first: on a Citus cluster writes to a reference table are
    # serialized, so a change waiting for ingestion holds back later meter changes too.)
    change(other, "other", '[{"key":"model","values":["gpt-4o"]}]')
    th1 = threading.Thread(target=change, args=(T2, "same", '[{"key":"model","values":["gpt-4o"]}]'))
    th1.start()
    time.sleep(HOLD)
    a.commit()
    th1.join()
    check(waited["same"] >= HOLD * 0.9 and waited["other"] < HOLD * 0.5,
          f"{label}: a meter change waits for the tenant's in-flight ingestion ({waited['same']:.1f} s), "
          f"another tenant's does not ({waited['other']:.1f} s)", waited)
    # A meter change in flight holds back the tenant's ingestion; it then counts under the new filters.
    b = connect(port, autocommit=False)
    run(b, "SET meter.tenant_id = %s", (T2,))
    run(b, "SELECT meter.update_meter(%s, %s)", (f"{T2}_sum", '[{"key":"model","values":["o1"]}]'))

    def ingest_later(key, t):
        c = connect(port)
        run(c, "SET meter.tenant_id = %s", (t,))
        evs = [event(t, f"fm{label[0]}{key}{i}", random.Random(i)) for i in range(20)]
        waited[key] = timed(lambda: run(c, "SELECT * FROM meter.ingest(%s)", (json.dumps(evs),)))
        c.close()

    th1 = threading.Thread(target=ingest_later, args=("ingest", T2))
    th2 = threading.Thread(target=ingest_later, args=("ingest-other", other))
    th1.start()
    th2.start()
    time.sleep(HOLD)
    b.commit()
    th1.join()
    th2.join()
    check(waited["ingest"] >= HOLD * 0.9 and waited["ingest-other"] < HOLD * 0.5,
          f"{label}: ingestion waits for the tenant's in-flight meter change ({waited['ingest']:.1f} s), "
          f"another tenant's does not ({waited['ingest-other']:.1f} s)", waited)
    a.close()
    b.close()
for t in (T2, other):
    compare_tenant(t, "after meter changes raced ingestion", raced=True)

for c in BOTH:
    run(c, "SELECT meter.revoke_access('meter_reader'), meter.revoke_access('meter_writer')")
    run(c, "REVOKE ALL ON app.usage_events FROM meter_reader")
    run(c, "REVOKE ALL ON SCHEMA app FROM meter_reader")
for c in [coord] + workers + [single]:
    c.close()
print(f"citus: {passed} passed, {failed} failed")
sys.exit(0 if failed == 0 else 1)
