#!/usr/bin/python3
"""meter's benchmark (SPEC §9, issue 5): every speed figure the project states about itself,
measured side by side in one run on one machine, as ratios with the absolute times beside.

Run by scripts/bench.sh (which installs, builds and starts a throwaway cluster) or, with
PGHOST/PGPORT/PGUSER pointing at a running cluster that has the extension installed,
directly. It creates (and drops at the end) the database BENCH_DB (default meter_bench).

Environment:
  BENCH_N          events in the workload (default 200000)
  BENCH_REPS       repetitions per figure; the median counts (default 3)
  BENCH_PLPGSQL_REPS  repetitions of the (slow) PL/pgSQL contender (default 1)
  BENCH_PLPGSQL_COPY=1  also time the PL/pgSQL contender with COPY
  BENCH_MEMORY_N   rows of the memory figure's COPY (default BENCH_N)
  BENCH_SCALING=1  also load BENCH_SCALING_N (default 5 x BENCH_N) events and report how
                   meter.usage's time grows between the two sizes
  BENCH_DB         database to create and drop (default meter_bench)
  BENCH_KEEP=1     keep the database afterwards

Every figure prints one line `name: ratio (target …) ok|MISS|info  [absolute times]`;
the benchmark measures, it does not gate: it exits 0 when a target is missed.
"""
import os
import statistics
import sys
import tempfile
import threading
import time

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
N = int(os.environ.get('BENCH_N', '200000'))
REPS = max(1, int(os.environ.get('BENCH_REPS', '3')))
MEMORY_N = int(os.environ.get('BENCH_MEMORY_N', str(N)))
SCALING = os.environ.get('BENCH_SCALING', '') == '1'
SCALING_N = int(os.environ.get('BENCH_SCALING_N', str(5 * N)))
# The PL/pgSQL contender is slow (minutes at 200k events): one run by default.
PLPGSQL_REPS = max(1, int(os.environ.get('BENCH_PLPGSQL_REPS', '1')))
# Its COPY figure repeats the batch figure's per-row work: only on request.
PLPGSQL_COPY = os.environ.get('BENCH_PLPGSQL_COPY', '') == '1'
DB = os.environ.get('BENCH_DB', 'meter_bench')
KEEP = os.environ.get('BENCH_KEEP', '') == '1'

COLS = 'id, tenant_id, environment_id, event_name, external_customer_id, "timestamp", properties'
SELECT_BATCH = ("SELECT id, 'bench', '', event_name, external_customer_id, ts, properties "
                "FROM bench.staging WHERE batch = %s")
PERIOD = ("timestamptz '2024-01-01 00:00:00+00'", "timestamptz '2024-01-31 00:00:00+00'")

figures = []        # the figure lines, printed again together at the end


def log(msg):
    print('== ' + msg, file=sys.stderr, flush=True)


def connect(db=DB):
    c = psycopg2.connect(dbname=db)
    c.autocommit = True
    return c


def q(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else None


def q1(conn, sql, args=None):
    return q(conn, sql, args)[0][0]


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return (time.perf_counter() - t0) * 1000.0, result


def fmt_ms(ms):
    return '%.0f ms' % ms if ms >= 100 else '%.2f ms' % ms


def figure(name, ratio, target, ok, detail):
    """One figure line. ok is True/False for a target, None for an informational figure."""
    verdict = 'info' if ok is None else ('ok' if ok else 'MISS')
    line = '%s: %s (target %s) %s  [%s]' % (name, ratio, target, verdict, detail)
    figures.append(line)
    print(line, flush=True)


def alternate(conn, cases, reps=REPS, prepare=None):
    """Run each (name, sql) case once per repetition, alternating, and return the median
    milliseconds per name and the last result of each."""
    times = {name: [] for name, _ in cases}
    results = {}
    for _ in range(reps):
        for name, sql in cases:
            if prepare:
                prepare(name)
            ms, results[name] = timed(lambda: q(conn, sql))
            times[name].append(ms)
    return {k: statistics.median(v) for k, v in times.items()}, results


# ── setup ────────────────────────────────────────────────────────────────────────────

def setup():
    admin = connect('postgres')
    q(admin, 'DROP DATABASE IF EXISTS %s' % DB)
    q(admin, 'CREATE DATABASE %s' % DB)
    admin.close()
    conn = connect()
    q(conn, 'CREATE EXTENSION meter')
    q(conn, 'SET max_parallel_workers_per_gather = 0')
    q(conn, open(os.path.join(HERE, 'workload.sql')).read())
    q(conn, open(os.path.join(HERE, 'plpgsql_alternative.sql')).read())
    log('generating %d events' % N)
    generate_staging(conn, N)
    q(conn, 'SELECT bench.create_meters()')
    q(conn, 'SELECT bench.create_match_meters()')
    return conn


def generate_staging(conn, n):
    q(conn, 'DROP TABLE IF EXISTS bench.staging')
    q(conn, 'CREATE TABLE bench.staging AS SELECT * FROM bench.generate(%s)', (n,))
    q(conn, 'CREATE INDEX ON bench.staging (batch)')
    q(conn, 'VACUUM ANALYZE bench.staging')


def write_copy_file(conn, path, source_sql):
    with open(path, 'w') as f, conn.cursor() as cur:
        cur.copy_expert('COPY (%s) TO STDOUT' % source_sql, f)


def copy_in(conn, table, path):
    with open(path) as f, conn.cursor() as cur:
        cur.copy_expert('COPY %s (%s) FROM STDIN' % (table, COLS), f)


# ── 1, 2: ingest ─────────────────────────────────────────────────────────────────────

TARGETS = {
    'tracked': 'meter.events',
    'plain': 'bench.plain_events',
    'plpgsql': 'bench.pl_events',
}


def reset(conn, who):
    if who == 'tracked':
        # Events and stored usage together, without the extension's TRUNCATE trigger (it
        # would first take every event out of usage, only for that to be truncated too).
        q(conn, 'SET session_replication_role = replica')
        q(conn, 'TRUNCATE meter.events, meter.pending, meter.rollups')
        q(conn, 'RESET session_replication_role')
    elif who == 'plain':
        q(conn, 'TRUNCATE bench.plain_events')
    else:
        q(conn, 'TRUNCATE bench.pl_events, bench.pl_rollups, bench.pl_rollup_values')
    q(conn, 'CHECKPOINT')


def ingest(conn, copy_file):
    batches = q1(conn, 'SELECT max(batch) FROM bench.staging')
    who_all = ['plain', 'tracked', 'plpgsql']
    ms = {}
    for mode in ('batch', 'copy'):
        times = {w: [] for w in who_all}
        for rep in range(REPS):
            for who in who_all:
                if who == 'plpgsql' and (rep >= PLPGSQL_REPS or (mode == 'copy' and not PLPGSQL_COPY)):
                    continue
                reset(conn, who)
                table = TARGETS[who]
                if mode == 'batch':
                    sql = 'INSERT INTO %s (%s) %s' % (table, COLS, SELECT_BATCH)

                    def run():
                        with conn.cursor() as cur:
                            for b in range(1, batches + 1):
                                cur.execute(sql, (b,))
                else:
                    def run():
                        copy_in(conn, table, copy_file)
                t, _ = timed(run)
                times[who].append(t)
                log('ingest %s %s rep %d: %s' % (mode, who, rep + 1, fmt_ms(t)))
        ms[mode] = {w: statistics.median(v) if v else None for w, v in times.items()}

    for mode, label in (('batch', 'INSERT batches of 1000'), ('copy', 'one COPY')):
        m = ms[mode]
        r = m['tracked'] / m['plain']
        figure('ingest_%s_vs_plain' % mode, '%.2fx' % r, '<= 1.5x', r <= 1.5,
               'tracked %s, plain %s; %d events, %s; %.0f vs %.0f events/s'
               % (fmt_ms(m['tracked']), fmt_ms(m['plain']), N, label,
                  N / m['tracked'] * 1000, N / m['plain'] * 1000))
    for mode, label in (('batch', 'INSERT batches of 1000'), ('copy', 'one COPY')):
        m = ms[mode]
        if m['plpgsql'] is None:
            continue
        r = m['plpgsql'] / m['tracked']
        figure('ingest_%s_vs_plpgsql' % mode, '%.2fx faster' % r, '>= 5x faster', r >= 5,
               'tracked %s, PL/pgSQL trigger %s; %d events, %s; PL/pgSQL median of %d'
               % (fmt_ms(m['tracked']), fmt_ms(m['plpgsql']), N, label, min(REPS, PLPGSQL_REPS)))

    # The last repetition left all three loaded with the same events: check the contenders.
    exact = q1(conn, "SET meter.tenant_id = 'bench'; SELECT count(*) FROM meter.verify()") == 0
    # The usage of every meter, from our stored usage and from the PL/pgSQL contender's
    # rollups (when it ran: only after the batch figure), over the whole period.
    differ = q(conn, """SELECT m.id, u.value, bench.pl_usage(m.id, %s, %s) FROM meter.meters m
        CROSS JOIN LATERAL meter.usage(m.id, %s, %s) u
        WHERE m.tenant_id = 'bench' AND u.value IS DISTINCT FROM bench.pl_usage(m.id, %s, %s)"""
               % (PERIOD * 3))
    agree = not differ
    n_meters = q1(conn, "SELECT count(*) FROM meter.meters WHERE tenant_id = 'bench'")
    counts = q(conn, """SELECT (SELECT count(*) FROM meter.events), (SELECT count(*) FROM meter.pending),
        (SELECT count(*) FROM meter.rollups WHERE shard >= 0), (SELECT count(*) FROM meter.rollups WHERE shard < 0),
        (SELECT count(*) FROM bench.pl_rollups)""")[0]
    log('stored usage exact (meter.verify() empty): %s; usage of all %d meters equal to the PL/pgSQL contender\'s: %s; '
        '%d events -> %d pending + %d compacted + %d all-customer rows (PL/pgSQL: %d rollups)'
        % (exact, n_meters, agree, *counts))
    if not exact or not agree:
        print('WARNING: the contenders disagree (verify empty: %s, usage equal to the PL/pgSQL contender\'s: %s%s)'
              % (exact, agree, '' if agree else '; differ: %r' % differ[:5]), flush=True)


# ── 3: matching ──────────────────────────────────────────────────────────────────────

def matching(conn):
    q(conn, 'SET max_parallel_workers_per_gather = 0')
    ours = ("SELECT count(*) FROM meter.events WHERE meter.matches("
            "'[{\"key\":\"model\",\"values\":[\"gpt-4o\",\"o1-mini\"]},{\"key\":\"region\",\"values\":[\"us\"]}]'"
            "::meter.filters, properties)")
    hand = ("SELECT count(*) FROM meter.events WHERE properties->>'model' IN ('gpt-4o', 'o1-mini') "
            "AND properties->>'region' = 'us'")
    q(conn, ours)    # warm the cache
    ms, res = alternate(conn, [('ours', ours), ('hand', hand)])
    assert res['ours'] == res['hand'], (res['ours'], res['hand'])
    r = ms['ours'] / ms['hand']
    figure('match_filter_vs_sql', '%.2fx' % r, '<= 1.1x', r <= 1.1,
           'meter.matches %s, hand-written ->> %s; count(*) of %d events, 2-key filter'
           % (fmt_ms(ms['ours']), fmt_ms(ms['hand']), N))

    # 100 meters on llm.tokens in tenant bench_match; 10,000 events' properties.
    # The sample is materialized once: reading it must not weigh in either contender.
    q(conn, 'DROP TABLE IF EXISTS bench.match_sample')
    q(conn, 'CREATE TABLE bench.match_sample AS SELECT g, properties FROM bench.staging ORDER BY g LIMIT 10000')
    q(conn, 'VACUUM ANALYZE bench.match_sample')
    k = q1(conn, 'SELECT count(*) FROM bench.match_sample')
    sample = 'SELECT g, properties FROM bench.match_sample'
    q(conn, "SET meter.tenant_id = 'bench_match'")
    ours = ("SELECT count(*) FROM (%s) e CROSS JOIN LATERAL meter.matching_meters('llm.tokens', e.properties) m"
            % sample)
    naive = ("SELECT count(*) FROM (%s) e JOIN meter.meters m ON m.tenant_id = 'bench_match' "
             "AND m.environment_id = '' AND m.event_name = 'llm.tokens' AND m.status = 'published' "
             "AND meter.matches(m.filters, e.properties)" % sample)
    q(conn, ours)
    ms, res = alternate(conn, [('ours', ours), ('naive', naive)])
    q(conn, "SET meter.tenant_id = 'bench'")
    assert res['ours'] == res['naive'], (res['ours'], res['naive'])
    r = ms['naive'] / ms['ours']
    figure('matching_meters_vs_join', '%.1fx faster' % r, '>= 10x faster', r >= 10,
           'matching_meters %s, join of meter.meters and meter.matches %s; %d events x 100 meters, %d matches'
           % (fmt_ms(ms['ours']), fmt_ms(ms['naive']), k, res['ours'][0][0]))


# ── 4: usage ─────────────────────────────────────────────────────────────────────────

def usage_cases(meter, who):
    args = "'%s', %s, %s, external_customer_id => %s, window_size => 'HOUR'" % (
        meter, PERIOD[0], PERIOD[1], who)
    return [('usage', 'SELECT count(*), sum(value) FROM meter.usage(%s)' % args),
            ('raw', 'SELECT count(*), sum(value) FROM meter.usage_from_events(%s)' % args)]


def customers(conn):
    """The largest customer and the median one (by number of events)."""
    rows = q(conn, """SELECT external_customer_id FROM meter.events GROUP BY 1
        ORDER BY count(*) DESC, 1""")
    return rows[0][0], rows[len(rows) // 2][0]


def usage(conn, suffix='', target=True):
    q(conn, "SET meter.tenant_id = 'bench'")
    q(conn, 'SET max_parallel_workers_per_gather = 0')
    largest, median = customers(conn)
    n_events = q1(conn, 'SELECT count(*) FROM meter.events')
    result = {}
    for who, label, cust in (('largest', 'largest customer %s' % largest, "'%s'" % largest),
                             ('median', 'median customer %s' % median, "'%s'" % median),
                             ('all', 'all customers', 'NULL')):
        for meter, kind in (('bm_01', 'sum'), ('bm_13', 'count_unique')):
            cases = usage_cases(meter, cust)
            q(conn, cases[0][1])
            ms, res = alternate(conn, cases)
            assert res['usage'] == res['raw'], (meter, who, res)
            r = ms['raw'] / ms['usage']
            result[(who, kind)] = ms['usage']
            ok = (r >= 50) if (target and who == 'largest') else None
            figure('usage_%s_%s%s' % (who, kind, suffix), '%.1fx faster' % r,
                   '>= 50x faster at 1M events' if who == 'largest' else 'none', ok,
                   'usage %s, usage_from_events %s; %s meter, %s, 30 days, HOUR windows, %d events'
                   % (fmt_ms(ms['usage']), fmt_ms(ms['raw']), kind.upper(), label, n_events))
    return result


def rollup_size(conn):
    ev, ro, rt, pe = q(conn, """SELECT pg_total_relation_size('meter.events'),
        pg_total_relation_size('meter.rollups'), 0,
        pg_total_relation_size('meter.pending')""")[0]
    mb = 1024.0 * 1024.0
    figure('rollup_size', '%.2f of the events' % ((ro + rt + pe) / ev), 'none', None,
           'compacted %.1f MB + all-customer %.1f MB + pending %.1f MB, events %.1f MB (with indexes)'
           % (ro / mb, rt / mb, pe / mb, ev / mb))


def usage_scaling(conn, small):
    """BENCH_SCALING=1: load SCALING_N events (same distribution over the same 30 days)
    and compare meter.usage's time with the figures at N."""
    log('scaling: loading %d events' % SCALING_N)
    generate_staging(conn, SCALING_N)
    reset(conn, 'tracked')
    with tempfile.NamedTemporaryFile(prefix='meter-bench-', suffix='.copy') as f:
        write_copy_file(conn, f.name, SELECT_BATCH.replace('WHERE batch = %s', 'ORDER BY g'))
        copy_in(conn, 'meter.events', f.name)
    q(conn, 'VACUUM ANALYZE meter.events, meter.pending, meter.rollups')
    big = usage(conn, '_at_%d' % SCALING_N, target=True)
    for key, ms in sorted(big.items()):
        r = ms / small[key]
        ok = (r <= 1.5) if key[0] == 'largest' else None
        figure('usage_scaling_%s_%s' % key, '%.2fx' % r, '<= 1.5x' if ok is not None else 'none', ok,
               'meter.usage %s at %d events vs %s at %d' % (fmt_ms(ms), SCALING_N, fmt_ms(small[key]), N))


# ── 5: aggregate ─────────────────────────────────────────────────────────────────────

def aggregate(conn):
    q(conn, 'SET max_parallel_workers_per_gather = 0')
    ours = ("SELECT meter.aggregate('{\"type\":\"SUM\",\"field\":\"tokens\"}', properties, \"timestamp\") "
            "FROM meter.events")
    builtin = "SELECT sum((properties->>'tokens')::numeric) FROM meter.events"
    q(conn, ours)
    ms, res = alternate(conn, [('ours', ours), ('builtin', builtin)])
    assert res['ours'] == res['builtin'], res
    r = ms['ours'] / ms['builtin']
    figure('aggregate_sum_vs_builtin', '%.2fx' % r, '<= 1.2x', r <= 1.2,
           'meter.aggregate %s, sum((properties->>\'tokens\')::numeric) %s; %d events, serial plans'
           % (fmt_ms(ms['ours']), fmt_ms(ms['builtin']), N))

    serial = ms['ours']
    q(conn, """SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0;
        SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0""")
    plan = '\n'.join(r[0] for r in q(conn, 'EXPLAIN ' + ours))
    q(conn, ours)
    pms, pres = alternate(conn, [('ours', ours)])
    q(conn, 'RESET max_parallel_workers_per_gather; RESET parallel_setup_cost; '
            'RESET parallel_tuple_cost; RESET min_parallel_table_scan_size')
    assert pres['ours'] == res['ours'], (pres, res)
    r = serial / pms['ours']
    figure('aggregate_parallel_speedup', '%.2fx' % r, 'none', None,
           'meter.aggregate serial %s, with 2 workers %s (%s); %d events, %d cores'
           % (fmt_ms(serial), fmt_ms(pms['ours']),
              'parallel plan' if 'Gather' in plan else 'NO parallel plan', N, os.cpu_count()))


# ── 6: memory ────────────────────────────────────────────────────────────────────────

def peak_memory(table, path):
    """Peak private memory (RssAnon, sampled every 5 ms) of a fresh backend copying the
    file into table, in MB; and its VmHWM (peak resident set, shared buffers included)."""
    conn = connect()
    pid = q1(conn, 'SELECT pg_backend_pid()')
    status = '/proc/%d/status' % pid
    peak = [0]
    done = threading.Event()

    def read():
        try:
            with open(status) as f:
                fields = dict(line.split(':', 1) for line in f)
            return int(fields['RssAnon'].split()[0]), int(fields['VmHWM'].split()[0])
        except (OSError, KeyError, ValueError):
            return None

    def sample():
        while not done.is_set():
            v = read()
            if v:
                peak[0] = max(peak[0], v[0])
            time.sleep(0.005)

    if read() is None:
        conn.close()
        return None, None
    t = threading.Thread(target=sample)
    t.start()
    copy_in(conn, table, path)
    done.set()
    t.join()
    final = read()
    conn.close()
    return peak[0] / 1024.0, final[1] / 1024.0


def memory(conn, copy_file):
    n = MEMORY_N
    tmp = []
    if n == N:
        path = copy_file
    else:
        log('memory: writing %d events' % n)
        path = tempfile.mktemp(prefix='meter-bench-mem-', suffix='.copy')
        tmp.append(path)
        write_copy_file(conn, path, """SELECT id, 'bench', '', event_name, external_customer_id, ts, properties
            FROM bench.generate(%d)""" % n)
    small_n = max(n // 10, 1)
    small = tempfile.mktemp(prefix='meter-bench-mem-', suffix='.copy')
    tmp.append(small)
    with open(path) as src, open(small, 'w') as dst:
        for i, line in enumerate(src):
            if i >= small_n:
                break
            dst.write(line)
    res = {}
    for who, table in (('plain', 'bench.plain_events'), ('tracked', 'meter.events')):
        for size, p in (('small', small), ('full', path)):
            reset(conn, who)
            res[(who, size)] = peak_memory(table, p)
            log('memory %s %s: %s' % (who, size, res[(who, size)]))
    for p in tmp:
        os.unlink(p)
    if res[('tracked', 'full')][0] is None:
        for name in ('memory_copy_growth', 'memory_copy_vs_plain'):
            figure(name, 'n/a', 'none', None, '/proc/<backend pid>/status is not readable here')
        return
    ts, tf = res[('tracked', 'small')][0], res[('tracked', 'full')][0]
    ps, pf = res[('plain', 'small')][0], res[('plain', 'full')][0]
    r = tf / ts
    figure('memory_copy_growth', '%.2fx' % r, '<= 1.5x from N/10 to N', r <= 1.5,
           'peak private memory (RssAnon) of the backend: tracked COPY %.1f MB at %d rows, %.1f MB at %d rows; '
           'VmHWM %.1f MB' % (ts, small_n, tf, n, res[('tracked', 'full')][1]))
    figure('memory_copy_vs_plain', '%+.1f MB' % (tf - pf), 'none', None,
           'tracked COPY %.1f MB, plain COPY %.1f MB (RssAnon peak) at %d rows; plain %.1f MB at %d rows'
           % (tf, pf, n, ps, small_n))


def main():
    t0 = time.time()
    log('meter bench: N=%d, %d repetitions, memory N=%d' % (N, REPS, MEMORY_N))
    conn = setup()
    with tempfile.NamedTemporaryFile(prefix='meter-bench-', suffix='.copy') as f:
        write_copy_file(conn, f.name, SELECT_BATCH.replace('WHERE batch = %s', 'ORDER BY g'))
        log('1, 2: ingest')
        ingest(conn, f.name)
        q(conn, 'VACUUM ANALYZE meter.events, meter.pending, meter.rollups')
        log('3: matching')
        matching(conn)
        log('4: usage')
        q(conn, 'CREATE INDEX bench_events_customer_idx ON meter.events '
                '(tenant_id, environment_id, event_name, external_customer_id, "timestamp")')
        q(conn, 'ANALYZE meter.events')
        small = usage(conn)
        rollup_size(conn)
        log('5: aggregate')
        aggregate(conn)
        log('6: memory')
        q(conn, 'DROP INDEX meter.bench_events_customer_idx')
        memory(conn, f.name)
        if SCALING:
            q(conn, 'CREATE INDEX bench_events_customer_idx ON meter.events '
                    '(tenant_id, environment_id, event_name, external_customer_id, "timestamp")')
            usage_scaling(conn, small)
    conn.close()
    if not KEEP:
        admin = connect('postgres')
        q(admin, 'DROP DATABASE %s' % DB)
        admin.close()
    print('\n-- meter bench: N=%d events, median of %d, %.0f s --' % (N, REPS, time.time() - t0))
    for line in figures:
        print(line)
    return 0


if __name__ == '__main__':
    sys.exit(main())
