#!/usr/bin/python3
"""A partitioned meter.events end to end (README "Partitioning and retention"): what pgTAP
cannot do inside one transaction.

1. COPY into the partitioned table and into one partition: rows counted, a stored id (in
   another partition) fails with 23505 and stores nothing.
2. Concurrency: sessions ingest overlapping ids into the partitioned table at once, with
   meter.ingest and with plain INSERTs: every id stored once; ingest's counts exact (sum of
   accepted = distinct ids); INSERTs of a stored id fail with 23505 only; no deadlock;
   meter.event_ids = the stored ids; verify() empty. Then the race itself, made exact:
   session A has stored an id and not committed; session B ingests it and waits; A
   commits: under READ COMMITTED B counts it a duplicate (its retry), under REPEATABLE
   READ it fails with 40001.
3. pg_dump of a database with the partitioned meter.events under pg_partman (a sealed and
   dropped month, two tenants, a writer's grants) and a restore with
   session_replication_role = replica (the README's way) into a fresh database: the same
   table (partitioned, its indexes valid, a member of the extension), rows, ids, registry,
   seals, usage for every meter by month, triggers, policies and grants; verify() empty;
   and ingestion, dedup and pg_partman maintenance keep working there.

Uses PGHOST/PGPORT/PGUSER and databases of its own. Exit 0 = pass.
"""
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

import psycopg2
import psycopg2.errors

SRC = 'meter_e2e_parts_src'
DST = 'meter_e2e_parts_dst'
failures = []


def connect(db, autocommit=True):
    c = psycopg2.connect(dbname=db)
    c.autocommit = autocommit
    return c


def q(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else None


def q1(conn, sql, args=None):
    return q(conn, sql, args)[0][0]


def check(desc, ok, detail=''):
    print('%s  %s%s' % ('ok   ' if ok else 'FAIL ', desc, (' — ' + str(detail)) if detail and not ok else ''), flush=True)
    if not ok:
        failures.append(desc)


def sqlstate_of(fn):
    try:
        fn()
        return None
    except psycopg2.Error as e:
        return e.pgcode


def recreate(db):
    admin = connect('postgres')
    q(admin, 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % db)
    q(admin, 'CREATE DATABASE %s' % db)
    admin.close()


def drop(db):
    admin = connect('postgres')
    q(admin, 'DROP DATABASE IF EXISTS %s WITH (FORCE)' % db)
    admin.close()


def ids_exact(conn):
    return q1(conn, """SELECT NOT EXISTS (
        (SELECT tenant_id, environment_id, id FROM meter.events EXCEPT ALL SELECT tenant_id, environment_id, id FROM meter.event_ids)
        UNION ALL
        (SELECT tenant_id, environment_id, id FROM meter.event_ids EXCEPT ALL SELECT tenant_id, environment_id, id FROM meter.events))""")


def verify_empty(conn, tenants):
    for t in tenants:
        q(conn, "SET meter.tenant_id = %s", (t,))
        if q1(conn, 'SELECT count(*) FROM meter.verify()') != 0:
            return False
    return True


# ── 1. COPY ──────────────────────────────────────────────────────────────────────────

def copy_rows(conn, table, rows):
    data = ''.join('%s\t%s\t%s\t%s\t{"n": %d}\n' % r for r in rows)
    path = tempfile.mktemp(prefix='meter-parts-', suffix='.copy')
    with open(path, 'w') as f:
        f.write(data)
    try:
        with open(path) as f, conn.cursor() as cur:
            cur.copy_expert('COPY %s (id, event_name, customer_id, "timestamp", properties) FROM STDIN' % table, f)
    finally:
        os.unlink(path)


def copy_tests(conn):
    q(conn, "SET meter.tenant_id = 'acme'")
    copy_rows(conn, 'meter.events', [('c%d' % i, 'api', 'c1', '2024-0%d-10 10:00+00' % (1 + i % 3), i) for i in range(300)])
    check('COPY into the partitioned meter.events stores 300 rows',
          q1(conn, "SELECT count(*) FROM meter.events WHERE id LIKE 'c%'") == 300)
    state = sqlstate_of(lambda: copy_rows(conn, 'meter.events',
                                          [('n1', 'api', 'c1', '2024-01-05 00:00+00', 1), ('c7', 'api', 'c1', '2024-03-05 00:00+00', 1)]))
    check('COPY of a stored id (in another partition) fails with 23505', state == '23505', state)
    check('... and stores none of its rows', q1(conn, "SELECT count(*) FROM meter.events WHERE id = 'n1'") == 0)
    copy_rows(conn, 'meter.events_p2024_02', [('d%d' % i, 'api', 'c2', '2024-02-20 10:00+00', 1000 + i) for i in range(50)])
    check('COPY straight into a partition stores its rows',
          q1(conn, "SELECT count(*) FROM meter.events WHERE id LIKE 'd%'") == 50)
    state = sqlstate_of(lambda: copy_rows(conn, 'meter.events_p2024_02', [('c1', 'api', 'c2', '2024-02-21 10:00+00', 1)]))
    check('COPY straight into a partition of an id stored in another fails with 23505', state == '23505', state)
    check('usage = the rows (COUNT, SUM), ids exact, verify() empty',
          q1(conn, "SELECT value FROM meter.usage('pt_count', '2024-01-01', '2025-01-01')") ==
          q1(conn, "SELECT count(*) FROM meter.events WHERE tenant_id = 'acme'")
          and q1(conn, "SELECT value FROM meter.usage('pt_sum', '2024-01-01', '2025-01-01')") ==
          q1(conn, "SELECT sum((properties ->> 'n')::numeric) FROM meter.events WHERE tenant_id = 'acme'")
          and ids_exact(conn) and verify_empty(conn, ['acme']))


# ── 2. concurrency ───────────────────────────────────────────────────────────────────

def concurrency(db):
    clients, rounds, pool = 6, 40, 400
    results = {'accepted': 0, 'duplicates': 0, 'insert_ok': 0, 'unique_violations': 0, 'other': []}
    # Plain INSERTs take their ids in meter.ingest's order (by id, "C" collation): sessions
    # that write overlapping ids in different orders could deadlock on any table.
    lock = threading.Lock()

    def client(k):
        rnd = random.Random(k)
        conn = connect(db)
        q(conn, "SET meter.tenant_id = 'acme'")
        for r in range(rounds):
            ids = rnd.sample(range(pool), 25)
            try:
                if r % 4 == 0:
                    # a plain multi-row INSERT of pool ids: all or nothing
                    q(conn, """INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
                        SELECT 'p' || i, 'api', 'c' || (i %% 3), timestamptz '2024-01-01 00:00+00' + i * interval '5 hours',
                            jsonb_build_object('n', i) FROM unnest(%s::int[]) i ORDER BY ('p' || i) COLLATE "C\"""", (ids,))
                    with lock:
                        results['insert_ok'] += 1
                else:
                    events = ','.join('{"id": "p%d", "event_name": "api", "customer_id": "c%d", '
                                      '"timestamp": "%s", "properties": {"n": %d}}'
                                      % (i, i % 3, time.strftime('%Y-%m-%dT%H:%M:%SZ',
                                                                 time.gmtime(1704067200 + i * 18000)), i)
                                      for i in ids + ids[:3])
                    a, d = q(conn, 'SELECT * FROM meter.ingest(%s)', ('[' + events + ']',))[0]
                    with lock:
                        results['accepted'] += a
                        results['duplicates'] += d
            except psycopg2.errors.UniqueViolation as e:
                with lock:
                    if r % 4 == 0:
                        results['unique_violations'] += 1
                    else:
                        results['other'].append('meter.ingest: %s' % e.pgerror)
            except psycopg2.Error as e:
                with lock:
                    results['other'].append('%s %s' % (e.pgcode, e.pgerror))
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conn = connect(db)
    q(conn, "SET meter.tenant_id = 'acme'")
    stored = q1(conn, "SELECT count(*) FROM meter.events WHERE id LIKE 'p%'")
    distinct = q1(conn, "SELECT count(DISTINCT id) FROM meter.events WHERE id LIKE 'p%'")
    inserted_by_insert = stored - results['accepted']
    print('       %d sessions x %d rounds: ingest accepted %d, duplicates %d; INSERTs ok %d, 23505 %d; %d stored'
          % (clients, rounds, results['accepted'], results['duplicates'], results['insert_ok'],
             results['unique_violations'], stored))
    check('concurrent sessions: no error but 23505 on plain INSERTs of stored ids', not results['other'], results['other'][:3])
    check('every id stored once', stored == distinct)
    check("ingest's counts add up: accepted (%d) + the INSERTs' rows (%d) = stored"
          % (results['accepted'], inserted_by_insert), inserted_by_insert == 25 * results['insert_ok'])
    check('meter.event_ids = the stored ids', ids_exact(conn))
    check('verify() empty', verify_empty(conn, ['acme']))
    check('usage = the rows', q1(conn, "SELECT value FROM meter.usage('pt_count', '2024-01-01', '2025-01-01')")
          == q1(conn, "SELECT count(*) FROM meter.events WHERE tenant_id = 'acme'"))

    # The race, step by step.
    for isolation, want in (('READ COMMITTED', 'duplicate'), ('REPEATABLE READ', '40001')):
        a, b = connect(db, autocommit=False), connect(db, autocommit=False)
        b.set_session(isolation_level=isolation)
        q(a, "SET meter.tenant_id = 'acme'")
        q(b, "SET meter.tenant_id = 'acme'")
        rid = 'race_' + isolation.split()[0].lower()
        event = '{"id": "%s", "event_name": "api", "customer_id": "c1", "timestamp": "2024-02-02T00:00:00Z"}' % rid
        q(b, 'SELECT 1')   # B's snapshot (REPEATABLE READ) predates A's commit
        q(a, 'SELECT * FROM meter.ingest(%s)', (event,))
        out = {}

        def run_b():
            try:
                out['row'] = q(b, 'SELECT accepted, duplicates FROM meter.ingest(%s)', (event,))[0]
                b.commit()
            except psycopg2.Error as e:
                out['error'] = e.pgcode
                b.rollback()

        t = threading.Thread(target=run_b)
        t.start()
        time.sleep(0.5)
        waiting = t.is_alive()
        a.commit()
        t.join(30)
        got = ('duplicate' if out.get('row') == (0, 1) else out.get('error', out.get('row')))
        check("%s: B waits for A's uncommitted id, then: %s" % (isolation, want), waiting and got == want, got)
        a.close()
        b.close()
    check('after the races: ids exact, verify() empty', ids_exact(conn) and verify_empty(conn, ['acme']))
    conn.close()


# ── 3. dump and restore ──────────────────────────────────────────────────────────────

SNAPSHOT = {
    'table': """SELECT c.relkind::text, pg_get_partkeydef(c.oid), (SELECT count(*) FROM pg_depend d WHERE d.objid = c.oid
        AND d.classid = 'pg_class'::regclass AND d.deptype = 'e'), (SELECT c.oid = ANY (extconfig) FROM pg_extension WHERE extname = 'meter')
        FROM pg_class c WHERE c.oid = 'meter.events'::regclass""",
    'indexes': """SELECT string_agg(x, '; ' ORDER BY x) FROM (SELECT format('%s %s %s', i.indexrelid::regclass, i.indisvalid,
        pg_get_indexdef(i.indexrelid)) FROM pg_index i WHERE i.indrelid = 'meter.events'::regclass) s(x)""",
    'partitions': """SELECT string_agg(x, '; ' ORDER BY x) FROM (SELECT format('%s %s', c.oid::regclass, pg_get_expr(c.relpartbound, c.oid))
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'meter.events'::regclass) s(x)""",
    'rows': "SELECT md5(string_agg(e::text, ',' ORDER BY tenant_id, environment_id, id)) FROM meter.events e",
    'ids': "SELECT md5(string_agg(x, ',' ORDER BY x)) FROM (SELECT format('%s/%s/%s', tenant_id, environment_id, id) FROM meter.event_ids) s(x)",
    'registry': "SELECT string_agg(x, '; ' ORDER BY x) FROM (SELECT format('%s %s', relid, tracked_by) FROM meter.tracked_tables) s(x)",
    'seals': "SELECT string_agg(x, '; ' ORDER BY x) FROM (SELECT format('%s %s %s', tenant_id, environment_id, sealed_before) FROM meter.seals) s(x)",
    'triggers': """SELECT string_agg(x, '; ' ORDER BY x) FROM (SELECT format('%s %s %s', tgrelid::regclass, tgname, tgenabled)
        FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE 'meter.events%') s(x)""",
    'policies': """SELECT string_agg(x, '; ' ORDER BY x) FROM (SELECT format('%s %s %s', polrelid::regclass, polname,
        pg_get_expr(polqual, polrelid)) FROM pg_policy WHERE polrelid::regclass::text LIKE 'meter.event%') s(x)""",
    'grants': """SELECT string_agg(x, '; ' ORDER BY x) FROM (SELECT format('%s %s', c.oid::regclass, c.relacl)
        FROM pg_class c WHERE c.oid IN ('meter.events'::regclass, 'meter.event_ids'::regclass)) s(x)""",
    'partman': "SELECT string_agg(format('%s %s %s', parent_table, partition_interval, premake), '; ') FROM partman.part_config",
}


def usage_snapshot(conn):
    out = []
    for t in ('acme', 'globex'):
        q(conn, 'SET meter.tenant_id = %s', (t,))
        out += q(conn, """SELECT m.id, c.c, u.window_start::text, u.value::text FROM meter.meters m
            CROSS JOIN (VALUES (NULL::text), ('c0'), ('c1'), ('c2')) c(c)
            CROSS JOIN LATERAL meter.usage(m.id, '2023-12-01', '2024-07-01', customer_id => c.c, window_size => 'MONTH') u
            WHERE m.tenant_id = meter.current_tenant() ORDER BY 1, 2, 3""")
    return out


def dump_restore(src_conn):
    q(src_conn, "SET meter.tenant_id = 'acme'")
    # a sealed month whose partition pg_partman drops; a late event into it
    q(src_conn, "SELECT meter.seal('2024-02-01')")
    q(src_conn, "UPDATE partman.part_config SET retention = '1 month', retention_keep_table = false")
    q(src_conn, "SELECT partman.drop_partition_time('meter.events', p_reference_timestamp := '2024-03-02')")
    q(src_conn, "UPDATE partman.part_config SET retention = NULL")
    check("source: January's partition dropped by pg_partman", q1(src_conn, "SELECT to_regclass('meter.events_p2024_01') IS NULL"))
    q(src_conn, """SELECT * FROM meter.ingest('{"id": "late", "event_name": "api", "customer_id": "c1", "timestamp": "2024-01-20T00:00:00Z"}')""")
    before = {k: q(src_conn, v) for k, v in SNAPSHOT.items()}
    usage_before = usage_snapshot(src_conn)
    dump = tempfile.mktemp(prefix='meter-parts-', suffix='.dump')
    try:
        subprocess.run(['pg_dump', '-Fc', '-d', SRC, '-f', dump], check=True)
        recreate(DST)
        env = dict(os.environ, PGOPTIONS='-c session_replication_role=replica')
        r = subprocess.run(['pg_restore', '--exit-on-error', '-d', DST, dump], env=env, capture_output=True, text=True)
        check('pg_restore with session_replication_role = replica succeeds', r.returncode == 0, r.stderr.strip()[-500:])
    finally:
        if os.path.exists(dump):
            os.unlink(dump)
    dst = connect(DST)
    for k, v in SNAPSHOT.items():
        got = q(dst, v)
        check('restored: %s identical' % k, got == before[k], '%s vs %s' % (str(got)[:300], str(before[k])[:300]))
    check('restored: usage of every meter, by month and customer, identical', usage_snapshot(dst) == usage_before)
    check('restored: verify() empty, ids exact', verify_empty(dst, ['acme', 'globex']) and ids_exact(dst))
    # ingestion goes on
    q(dst, "SET meter.tenant_id = 'acme'")
    before_count = q1(dst, "SELECT value FROM meter.usage('pt_count', '2024-01-01', '2025-01-01')")
    row = q(dst, """SELECT accepted, duplicates FROM meter.ingest('[
        {"id": "c5", "event_name": "api", "customer_id": "c1", "timestamp": "2024-05-05T00:00:00Z"},
        {"id": "r1", "event_name": "api", "customer_id": "c1", "timestamp": "2024-05-05T00:00:00Z", "properties": {"n": 2}},
        {"id": "r2", "event_name": "api", "customer_id": "c2", "timestamp": "2024-06-05T00:00:00Z", "properties": {"n": 3}}]')""")[0]
    check('restored: ingest counts a stored id as a duplicate, stores the new ones', row == (2, 1), row)
    state = sqlstate_of(lambda: q(dst, """INSERT INTO meter.events (id, event_name, customer_id, "timestamp")
        VALUES ('r1', 'api', 'c1', '2024-06-01')"""))
    check('restored: a plain INSERT of a stored id fails with 23505', state == '23505', state)
    check('restored: usage moved by exactly the new events',
          q1(dst, "SELECT value FROM meter.usage('pt_count', '2024-01-01', '2025-01-01')") == before_count + 2)
    q(dst, 'SELECT partman.run_maintenance()')
    check('restored: pg_partman maintenance runs', True)
    state = sqlstate_of(lambda: q(dst, "SET ROLE meter_e2e_parts_writer; SELECT * FROM meter.ingest('{\"id\": \"w9\", "
                                  "\"event_name\": \"api\", \"customer_id\": \"c1\"}'); RESET ROLE"))
    q(dst, 'RESET ROLE')
    check('restored: the writer ingests', state is None, state)
    check('restored, after more ingestion: verify() empty, ids exact', verify_empty(dst, ['acme', 'globex']) and ids_exact(dst))
    dst.close()


def main():
    recreate(SRC)
    conn = connect(SRC)
    q(conn, 'SET client_min_messages = warning')
    q(conn, 'CREATE EXTENSION meter')
    q(conn, 'CREATE SCHEMA partman')
    q(conn, 'CREATE EXTENSION pg_partman SCHEMA partman')
    q(conn, "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'meter_e2e_parts_writer') THEN "
            "CREATE ROLE meter_e2e_parts_writer NOLOGIN; END IF; END $$")
    q(conn, "SELECT meter.grant_writer('meter_e2e_parts_writer')")
    q(conn, "SET TimeZone = 'UTC'")
    q(conn, 'SELECT meter.partition_events(default_partition => false)')
    q(conn, "SELECT partman.create_parent('meter.events', 'timestamp', 'native', 'monthly', p_premake := 1, "
            "p_start_partition := '2024-01-01')")
    for t in ('acme', 'globex'):
        q(conn, 'SET meter.tenant_id = %s', (t,))
        q(conn, "SELECT meter.create_meter('api', 'calls', id => %s)", ('pt_count' if t == 'acme' else 'pt_g_count',))
        q(conn, """SELECT meter.create_meter('api', 'n', '{"type":"SUM","field":"n"}', id => %s)""",
          ('pt_sum' if t == 'acme' else 'pt_g_sum',))
        q(conn, """SELECT meter.create_meter('api', 'peak', '{"type":"MAX","field":"n"}', id => %s)""",
          ('pt_max' if t == 'acme' else 'pt_g_max',))
    q(conn, "SET meter.tenant_id = 'globex'")
    q(conn, """INSERT INTO meter.events (id, event_name, customer_id, "timestamp", properties)
        SELECT 'g' || i, 'api', 'c' || (i % 3), timestamptz '2024-01-01 00:00+00' + i * interval '13 hours',
            jsonb_build_object('n', i) FROM generate_series(1, 300) i""")
    print('== 1. COPY', flush=True)
    copy_tests(conn)
    print('== 2. concurrency', flush=True)
    concurrency(SRC)
    print('== 3. dump and restore', flush=True)
    dump_restore(conn)
    conn.close()
    if os.environ.get('PARTS_KEEP') != '1':
        drop(SRC)
        drop(DST)
        admin = connect('postgres')
        q(admin, 'DROP ROLE IF EXISTS meter_e2e_parts_writer')
        admin.close()
    print('partitioning: %s' % ('pass' if not failures else '%d failure(s)' % len(failures)))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
