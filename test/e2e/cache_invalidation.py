#!/usr/bin/python3
"""The compiled-meter cache follows meter changes across backends (SPEC §3, §6).

Session A ingests (so its backend caches the meters of the event name); session B changes
the meter's filters, disables it, publishes it again, creates a new meter. After each
commit in B, the very next event in A must be counted under the new definition, and
meter.verify() must stay empty. Also: a change B has not committed yet is not seen by A,
and a rolled-back change leaves A's matching as it was. A session already inside an open
transaction sees, at each matching_meters call, the meters committed before the call.
"""
import os
import sys

import psycopg2

DB = "meter_cache_test"


def connect(db):
    conn = psycopg2.connect(dbname=db, host=os.environ.get("PGHOST"),
                            port=os.environ.get("PGPORT"), user=os.environ.get("PGUSER", "postgres"))
    return conn


def one(cur, sql, args=()):
    cur.execute(sql, args)
    return cur.fetchone()[0]


failures = []


def check(name, got, want):
    if got != want:
        failures.append(f"{name}: got {got!r}, want {want!r}")
        print(f"not ok - {name}: got {got!r}, want {want!r}")
    else:
        print(f"ok - {name}")


admin = connect("postgres")
admin.autocommit = True
with admin.cursor() as c:
    c.execute(f"DROP DATABASE IF EXISTS {DB}")
    c.execute(f"CREATE DATABASE {DB}")
try:
    with connect(DB) as setup:
        setup.autocommit = True
        with setup.cursor() as c:
            c.execute("CREATE EXTENSION meter")

    a = connect(DB)
    b = connect(DB)
    a.autocommit = True
    b.autocommit = False
    ca, cb = a.cursor(), b.cursor()
    for cur in (ca, cb):
        cur.execute("SET meter.tenant_id = 'acme'")
    b.commit()

    cb.execute("""SELECT id FROM meter.create_meter('api.call', 'EU calls',
        filters => '[{"key":"region","values":["eu"]}]', id => 'eu_calls')""")
    b.commit()

    n = 0

    def send(region):
        global n
        n += 1
        ca.execute("""INSERT INTO meter.events (id, event_name, external_customer_id, properties)
            VALUES (%s, 'api.call', 'cus_1', jsonb_build_object('region', %s))""", (f"e{n}", region))

    def counted():
        # what the tracking trigger stored (compacted and pending), read through the
        # public function; A sets the scope
        return one(ca, "SELECT COALESCE(sum(events), 0) FROM meter.stored_slots('eu_calls')")

    send("eu")
    send("us")
    check("A counts eu under the first definition", counted(), 1)

    cb.execute("SELECT meter.update_meter('eu_calls', '[{\"key\":\"region\",\"values\":[\"us\"]}]')")
    # B has not committed: A still matches the old filters (A's inserts would wait for
    # B's tenant lock until B ends, so only look).
    check("uncommitted change is not seen by A", one(ca, "SELECT count(*) FROM meter.matching_meters('api.call', '{\"region\":\"eu\"}')"), 1)
    b.rollback()
    send("eu")
    check("rolled-back change leaves A's matching as it was", counted(), 2)

    cb.execute("SELECT meter.update_meter('eu_calls', '[{\"key\":\"region\",\"values\":[\"us\"]}]')")
    b.commit()
    # The meter was rebuilt under its new definition: the one stored us event counts.
    check("rebuilt under the new filters", counted(), 1)
    send("us")
    send("eu")
    check("A's very next event uses the committed filters", counted(), 2)
    check("A's matching_meters sees the change", one(ca, "SELECT count(*) FROM meter.matching_meters('api.call', '{\"region\":\"us\"}')"), 1)

    cb.execute("SELECT meter.disable_meter('eu_calls')")
    b.commit()
    send("us")
    check("disabled meter stops counting in A at once", counted(), 2)

    cb.execute("UPDATE meter.meters SET status = 'published' WHERE id = 'eu_calls'")
    b.commit()
    check("published again: rebuilt from every stored event", counted(), 3)
    send("us")
    check("and counts A's next event", counted(), 4)

    cb.execute("SELECT meter.create_meter('api.call', 'All calls', id => 'all_calls')")
    b.commit()
    send("eu")
    check("a meter created in B counts A's next event",
          one(ca, "SELECT sum(events) FROM meter.stored_slots('all_calls')"), n)

    check("verify is empty", one(ca, "SELECT count(*) FROM meter.verify()"), 0)

    # A session already inside a transaction: each matching_meters call sees the meters
    # committed before it started, like any READ COMMITTED statement (SPEC §3).
    t = connect(DB)
    t.autocommit = False
    ct = t.cursor()
    ct.execute("SET meter.tenant_id = 'acme'")

    def matching(region):
        return one(ct, "SELECT COALESCE(string_agg(id, ',' ORDER BY id), '') FROM "
                   "meter.matching_meters('api.call', jsonb_build_object('region', %s::text))", (region,))

    check("in a transaction: us matches under the current filters", matching("us"), "all_calls,eu_calls")
    cb.execute("SELECT meter.update_meter('eu_calls', '[{\"key\":\"region\",\"values\":[\"ap\"]}]')")
    check("in a transaction: B's uncommitted change is not seen", matching("us"), "all_calls,eu_calls")
    check("in a transaction: ... nor its new value", matching("ap"), "all_calls")
    b.commit()
    check("in a transaction: the next call sees B's committed filters", matching("us"), "all_calls")
    check("in a transaction: ... and matches the new value", matching("ap"), "all_calls,eu_calls")
    cb.execute("SELECT meter.disable_meter('all_calls')")
    b.commit()
    check("in a transaction: a meter B disabled is gone at the next call", matching("ap"), "eu_calls")
    cb.execute("SELECT meter.create_meter('api.call', 'AP calls', filters => '[{\"key\":\"region\",\"values\":[\"ap\"]}]', id => 'ap_calls')")
    b.commit()
    check("in a transaction: a meter B created is there at the next call", matching("ap"), "ap_calls,eu_calls")
    # The same transaction, still open, sees its own change at once and B's later ones.
    ct.execute("SELECT meter.update_meter('ap_calls', '[{\"key\":\"region\",\"values\":[\"us\"]}]')")
    check("in a transaction: its own change is seen at once", matching("ap"), "eu_calls")
    t.rollback()
    check("after rollback: its own change is undone", one(ca, "SELECT string_agg(id, ',' ORDER BY id) FROM "
          "meter.matching_meters('api.call', '{\"region\":\"ap\"}')"), "ap_calls,eu_calls")
    t.close()

    a.close()
    b.close()
finally:
    with admin.cursor() as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    admin.close()

sys.exit(1 if failures else 0)
