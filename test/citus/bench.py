#!/usr/bin/python3
"""The Citus benchmark (issue 11), informational: run by `make citus-bench` after the scenario.

On the 3-node loopback cluster (one machine hosts all three: the figures show the overhead
of distribution, not the gain of more machines) and on the plain server beside it, in a
database of their own: CITUS_BENCH_N events (default 200,000) of 8 tenants through
meter.ingest (batches of 1,000, through the coordinator), from one client and from four;
then meter.usage_by_customer of every customer of every tenant (two meters, daily windows
over a month). Prints `citus bench: <figure>: cluster X s, one server Y s (ratio)`; the
answers of both must be equal (exit 1 otherwise). Never gates on a time.
"""
import json
import os
import random
import sys
import threading
import time

import psycopg2

PORTS = [int(p) for p in os.environ["CITUS_PORTS"].split()]
SINGLE = int(os.environ["SINGLE_PORT"])
HOST = os.environ.get("PGHOST", "127.0.0.1")
N = int(os.environ.get("CITUS_BENCH_N", "200000"))
DB = "meter_bench"
CUSTOMERS = 500
BATCH = 1000


def connect(port, db=DB):
    c = psycopg2.connect(host=HOST, port=port, dbname=db, user="postgres")
    c.autocommit = True
    return c


def run(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else None


def setup():
    for port in PORTS + [SINGLE]:
        admin = connect(port, "postgres")
        run(admin, f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        run(admin, f"CREATE DATABASE {DB}")
        admin.close()
        c = connect(port)
        run(c, "CREATE EXTENSION citus" if port != SINGLE else "SELECT 1")
        run(c, "CREATE EXTENSION meter")
        c.close()
    coord = connect(PORTS[0])
    run(coord, "SELECT citus_set_coordinator_host(%s, %s)", (HOST, PORTS[0]))
    for p in PORTS[1:]:
        run(coord, "SELECT citus_add_node(%s, %s)", (HOST, p))
    run(coord, "SELECT meter.distribute()")
    return coord, connect(SINGLE)


TENANTS = [f"tenant{i}" for i in range(8)]


def create_meters(conn):
    for t in TENANTS:
        run(conn, "SET meter.tenant_id = %s", (t,))
        for mid, agg, flt in [("count", {"type": "COUNT"}, []),
                              ("sum", {"type": "SUM", "field": "tokens"}, []),
                              ("uniq", {"type": "COUNT_UNIQUE", "field": "user"}, []),
                              ("max", {"type": "MAX", "field": "tokens"},
                               [{"key": "model", "values": ["gpt-4o"]}])]:
            run(conn, "SELECT meter.create_meter('llm', %s, %s, %s, id => %s)",
                (mid, json.dumps(agg), json.dumps(flt), f"{t}_{mid}"))


def batches():
    """Per tenant, its batches of events (JSON), deterministic."""
    rnd = random.Random(11)
    per = N // len(TENANTS)
    out = {t: [] for t in TENANTS}
    for t in TENANTS:
        evs = []
        for i in range(per):
            evs.append({"id": f"{t}-{i}", "event_name": "llm",
                        "external_customer_id": f"cus{rnd.randrange(CUSTOMERS)}",
                        "timestamp": f"2024-03-{1 + i * 30 // per:02d}T{rnd.randrange(24):02d}:"
                                     f"{rnd.randrange(60):02d}:00Z",
                        "properties": {"model": rnd.choice(["gpt-4o", "o1", "mini"]),
                                       "tokens": rnd.randrange(1, 5000), "user": f"u{rnd.randrange(5000)}"}})
            if len(evs) == BATCH:
                out[t].append(json.dumps(evs))
                evs = []
        if evs:
            out[t].append(json.dumps(evs))
    return out


def ingest(port, work):
    """work: list of (tenant, batch) for one client."""
    c = connect(port)
    for t, b in work:
        run(c, "SET meter.tenant_id = %s", (t,))
        run(c, "SELECT * FROM meter.ingest(%s)", (b,))
    c.close()


def timed_ingest(port, data, clients):
    works = [[] for _ in range(clients)]
    for k, t in enumerate(TENANTS):
        works[k % clients] += [(t, b) for b in data[t]]
    threads = [threading.Thread(target=ingest, args=(port, w)) for w in works]
    t0 = time.time()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.time() - t0


def usage_all(conn, meter):
    rows = []
    t0 = time.time()
    for t in TENANTS:
        run(conn, "SET meter.tenant_id = %s", (t,))
        rows += run(conn, "SELECT * FROM meter.usage_by_customer(%s, '2024-03-01', '2024-04-01', window_size => 'DAY')",
                    (f"{t}_{meter}",))
    return time.time() - t0, rows


def line(what, cluster, single):
    print(f"citus bench: {what}: cluster {cluster:.2f} s, one server {single:.2f} s "
          f"({cluster / single:.2f}x)", flush=True)


def main():
    coord, single = setup()
    create_meters(coord)
    create_meters(single)
    data = batches()
    ok = True
    for clients in (1, 4):
        if clients == 4:
            for c in (coord, single):
                run(c, "TRUNCATE meter.events")
                for t in TENANTS:
                    run(c, "SET meter.tenant_id = %s", (t,))
                    run(c, "SELECT meter.compact()")
        tc = timed_ingest(PORTS[0], data, clients)
        ts = timed_ingest(SINGLE, data, clients)
        line(f"ingest of {N} events by meter.ingest ({BATCH} per call, {clients} client{'s' if clients > 1 else ''})",
             tc, ts)
    counts = [run(c, "SELECT count(*) FROM meter.events")[0][0] for c in (coord, single)]
    ok &= counts[0] == counts[1] == N
    for meter in ("sum", "uniq"):
        tc, rc = usage_all(coord, meter)
        ts, rs = usage_all(single, meter)
        line(f"usage_by_customer of every customer ({len(TENANTS)} tenants x {CUSTOMERS} customers x 31 days, "
             f"{meter.upper() if meter == 'sum' else 'COUNT_UNIQUE'})", tc, ts)
        ok &= rc == rs and len(rc) > 0
    print(f"citus bench: the cluster's answers equal the single server's: {'yes' if ok else 'NO'}")
    coord.close()
    single.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
