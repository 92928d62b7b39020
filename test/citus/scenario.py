#!/usr/bin/python3
"""The Citus scenario, run by test/citus/run.sh against a coordinator and two workers.

For now (0.1.0's table layout) it distributes the extension's tables by hand, as issue 11
describes, and checks that the failures listed there are reproduced: each check states
the behaviour observed on Citus 13.2.2, so the harness passes today and every check that
starts failing marks a behaviour that changed. When the new write path lands, this file
becomes the real scenario (same answers as on one server), and the `known failure`
checks turn into the assertions that those paths work.

Environment (set by run.sh): CITUS_PORTS="coordinator worker1 worker2", PGHOST,
PGUSER, PGDATABASE. Prints one line per check and `citus: N passed, N failed` last.
"""
import io
import os
import sys

import psycopg2

PORTS = [int(p) for p in os.environ["CITUS_PORTS"].split()]
DB = os.environ.get("PGDATABASE", "meter_citus")
HOST = os.environ.get("PGHOST", "127.0.0.1")

passed = 0
failed = 0


def connect(port, user="postgres"):
    conn = psycopg2.connect(host=HOST, port=port, dbname=DB, user=user)
    conn.autocommit = True
    return conn


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok - " + what)
    else:
        failed += 1
        print("not ok - " + what + (": " + detail if detail else ""))


def run(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else None


def one(conn, sql, args=None):
    return run(conn, sql, args)[0][0]


def expect_error(conn, what, sqlstate, fragment, sql, args=None, copy_data=None):
    """Known failure: sql must fail with sqlstate and a message containing fragment."""
    try:
        with conn.cursor() as cur:
            if copy_data is not None:
                cur.copy_expert(sql, io.StringIO(copy_data))
            else:
                cur.execute(sql, args)
    except psycopg2.Error as e:
        msg = (e.pgerror or str(e)).strip()
        ok = e.pgcode == sqlstate and fragment in msg
        check(ok, f"known failure: {what} ({sqlstate})",
              f"got {e.pgcode}: {msg.splitlines()[0] if msg else ''}")
        if conn.status != psycopg2.extensions.STATUS_READY:
            conn.rollback()
        return
    check(False, f"known failure: {what} ({sqlstate})", "the statement succeeded")


coord = connect(PORTS[0])
workers = [connect(p) for p in PORTS[1:]]

# ── The 0.1.0 layout distributed by hand (issue 11) ────────────────────────────────────
run(coord, "SELECT create_reference_table('meter.meters')")
run(coord, "SELECT create_distributed_table('meter.events', 'tenant_id')")
run(coord, "SELECT create_distributed_table('meter.rollups', 'tenant_id', colocate_with => 'meter.events')")
run(coord, "SELECT create_distributed_table('meter.rollup_values', 'tenant_id', colocate_with => 'meter.events')")
kinds = dict(run(coord, "SELECT logicalrelid::text, partmethod::text || ':' || colocationid FROM pg_dist_partition"))
check(kinds.get("meter.meters", "").startswith("n:")
      and kinds.get("meter.events", "").startswith("h:")
      and kinds.get("meter.rollups", "x")[1:] == kinds.get("meter.events", "y")[1:]
      and kinds.get("meter.rollup_values", "x")[1:] == kinds.get("meter.events", "y")[1:],
      "meters is a reference table; events, rollups, rollup_values distributed and co-located",
      repr(kinds))

# Metadata is synced to the workers (Citus 11+ default): a trigger there can read pg_dist_*.
for i, w in enumerate(workers, 1):
    n = one(w, "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'meter.%'")
    check(n == 4, f"worker{i} has the distribution metadata (pg_dist_partition)", f"{n} rows")

# Two tenants whose shards sit on different workers.
placement = dict(run(coord, """
    SELECT t, n.nodeport FROM unnest(ARRAY['acme', 'globex', 'initech', 'umbrella', 'hooli',
        'wonka', 'stark', 'wayne', 'tyrell', 'cyberdyne']) t
    JOIN pg_dist_placement p ON p.shardid = get_shard_id_for_distribution_column('meter.events', t)
    JOIN pg_dist_node n ON n.groupid = p.groupid"""))
tenants = []
for port in PORTS[1:]:
    tenants += [t for t, p in placement.items() if p == port][:1]
check(len(tenants) == 2, "two tenants with shards on different workers", repr(placement))
T1, T2 = tenants[0], tenants[-1]

# The extension's triggers were created on every shard (enable_unsafe_triggers), the
# TRUNCATE one included (it existed before distribution).
shard = one(coord, "SELECT get_shard_id_for_distribution_column('meter.events', %s)", (T1,))
w1 = workers[PORTS[1:].index(placement[T1])]
trig = [r[0] for r in run(w1, "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass ORDER BY 1",
                          (f"meter.events_{shard}",))]
check(trig == [f"meter_track_{op}_{shard}" for op in ("delete", "insert", "truncate", "update")],
      f"tracking triggers exist on the shard meter.events_{shard}", repr(trig))

# The lookups a trigger on a shard can make on a worker (test/citus/NOTES.md §2): the
# co-located shards of the other tables, and the local placement of the reference table.
colocated = run(w1, """
    SELECT po.logicalrelid::text, pg_catalog.to_regclass(pg_catalog.shard_name(o.logicalrelid, o.shardid))::text
    FROM pg_catalog.pg_dist_shard me
    JOIN pg_catalog.pg_dist_partition pm ON pm.logicalrelid = me.logicalrelid
    JOIN pg_catalog.pg_dist_partition po ON po.colocationid = pm.colocationid
         AND po.logicalrelid <> pm.logicalrelid
    JOIN pg_catalog.pg_dist_shard o ON o.logicalrelid = po.logicalrelid AND o.shardminvalue = me.shardminvalue
    WHERE me.shardid = %s ORDER BY 1""", (shard,))
check(len(colocated) == 2 and all(r[1] is not None for r in colocated)
      and [r[0] for r in colocated] == ["meter.rollup_values", "meter.rollups"],
      "on a worker, pg_dist_shard resolves a shard's co-located shards to local tables", repr(colocated))
ref_shard = one(coord, "SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'meter.meters'::regclass")
for i, w in enumerate(workers, 1):
    local = one(w, """
        SELECT pg_catalog.to_regclass(pg_catalog.shard_name(s.logicalrelid, s.shardid))::text
        FROM pg_catalog.pg_dist_shard s JOIN pg_catalog.pg_dist_placement pl ON pl.shardid = s.shardid
        WHERE s.logicalrelid = 'meter.meters'::regclass
          AND pl.groupid = (SELECT groupid FROM pg_catalog.pg_dist_local_group)""")
    check(local == f"meter.meters_{ref_shard}", f"worker{i} finds its local placement of meter.meters",
          repr(local))

# ── Catalog changes (reference table): the trigger fires on every placement ─────────────
run(coord, "SET meter.tenant_id = %s", (T1,))
expect_error(coord, "create_meter: validate_meter() fires on the placement", "39P01",
             f'"meters_{ref_shard}"', "SELECT meter.create_meter('api_call', 'API calls')")

run(coord, "ALTER TABLE meter.meters DISABLE TRIGGER meters_validate")
expect_error(coord, "create_meter: the meter-change rebuild runs on the workers' placements",
             "XX000", "cannot execute a distributed query from a query on a shard",
             "SELECT meter.create_meter('api_call', 'API calls')")
run(coord, "ALTER TABLE meter.meters ENABLE TRIGGER meters_validate")

# Meters of both tenants, written with the catalog triggers out of the way.
run(coord, "ALTER TABLE meter.meters DISABLE TRIGGER USER")
for t in (T1, T2):
    run(coord, """INSERT INTO meter.meters (id, tenant_id, environment_id, event_name, name, aggregation)
                  VALUES (%s, %s, '', 'api_call', 'API calls', '{"type":"COUNT"}'),
                         (%s, %s, '', 'api_call', 'Tokens', '{"type":"SUM","field":"tokens"}')""",
        (f"meter_calls_{t}", t, f"meter_tokens_{t}", t))
run(coord, "ALTER TABLE meter.meters ENABLE TRIGGER USER")
n = [one(w, f"SELECT count(*) FROM meter.meters_{ref_shard}") for w in workers]
check(n == [4, 4], "the meters reached every placement of the reference table", repr(n))

# ── Events ──────────────────────────────────────────────────────────────────────────────
expect_error(coord, "meter.ingest: the forced generic plan", "0A000", "could not create distributed plan",
             """SELECT * FROM meter.ingest('[{"event_name":"api_call","customer_id":"c1","id":"e1"}]')""")

insert_select = """INSERT INTO meter.events (id, tenant_id, event_name, customer_id, properties)
    SELECT t || '_e' || i, t, 'api_call', 'c' || (i %% 3), jsonb_build_object('tokens', i)
    FROM unnest(%s::text[]) t, generate_series(1, 50) i"""
expect_error(coord, "INSERT ... SELECT: the tracking trigger rebuilds from a shard", "XX000",
             "cannot execute a distributed query from a query on a shard", insert_select, ([T1, T2],))
expect_error(coord, "COPY: the tracking trigger rebuilds from a shard", "XX000",
             "cannot execute a distributed query from a query on a shard",
             "COPY meter.events (id, tenant_id, event_name, customer_id) FROM STDIN WITH (format csv)",
             copy_data=f"c1,{T1},api_call,c1\nc2,{T2},api_call,c1\n")

# Events stored with the tracking triggers disabled, for the reads below.
run(coord, "ALTER TABLE meter.events DISABLE TRIGGER USER")
run(coord, insert_select, ([T1, T2],))
run(coord, "ALTER TABLE meter.events ENABLE TRIGGER USER")
check(one(coord, "SELECT count(*) FROM meter.events") == 100, "100 events stored (50 per tenant)")

expect_error(coord, "UPDATE: the tracking trigger rebuilds from a shard", "XX000",
             "cannot execute a distributed query from a query on a shard",
             "UPDATE meter.events SET customer_id = 'c9' WHERE tenant_id = %s AND id = %s", (T1, f"{T1}_e1"))
expect_error(coord, "TRUNCATE: the tracking trigger rebuilds from a shard", "XX000",
             "cannot execute a distributed query from a query on a shard", "TRUNCATE meter.events")

# A per-tenant query goes to one worker.
plan = "\n".join(r[0] for r in run(coord, "EXPLAIN SELECT count(*) FROM meter.events WHERE tenant_id = %s", (T1,)))
check("Task Count: 1" in plan, "a per-tenant query routes to one shard", plan)

# verify(): Citus ships the function's query to a worker, where meter.tenant_id is unset.
expect_error(coord, "verify(): the session's tenant does not reach the worker", "55000", "no tenant is set",
             "SELECT * FROM meter.verify()")

# ── Row-level security: policies read a setting the worker session does not have ────────
run(coord, "DROP ROLE IF EXISTS meter_citus_reader")
run(coord, "DROP ROLE IF EXISTS meter_citus_writer")
run(coord, "CREATE ROLE meter_citus_reader LOGIN")
run(coord, "CREATE ROLE meter_citus_writer LOGIN")
run(coord, "SELECT meter.grant_reader('meter_citus_reader'), meter.grant_writer('meter_citus_writer')")
reader = connect(PORTS[0], "meter_citus_reader")
run(reader, "SET meter.tenant_id = %s", (T1,))
n = one(reader, "SELECT count(*) FROM meter.events WHERE tenant_id = %s", (T1,))
check(n == 0, "known failure: a reader with SET meter.tenant_id sees none of its 50 events", f"saw {n}")
# What does work: SET LOCAL in a transaction block, propagated by Citus.
run(reader, "SET citus.propagate_set_commands = 'local'")
reader.autocommit = False
run(reader, "SET LOCAL meter.tenant_id = %s", (T1,))
n = one(reader, "SELECT count(*) FROM meter.events")
reader.rollback()
reader.autocommit = True
check(n == 50, "a reader with SET LOCAL + citus.propagate_set_commands = 'local' sees its 50 events",
      f"saw {n}")
writer = connect(PORTS[0], "meter_citus_writer")
run(writer, "SET meter.tenant_id = %s", (T1,))
expect_error(writer, "a writer's insert under row-level security", "42501",
             "new row violates row-level security policy for table \"events_",
             "INSERT INTO meter.events (id, event_name, customer_id) VALUES ('w1', 'api_call', 'c1')")
for c in (reader, writer):
    c.close()
run(coord, "SELECT meter.revoke_access('meter_citus_reader'), meter.revoke_access('meter_citus_writer')")
run(coord, "DROP ROLE meter_citus_reader")
run(coord, "DROP ROLE meter_citus_writer")

for c in [coord] + workers:
    c.close()
print(f"citus: {passed} passed, {failed} failed")
sys.exit(0 if failed == 0 else 1)
