#!/usr/bin/python3
"""End-to-end: every SQL write form from many sessions at once, in multi-statement
transactions, while two other sessions compact (SPEC §7: "exact … from many sessions at
once … concurrent writers never deadlock on the extension's own rows"; §9; issue 9).

CONC_WRITERS (default 8) sessions run, for CONC_SECONDS (default 20), transactions of 1 to 4
statements drawn from: INSERT batches, INSERT … ON CONFLICT DO NOTHING (re-sends),
INSERT … ON CONFLICT DO UPDATE of ids every writer shares, MERGE (update, delete and insert
branches), UPDATE moving events to other 15-minute slots and UTC days, other customers,
event names and tenants, DELETE, writable CTEs (delete and re-insert of the same id; events
moved from one table into another), COPY; some statements inside a savepoint rolled back,
and 15 % of the transactions rolled back whole. Every writer works on the same two
tenants, three customers and a few slots, on meter.events and a tracked table of the
user's own. Meanwhile two sessions loop meter.compact() (all meters, or one) in both
tenants.

Each writer keeps a model of what it committed for its own ids (the ids it shares with
the others are checked for presence only). Pass when: no statement failed (a deadlock or
anything else), pg_stat_database and the server log report no deadlock, the event tables
hold exactly the model, meter.verify() is empty in both tenants before and after a final
meter.compact(), meter.usage equals meter.usage_from_events for every meter over several
windows, and COUNT, SUM and MAX usage per customer equal plain SQL over the raw rows.
Prints events/s and transactions/s.

Uses PGHOST/PGPORT/PGUSER (and METER_TEST_DIR for the server log); its own database.
CONC_SEED picks the draw; CONC_WRITER_THRESHOLD sets the writers' meter.compaction_threshold
(default 20000: the compactors fold; lower, the writers fold inside their statements too).
Exit 0 = pass.
"""
import io
import json
import os
import random
import sys
import threading
import time

import psycopg2
import psycopg2.extras

WRITERS = int(os.environ.get("CONC_WRITERS", "8"))
SECONDS = float(os.environ.get("CONC_SECONDS", "20"))
SEED = int(os.environ.get("CONC_SEED", str(random.randrange(1 << 20))))
# meter.compaction_threshold of the writers (the default: they leave compaction to the
# compactors; a low one makes them compact inside their own statements too)
WRITER_THRESHOLD = os.environ.get("CONC_WRITER_THRESHOLD", "20000")
DB = "meter_e2e_forms_%d" % os.getpid()
TENANTS = ["acme", "globex"]
CUSTOMERS = ["c1", "c2", "c3"]
BASE = 1717200000  # 2024-06-01 00:00:00 UTC
SHARED = 40        # ids every writer upserts
LOG = os.path.join(os.environ.get("METER_TEST_DIR") or os.environ.get("PGHOST") or "/nonexistent", "server.log")

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


def connect(db=DB, autocommit=False, options=None):
    c = psycopg2.connect(dbname=db, application_name="meter_forms", options=options)
    c.autocommit = autocommit
    return c


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"


def content(rng):
    """A random event: name, customer, timestamp (two UTC days around midnight), properties."""
    props = {"k": rng.choice(["a", "b", "c"]), "u": rng.choice(["u1", "u2", "u3", 7, 7.0, "7"])}
    x = rng.random()
    if x < 0.7:
        props["v"] = rng.randint(-50, 1000)
    elif x < 0.85:
        props["v"] = "%d.25" % rng.randint(0, 99)
    elif x < 0.92:
        props["v"] = "n/a"
    return {"n": "api" if rng.random() < 0.9 else "other", "c": rng.choice(CUSTOMERS),
            "t": BASE - 3600 + rng.randint(0, 3 * 3600 - 1), "p": props}


SETUP = """
CREATE EXTENSION meter;
CREATE TABLE public.app_events (LIKE meter.events INCLUDING ALL);
SELECT meter.track('public.app_events');
CREATE FUNCTION pg_temp.meters(t text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('meter.tenant_id', t, true);
	PERFORM meter.create_meter('api', 'calls', id => t || '_count');
	PERFORM meter.create_meter('api', 'sum', '{"type":"SUM","field":"v"}', id => t || '_sum');
	PERFORM meter.create_meter('api', 'sum ab', '{"type":"SUM","field":"v"}', '[{"key":"k","values":["a","b"]}]', id => t || '_sum_ab');
	PERFORM meter.create_meter('api', 'unique', '{"type":"COUNT_UNIQUE","field":"u"}', id => t || '_unique');
	PERFORM meter.create_meter('api', 'max', '{"type":"MAX","field":"v"}', id => t || '_max');
	PERFORM meter.create_meter('api', 'max per hour', '{"type":"MAX","field":"v","bucket_size":"HOUR"}', id => t || '_maxh');
	PERFORM meter.create_meter('api', 'min a', '{"type":"MIN","field":"v"}', '[{"key":"k","values":["a"]}]', id => t || '_min');
	PERFORM meter.create_meter('api', 'latest', '{"type":"LATEST","field":"v"}', id => t || '_latest');
	PERFORM meter.create_meter('api', 'avg', '{"type":"AVG","field":"v"}', id => t || '_avg');
	PERFORM meter.create_meter('api', 'weighted', '{"type":"WEIGHTED_SUM","field":"v"}', id => t || '_ws');
	PERFORM meter.create_meter('other', 'other', id => t || '_other');
END $$;
SELECT pg_temp.meters('acme');
SELECT pg_temp.meters('globex');
"""


class Writer(threading.Thread):
    def __init__(self, n, stop, lock, stats, errors):
        super().__init__(name="writer%d" % n, daemon=True)
        self.n, self.stop, self.lock, self.stats, self.errors = n, stop, lock, stats, errors
        self.rng = random.Random(SEED * 100 + n)
        self.seq = 0
        self.model = {}     # id -> (table, tenant, content) for committed live ids; deleted ids absent
        self.shared = set()  # shared ids this writer committed an upsert of

    def new_id(self):
        self.seq += 1
        return "w%d_%d" % (self.n, self.seq)

    def own(self, model, k, table=None):
        ids = [i for i, (tb, _, _) in model.items() if table is None or tb == table]
        return sorted(self.rng.sample(ids, min(k, len(ids))))

    def bump(self, key, k=1):
        with self.lock:
            self.stats[key] = self.stats.get(key, 0) + k

    # Each op changes the server and `m` (a copy of the model) the same way; returns the
    # number of events it wrote.
    def op(self, cur, m, shared, used_shared):
        rng = self.rng
        table = rng.choice(["meter.events", "public.app_events"])
        what = rng.choice(["insert", "insert", "resend", "upsert", "merge", "move", "move", "tenant",
                           "delete", "cte", "cte_move", "copy"])
        if what == "upsert" and used_shared:
            what = "insert"
        if what in ("resend", "merge", "move", "tenant", "delete", "cte", "cte_move") and \
                not any(tb == table for tb, _, _ in m.values()):
            what = "insert"
        self.bump("op " + what)
        if what == "insert":
            rows = [(self.new_id(), content(rng)) for _ in range(rng.randint(1, 15))]
            tenant = rng.choice(TENANTS)
            psycopg2.extras.execute_values(cur, "INSERT INTO " + table + """ (id, tenant_id, event_name, customer_id, "timestamp", properties)
                SELECT v.id, v.tenant, v.n, v.c, v.t::timestamptz, v.p::jsonb FROM (VALUES %s) v(id, tenant, n, c, t, p)""",
                [(i, tenant, c["n"], c["c"], iso(c["t"]), json.dumps(c["p"])) for i, c in rows])
            for i, c in rows:
                m[i] = (table, tenant, c)
            return len(rows)
        if what == "resend":
            ids = self.own(m, rng.randint(1, 5), table)
            rows = [(i, m[i][1], content(rng)) for i in ids] + [(self.new_id(), rng.choice(TENANTS), content(rng))]
            psycopg2.extras.execute_values(cur, "INSERT INTO " + table + """ (id, tenant_id, event_name, customer_id, "timestamp", properties)
                SELECT v.id, v.tenant, v.n, v.c, v.t::timestamptz, v.p::jsonb FROM (VALUES %s) v(id, tenant, n, c, t, p)
                ORDER BY v.id ON CONFLICT (tenant_id, environment_id, id) DO NOTHING""",
                [(i, t, c["n"], c["c"], iso(c["t"]), json.dumps(c["p"])) for i, t, c in rows])
            i, t, c = rows[-1]
            m[i] = (table, t, c)
            return len(rows)
        if what == "upsert":
            # ids every writer upserts (same tenant, meter.events): their content is whoever
            # committed last; in sorted order, one statement per transaction
            ks = sorted(rng.sample(range(SHARED), rng.randint(1, 4)))
            rows = [("s%d" % k, content(rng)) for k in ks] + [(self.new_id(), content(rng))]
            rows.sort(key=lambda r: r[0])
            psycopg2.extras.execute_values(cur, """INSERT INTO meter.events (id, tenant_id, event_name, customer_id, "timestamp", properties)
                SELECT v.id, 'acme', v.n, v.c, v.t::timestamptz, v.p::jsonb FROM (VALUES %s) v(id, n, c, t, p)
                ON CONFLICT (tenant_id, environment_id, id) DO UPDATE SET properties = excluded.properties,
                    "timestamp" = excluded."timestamp", customer_id = excluded.customer_id, event_name = excluded.event_name""",
                [(i, c["n"], c["c"], iso(c["t"]), json.dumps(c["p"])) for i, c in rows])
            for i, c in rows:
                if i.startswith("s"):
                    shared.add(i)
                else:
                    m[i] = ("meter.events", "acme", c)
            return len(rows)
        if what == "merge":
            ids = self.own(m, rng.randint(1, 6), table)
            tenant = m[ids[0]][1]
            ids = [i for i in ids if m[i][1] == tenant]
            src = []
            for i in ids:
                if rng.random() < 0.3:
                    src.append((i, "delete", None))
                else:
                    src.append((i, "update", content(rng)))
            nid = self.new_id()
            src.append((nid, "insert", content(rng)))
            psycopg2.extras.execute_values(cur, "MERGE INTO " + table + """ e
                USING (SELECT * FROM (VALUES %s) v(id, what, n, c, t, p)) s
                ON e.tenant_id = '""" + tenant + """' AND e.environment_id = '' AND e.id = s.id
                WHEN MATCHED AND s.what = 'delete' THEN DELETE
                WHEN MATCHED THEN UPDATE SET event_name = s.n, customer_id = s.c, "timestamp" = s.t::timestamptz, properties = s.p::jsonb
                WHEN NOT MATCHED THEN INSERT (id, tenant_id, event_name, customer_id, "timestamp", properties)
                    VALUES (s.id, '""" + tenant + """', s.n, s.c, s.t::timestamptz, s.p::jsonb)""",
                [(i, w, c and c["n"], c and c["c"], c and iso(c["t"]), c and json.dumps(c["p"])) for i, w, c in src])
            for i, w, c in src:
                if w == "delete":
                    del m[i]
                else:
                    m[i] = (table, tenant, c)
            return len(src)
        if what == "move":
            ids = self.own(m, rng.randint(1, 8), table)
            vals = []
            for i in ids:
                tb, t, c = m[i]
                c = dict(c, p=dict(c["p"]))
                x = rng.random()
                if x < 0.4:
                    c["t"] = c["t"] + rng.choice([-1, 1]) * rng.randint(900, 4 * 3600)   # other slots and days
                elif x < 0.6:
                    c["c"] = rng.choice(CUSTOMERS)
                elif x < 0.7:
                    c["n"] = "other" if c["n"] == "api" else "api"
                else:
                    c["p"] = content(rng)["p"]
                m[i] = (tb, t, c)
                vals.append((i, c["n"], c["c"], iso(c["t"]), json.dumps(c["p"])))
            psycopg2.extras.execute_values(cur, "UPDATE " + table + """ AS e SET event_name = v.n, customer_id = v.c,
                "timestamp" = v.t::timestamptz, properties = v.p::jsonb FROM (VALUES %s) AS v(id, n, c, t, p)
                WHERE e.id = v.id AND e.tenant_id IN ('acme', 'globex')""", vals)
            return len(vals)
        if what == "tenant":
            ids = self.own(m, rng.randint(1, 4), table)
            cur.execute("UPDATE " + table + " SET tenant_id = CASE tenant_id WHEN 'acme' THEN 'globex' ELSE 'acme' END "
                        "WHERE tenant_id IN ('acme', 'globex') AND id = ANY(%s)", (ids,))
            for i in ids:
                tb, t, c = m[i]
                m[i] = (tb, "globex" if t == "acme" else "acme", c)
            return len(ids)
        if what == "delete":
            ids = self.own(m, rng.randint(1, 4), table)
            cur.execute("DELETE FROM " + table + " WHERE tenant_id IN ('acme', 'globex') AND id = ANY(%s)", (ids,))
            for i in ids:
                del m[i]
            return len(ids)
        if what == "cte":
            # delete and insert again the same ids in one statement, with new content
            ids = self.own(m, rng.randint(1, 4), table)
            news = {i: content(rng) for i in ids}
            cur.execute("WITH d AS (DELETE FROM " + table + " WHERE tenant_id IN ('acme', 'globex') AND id = ANY(%s) RETURNING id, tenant_id) "
                        "INSERT INTO " + table + """ (id, tenant_id, event_name, customer_id, "timestamp", properties)
                        SELECT d.id, d.tenant_id, x.n, x.c, x.t::timestamptz, x.p::jsonb FROM d
                        JOIN jsonb_to_recordset(%s::jsonb) AS x(id text, n text, c text, t text, p jsonb) USING (id)""",
                        (ids, json.dumps([{"id": i, "n": c["n"], "c": c["c"], "t": iso(c["t"]), "p": c["p"]} for i, c in news.items()])))
            for i, c in news.items():
                tb, t, _ = m[i]
                m[i] = (tb, t, c)
            return 2 * len(ids)
        if what == "cte_move":
            # events moved from one table into the other, in one statement
            other = "public.app_events" if table == "meter.events" else "meter.events"
            ids = self.own(m, rng.randint(1, 4), table)
            cur.execute("WITH d AS (DELETE FROM " + table + " WHERE tenant_id IN ('acme', 'globex') AND id = ANY(%s) RETURNING *) "
                        "INSERT INTO " + other + """ (id, tenant_id, environment_id, event_name, customer_id, "timestamp", properties)
                        SELECT id, tenant_id, environment_id, event_name, customer_id, "timestamp", properties FROM d""", (ids,))
            for i in ids:
                tb, t, c = m[i]
                m[i] = (other, t, c)
            return 2 * len(ids)
        # copy
        rows = [(self.new_id(), content(rng)) for _ in range(rng.randint(1, 30))]
        tenant = rng.choice(TENANTS)
        buf = io.StringIO()
        for i, c in rows:
            buf.write("\t".join([i, tenant, c["n"], c["c"], iso(c["t"]), json.dumps(c["p"]).replace("\\", "\\\\")]) + "\n")
        buf.seek(0)
        cur.copy_expert("COPY " + table + ' (id, tenant_id, event_name, customer_id, "timestamp", properties) FROM STDIN', buf)
        for i, c in rows:
            m[i] = (table, tenant, c)
        return len(rows)

    def run(self):
        conn = connect(options="-c meter.compaction_threshold=" + WRITER_THRESHOLD)
        cur = conn.cursor()
        while not self.stop.is_set():
            m = dict(self.model)
            shared = set()
            written = 0
            used_shared = False
            try:
                for _ in range(self.rng.randint(1, 4)):
                    if self.rng.random() < 0.15:
                        # a statement inside a savepoint that is rolled back
                        before, before_shared = dict(m), set(shared)
                        cur.execute("SAVEPOINT sp")
                        self.op(cur, m, shared, True)
                        cur.execute("ROLLBACK TO SAVEPOINT sp")
                        m, shared = before, before_shared
                        self.bump("savepoints rolled back")
                        continue
                    n_before = len(shared)
                    written += self.op(cur, m, shared, used_shared)
                    used_shared = used_shared or len(shared) > n_before
                if self.rng.random() < 0.15:
                    conn.rollback()
                    self.bump("transactions rolled back")
                    continue
                conn.commit()
                self.model = m
                self.shared |= shared
                self.bump("transactions committed")
                self.bump("events written", written)
            except psycopg2.Error as e:
                with self.lock:
                    self.errors.append("%s: %s %s" % (self.name, e.pgcode, str(e).strip().splitlines()[0]))
                conn.rollback()
        conn.close()


class Compactor(threading.Thread):
    def __init__(self, n, stop, lock, stats, errors):
        super().__init__(name="compactor%d" % n, daemon=True)
        self.n, self.stop, self.lock, self.stats, self.errors = n, stop, lock, stats, errors
        self.rng = random.Random(SEED * 7 + n)

    def run(self):
        conn = connect(autocommit=True)
        cur = conn.cursor()
        while not self.stop.is_set():
            t = self.rng.choice(TENANTS)
            try:
                cur.execute("SELECT set_config('meter.tenant_id', %s, false)", (t,))
                if self.rng.random() < 0.5:
                    cur.execute("SELECT meter.compact()")
                else:
                    cur.execute("SELECT meter.compact(%s)", (t + self.rng.choice(["_count", "_sum", "_max", "_latest", "_unique", "_maxh"]),))
                folded = cur.fetchone()[0]
                with self.lock:
                    self.stats["compactions"] = self.stats.get("compactions", 0) + 1
                    self.stats["pending rows folded"] = self.stats.get("pending rows folded", 0) + folded
            except psycopg2.Error as e:
                with self.lock:
                    self.errors.append("%s: %s %s" % (self.name, e.pgcode, str(e).strip().splitlines()[0]))
            time.sleep(self.rng.random() * 0.05)
        conn.close()


def main():
    print("write forms, concurrently: CONC_WRITERS=%d CONC_SECONDS=%g CONC_SEED=%d CONC_WRITER_THRESHOLD=%s"
          % (WRITERS, SECONDS, SEED, WRITER_THRESHOLD))
    admin = connect("postgres", autocommit=True)
    acur = admin.cursor()
    acur.execute('CREATE DATABASE "%s"' % DB)
    try:
        run(admin)
    finally:
        acur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % DB)
        admin.close()
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


def run(admin):
    setup = connect(autocommit=True)
    setup.cursor().execute(SETUP)
    setup.close()
    log_start = os.path.getsize(LOG) if os.access(LOG, os.R_OK) else None
    acur = admin.cursor()
    acur.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = %s", (DB,))
    deadlocks0 = acur.fetchone()[0]

    stop, lock, stats, errors = threading.Event(), threading.Lock(), {}, []
    writers = [Writer(n, stop, lock, stats, errors) for n in range(WRITERS)]
    compactors = [Compactor(n, stop, lock, stats, errors) for n in range(2)]
    t0 = time.time()
    for t in writers + compactors:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in writers + compactors:
        t.join(120)
    elapsed = time.time() - t0
    for k in sorted(stats):
        print("  %-28s %d" % (k, stats[k]))
    print("%.0f events written/s, %.0f transactions committed/s (%d writers, %.1f s)"
          % (stats.get("events written", 0) / elapsed, stats.get("transactions committed", 0) / elapsed, WRITERS, elapsed))
    for e in errors[:10]:
        print("  error: " + e)
    check(not errors, "no statement failed (%d errors)" % len(errors))
    check(all(not t.is_alive() for t in writers + compactors), "every session finished")
    check(stats.get("compactions", 0) > 0 and stats.get("pending rows folded", 0) > 0,
          "the compactors folded pending rows while the writers wrote (%d compactions)" % stats.get("compactions", 0))

    time.sleep(0.6)  # let the cumulative statistics catch up
    acur.execute("SELECT pg_stat_clear_snapshot()")
    acur.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = %s", (DB,))
    check(acur.fetchone()[0] == deadlocks0, "pg_stat_database reports no deadlock")
    if log_start is not None:
        with open(LOG, "rb") as f:
            f.seek(log_start)
            dl = [l for l in f.read().decode("utf-8", "replace").splitlines() if "deadlock" in l]
        for l in dl[:5]:
            print("  " + l)
        check(not dl, "no deadlock in the server log")
    else:
        print("skip  server log %s not readable" % LOG)

    conn = connect(autocommit=True)
    cur = conn.cursor()
    # The event tables hold exactly what the writers committed.
    model = {}
    shared = set()
    for w in writers:
        model.update(w.model)
        shared |= w.shared
    stored = {}
    for table in ("meter.events", "public.app_events"):
        cur.execute('SELECT id, tenant_id, event_name, customer_id, extract(epoch FROM "timestamp")::bigint, properties FROM ' + table)
        for i, t, n, c, ts, p in cur.fetchall():
            stored.setdefault(i, []).append((table, t, {"n": n, "c": c, "t": int(ts), "p": p}))
    bad = []
    for i, (table, t, c) in model.items():
        got = stored.get(i)
        if got != [(table, t, c)]:
            bad.append((i, (table, t, c), got))
    extra = [i for i in stored if i not in model and i not in shared]
    missing_shared = [i for i in shared if i not in stored]
    for b in bad[:5]:
        print("  differs: %r" % (b,))
    check(not bad and not extra and not missing_shared,
          "the event tables hold exactly the committed events (%d own ids, %d shared; %d differ, %d unexpected, %d shared missing)"
          % (len(model), len(shared), len(bad), len(extra), len(missing_shared)))

    for when in ("as written", "after meter.compact()"):
        for t in TENANTS:
            cur.execute("SELECT set_config('meter.tenant_id', %s, false)", (t,))
            if when != "as written":
                cur.execute("SELECT meter.compact()")
            cur.execute("SELECT row_to_json(v)::text FROM meter.verify() v LIMIT 5")
            diff = [r[0] for r in cur.fetchall()]
            for d in diff:
                print("  " + d)
            check(not diff, "%s: meter.verify() empty for tenant %s" % (when, t))
            cur.execute("""SELECT format('%%s case %%s: usage %%s, usage_from_events %%s', m.id, c.n, u.v, f.v)
                FROM meter.meters m
                CROSS JOIN (VALUES (1, '2024-05-31 00:00+00'::timestamptz, '2024-06-03 00:00+00'::timestamptz, NULL::meter.window_size, 'UTC', NULL),
                    (2, '2024-05-31 12:07+00', '2024-06-01 13:53+00', 'HOUR', 'UTC', 'c2'),
                    (3, '2024-05-30 00:00+00', '2024-06-03 00:00+00', 'DAY', 'America/New_York', NULL),
                    (4, '2024-05-31 22:00+00', '2024-06-01 03:00+00', '15MIN', 'Asia/Kathmandu', 'c1')) c(n, s, e, ws, tz, cust)
                CROSS JOIN LATERAL (SELECT array_agg(value ORDER BY window_start) AS v
                    FROM meter.usage(m.id, c.s, c.e, c.cust, window_size => c.ws, timezone => c.tz)) u
                CROSS JOIN LATERAL (SELECT array_agg(value ORDER BY window_start) AS v
                    FROM meter.usage_from_events(m.id, c.s, c.e, c.cust, window_size => c.ws, timezone => c.tz)) f
                WHERE m.tenant_id = %s AND u.v IS DISTINCT FROM f.v""", (t,))
            diff = [r[0] for r in cur.fetchall()]
            for d in diff[:5]:
                print("  " + d)
            check(not diff, "%s: usage = usage_from_events for every meter of tenant %s" % (when, t))
            # plain SQL over the raw rows, per customer
            cur.execute("""WITH raw AS (
                    SELECT customer_id AS c, CASE WHEN jsonb_typeof(properties->'v') = 'number' THEN (properties->>'v')::numeric
                        WHEN properties->>'v' ~ '^-?[0-9]+(\\.[0-9]+)?$' THEN (properties->>'v')::numeric END AS v
                    FROM (SELECT customer_id, properties FROM meter.events WHERE tenant_id = %(t)s AND event_name = 'api'
                        UNION ALL SELECT customer_id, properties FROM public.app_events WHERE tenant_id = %(t)s AND event_name = 'api') e),
                want AS (SELECT c, count(*) AS n, coalesce(sum(v), 0) AS s, max(v) AS mx FROM raw GROUP BY c)
                SELECT format('%%s: plain SQL %%s/%%s/%%s, usage %%s/%%s/%%s', want.c, want.n, want.s, want.mx, u1.value, u2.value, u3.value)
                FROM want
                CROSS JOIN LATERAL meter.usage(%(t)s || '_count', '2024-05-01', '2024-07-01', want.c) u1
                CROSS JOIN LATERAL meter.usage(%(t)s || '_sum', '2024-05-01', '2024-07-01', want.c) u2
                CROSS JOIN LATERAL meter.usage(%(t)s || '_max', '2024-05-01', '2024-07-01', want.c) u3
                WHERE (want.n, want.s, want.mx) IS DISTINCT FROM (u1.value, u2.value, u3.value)""", {"t": t})
            diff = [r[0] for r in cur.fetchall()]
            for d in diff[:5]:
                print("  " + d)
            check(not diff, "%s: COUNT, SUM and MAX usage per customer of tenant %s = plain SQL over the raw rows" % (when, t))
    conn.close()


if __name__ == "__main__":
    sys.exit(main())
