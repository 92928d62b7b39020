#!/usr/bin/python3
"""meter's benchmark (SPEC §9, issues 5, 9 and 10): every speed figure the project states
about itself, measured side by side in one run on one machine, as ratios with the absolute
times beside.

Run by scripts/bench.sh (which installs, builds and starts a throwaway cluster) or, with
PGHOST/PGPORT/PGUSER pointing at a running cluster that has the extension installed,
directly. It creates (and drops at the end) the database BENCH_DB (default meter_bench).

Environment:
  BENCH_N          events in the workload (default 200000)
  BENCH_REPS       repetitions per figure; the median counts (default 3)
  BENCH_PLPGSQL_REPS  repetitions of the (slow) PL/pgSQL contender (default 1)
  BENCH_PLPGSQL_COPY=1  also time the PL/pgSQL contender with COPY
  BENCH_SIDE_N     events of the ingest figures between two catalogs (100 vs 20 meters,
                   expression vs field; default BENCH_N / 10)
  BENCH_CONC_SECONDS  how long the concurrent writers write (default 20)
  BENCH_CONC_WRITERS  how many (default 8)
  BENCH_CONC_THRESHOLD  meter.compaction_threshold of the concurrent writers (default 200,
                   so that they fold often while the others write)
  BENCH_MEMORY_N   rows of the memory figure's COPY (default BENCH_N)
  BENCH_SCALING=1  also load BENCH_SCALING_N (default 5 x BENCH_N) events and report how
                   meter.usage's time grows between the two sizes
  BENCH_DB         database to create and drop (default meter_bench)
  BENCH_KEEP=1     keep the database afterwards

Every figure prints one line `name: ratio (target …) ok|MISS|info  [absolute times]`;
the benchmark measures, it does not gate: it exits 0 when a target is missed. It checks
that the contenders of every figure give the same answer and stops with an exception
(exit 1) when they do not: a wrong answer never prints as a speed figure.

Every timed session loads the extension's library first (the statement during which a
session loads it does not compact: the hooks that see statement ends are not yet there).
"""
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time

import psycopg2
import psycopg2.errors

HERE = os.path.dirname(os.path.abspath(__file__))
N = int(os.environ.get('BENCH_N', '200000'))
REPS = max(1, int(os.environ.get('BENCH_REPS', '3')))
FAST_REPS = 15
MEMORY_N = int(os.environ.get('BENCH_MEMORY_N', str(N)))
SCALING = os.environ.get('BENCH_SCALING', '') == '1'
SCALING_N = int(os.environ.get('BENCH_SCALING_N', str(5 * N)))
# The PL/pgSQL contender is slow (minutes at 200k events): one run by default.
PLPGSQL_REPS = max(1, int(os.environ.get('BENCH_PLPGSQL_REPS', '1')))
# Its COPY figure repeats the batch figure's per-row work: only on request.
PLPGSQL_COPY = os.environ.get('BENCH_PLPGSQL_COPY', '') == '1'
SIDE_N = max(1, min(N, int(os.environ.get('BENCH_SIDE_N', str(N // 10)))))
# The partitioned figure loads three databases of its own: at most 200,000 events by
# default (BENCH_PARTITIONED_N; 0 leaves the figure out).
PART_N = int(os.environ.get('BENCH_PARTITIONED_N', str(min(N, 200000))))
CONC_SECONDS = float(os.environ.get('BENCH_CONC_SECONDS', '20'))
CONC_WRITERS = max(1, int(os.environ.get('BENCH_CONC_WRITERS', '8')))
CONC_THRESHOLD = int(os.environ.get('BENCH_CONC_THRESHOLD', '200'))
DB = os.environ.get('BENCH_DB', 'meter_bench')
KEEP = os.environ.get('BENCH_KEEP', '') == '1'

COLS = 'id, tenant_id, environment_id, event_name, external_customer_id, "timestamp", properties'
SELECT_BATCH = ("SELECT id, 'bench', '', event_name, external_customer_id, ts, properties "
                "FROM bench.staging WHERE batch = %s")
PERIOD = ("timestamptz '2024-01-01 00:00:00+00'", "timestamptz '2024-01-31 00:00:00+00'")
# The meters the usage figures read (tenant bench; bench_pend has the same as bp_…).
SUM_METER, UNIQUE_METER, GROUP_METER = 'bm_01', 'bm_13', 'bm_02'

figures = []        # the figure lines, printed again together at the end


class WrongAnswer(Exception):
    """Two contenders of a figure disagree: the benchmark stops, it prints no figure."""


def check(cond, what):
    if not cond:
        raise WrongAnswer(what)


START = time.time()


def log(msg):
    print('== [%4.0f s] %s' % (time.time() - START, msg), file=sys.stderr, flush=True)


def connect(db=DB):
    c = psycopg2.connect(dbname=db)
    c.autocommit = True
    return c


def session(tenant=None):
    """A fresh connection with the extension's library loaded (by a cheap call: the
    statement during which a backend loads it does not compact) and the scope set."""
    c = connect()
    q(c, "SELECT meter.matches('[]', '{}')")
    if tenant:
        q(c, 'SET meter.tenant_id = %s', (tenant,))
    return c


def q(conn, sql, args=None):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else None


def q1(conn, sql, args=None):
    return q(conn, sql, args)[0][0]


def scope(conn, tenant):
    q(conn, 'SET meter.tenant_id = %s', (tenant,))


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return (time.perf_counter() - t0) * 1000.0, result


def fmt_ms(ms):
    if ms >= 10000:
        return '%.1f s' % (ms / 1000.0)
    return '%.0f ms' % ms if ms >= 100 else '%.2f ms' % ms


def figure(name, ratio, target, ok, detail):
    """One figure line. ok is True/False for a target, None for an informational figure."""
    verdict = 'info' if ok is None else ('ok' if ok else 'MISS')
    line = '%s: %s (target %s) %s  [%s]' % (name, ratio, target, verdict, detail)
    figures.append(line)
    print(line, flush=True)


def alternate(conn, cases, reps=REPS, prepare=None):
    """Run each (name, sql) case once per repetition, alternating, and return the median
    milliseconds per name and the last result of each. Cases that all take under 20 ms
    (a millisecond read, where a scheduler hiccup is a large share) run 15 times instead,
    unless BENCH_REPS asks for one run (the smoke run)."""
    times = {name: [] for name, _ in cases}
    results = {}
    rep = 0
    while rep < reps:
        for name, sql in cases:
            if prepare:
                prepare(name)
            ms, results[name] = timed(lambda: q(conn, sql))
            times[name].append(ms)
        rep += 1
        if rep == 1 and reps > 1 and max(t[0] for t in times.values()) < 20:
            reps = max(reps, FAST_REPS)
    return {k: statistics.median(v) for k, v in times.items()}, results


def same_rows(conn, what, a, b):
    """Run two queries (untimed: this also warms both paths) and fail unless they return
    the same rows (compared in order, so both must order alike)."""
    ra, rb = q(conn, a), q(conn, b)
    if ra != rb:
        diff = next((i for i, (x, y) in enumerate(zip(ra, rb)) if x != y), min(len(ra), len(rb)))
        raise WrongAnswer('%s: %d rows vs %d; first difference at row %d: %r vs %r'
                          % (what, len(ra), len(rb), diff, ra[diff] if diff < len(ra) else None,
                             rb[diff] if diff < len(rb) else None))
    return ra


def verify_empty(conn, tenant):
    # Fresh statistics first: autovacuum is off, and verify's SQL recomputation joins
    # nested-loop style (quadratic) when it believes the tenant has no events.
    q(conn, 'ANALYZE meter.events')
    scope(conn, tenant)
    bad = q(conn, 'SELECT * FROM meter.verify() LIMIT 5')
    check(not bad, 'meter.verify() in tenant %s is not empty: %r' % (tenant, bad))


def usage_totals(conn, tenant):
    """Every meter's usage over the whole period, from the stored usage, by meter id."""
    scope(conn, tenant)
    return dict(q(conn, """SELECT m.id, u.value FROM meter.meters m
        CROSS JOIN LATERAL meter.usage(m.id, %s, %s) u
        WHERE m.tenant_id = %%s AND m.status = 'published' ORDER BY 1""" % PERIOD, (tenant,)))


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
    q(conn, "SELECT bench.create_meters('bench_pend', 'bp_')")
    q(conn, "SELECT bench.create_meters('bench_conc', 'bc_')")
    q(conn, 'SELECT bench.create_match_meters()')
    q(conn, "SELECT bench.create_match_meters('bench_match20', 20, 'm20_')")
    q(conn, 'SELECT bench.create_idle_meters()')
    q(conn, 'SELECT bench.create_expression_meters()')
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


# ── ingest ───────────────────────────────────────────────────────────────────────────

TARGETS = {
    'tracked': 'meter.events',
    'plain': 'bench.plain_events',
    'plpgsql': 'bench.pl_events',
}


def reset(conn, who):
    if who == 'tracked':
        # Events and stored usage together (every tenant), without the extension's TRUNCATE
        # trigger (it would first take every event out of usage, only for that to be
        # truncated too).
        q(conn, 'SET session_replication_role = replica')
        q(conn, 'TRUNCATE meter.events, meter.pending, meter.rollups')
        q(conn, 'RESET session_replication_role')
    elif who == 'plain':
        q(conn, 'TRUNCATE bench.plain_events')
    else:
        q(conn, 'TRUNCATE bench.pl_events, bench.pl_rollups, bench.pl_rollup_values')
    q(conn, 'CHECKPOINT')


def load_run(who, load, tenant='bench'):
    """One timed load in a fresh session: load(conn) writes the events; for our trigger the
    run then folds everything still pending with meter.compact() in the events' tenant (the
    sustained cost: nothing left for later). Returns (ingest ms, compaction ms, pending rows
    folded by meter.compact())."""
    s = session(tenant if who == 'tracked' else None)
    try:
        t0 = time.perf_counter()
        load(s)
        t1 = time.perf_counter()
        folded = q1(s, 'SELECT meter.compact()') if who == 'tracked' else 0
        t2 = time.perf_counter()
    finally:
        s.close()
    return (t1 - t0) * 1000.0, (t2 - t1) * 1000.0, folded


def batch_loader(table, select_sql, batches, args=()):
    sql = 'INSERT INTO %s (%s) %s' % (table, COLS, select_sql)

    def load(s):
        with s.cursor() as cur:
            for b in range(1, batches + 1):
                cur.execute(sql, args + (b,))
    return load


def no_pending(conn, what):
    left = q1(conn, 'SELECT count(*) FROM meter.pending')
    check(left == 0, '%s: %d pending rows left after meter.compact()' % (what, left))


class Runs:
    """The runs of one contender: medians of the total, the ingest and the compaction."""

    def __init__(self):
        self.runs = []

    def add(self, run):
        self.runs.append(run)

    def __bool__(self):
        return bool(self.runs)

    @property
    def total(self):
        return statistics.median(i + c for i, c, _ in self.runs)

    @property
    def ingest(self):
        return statistics.median(i for i, _, _ in self.runs)

    @property
    def compact(self):
        return statistics.median(c for _, c, _ in self.runs)

    @property
    def folded(self):
        return statistics.median(f for _, _, f in self.runs)

    def parts(self):
        return 'medians: ingest %s + compact %s, %d pending rows folded' % (
            fmt_ms(self.ingest), fmt_ms(self.compact), self.folded)


def ingest(conn, copy_file):
    """Issue 9, figures 1 and 2: sustained tracked ingest (the load, then meter.compact()
    to zero pending, both timed) vs the same load into a plain table and into a table with
    the PL/pgSQL trigger."""
    batches = q1(conn, 'SELECT max(batch) FROM bench.staging')
    who_all = ['plain', 'tracked', 'plpgsql']
    runs = {}
    expected = None
    for mode in ('batch', 'copy'):
        runs[mode] = {w: Runs() for w in who_all}
        for rep in range(REPS):
            for who in who_all:
                if who == 'plpgsql' and (rep >= PLPGSQL_REPS or (mode == 'copy' and not PLPGSQL_COPY)):
                    continue
                reset(conn, who)
                table = TARGETS[who]
                if mode == 'batch':
                    load = batch_loader(table, SELECT_BATCH, batches)
                else:
                    def load(s, table=table):
                        copy_in(s, table, copy_file)
                run = load_run(who, load)
                runs[mode][who].add(run)
                log('ingest %s %s rep %d: %s + compact %s' % (mode, who, rep + 1, fmt_ms(run[0]), fmt_ms(run[1])))
                check(q1(conn, 'SELECT count(*) FROM %s' % table) == N, '%s: not %d events' % (table, N))
                if who == 'tracked':
                    no_pending(conn, 'ingest %s' % mode)
        # The last repetition left the contenders loaded with the same events: check them.
        verify_empty(conn, 'bench')
        totals = usage_totals(conn, 'bench')
        if expected is None:
            expected = totals
        check(totals == expected, 'usage after the COPY differs from usage after the batches: %r vs %r'
              % (totals, expected))
        if runs[mode]['plpgsql']:
            differ = q(conn, """SELECT m.id, u.value, bench.pl_usage(m.id, %s, %s) FROM meter.meters m
                CROSS JOIN LATERAL meter.usage(m.id, %s, %s) u
                WHERE m.tenant_id = 'bench' AND u.value IS DISTINCT FROM bench.pl_usage(m.id, %s, %s)"""
                       % (PERIOD * 3))
            check(not differ, 'usage differs from the PL/pgSQL contender\'s: %r' % differ[:5])
    counts = q(conn, """SELECT (SELECT count(*) FROM meter.events), (SELECT count(*) FROM meter.pending),
        (SELECT count(*) FROM meter.rollups WHERE shard >= 0), (SELECT count(*) FROM meter.rollups WHERE shard < 0),
        (SELECT count(*) FROM bench.pl_rollups)""")[0]
    log('stored usage exact (meter.verify() empty), usage of all %d meters equal after both loads and to the '
        'PL/pgSQL contender\'s; %d events -> %d pending + %d compacted + %d all-customer rows (PL/pgSQL: %d rollups)'
        % (len(expected), *counts))

    for mode, label in (('batch', 'INSERT batches of 1000'), ('copy', 'one COPY')):
        t, p = runs[mode]['tracked'], runs[mode]['plain'].ingest
        r = t.total / p
        figure('ingest_%s_vs_plain' % mode, '%.2fx' % r, '<= 2.0x', r <= 2.0,
               'tracked %s (%s), plain %s; ingest alone %.2fx; %d events, %s, compaction to zero pending '
               'included; %.0f vs %.0f events/s'
               % (fmt_ms(t.total), t.parts(), fmt_ms(p), t.ingest / p, N, label,
                  N / t.total * 1000, N / p * 1000))
    for mode, label in (('batch', 'INSERT batches of 1000'), ('copy', 'one COPY')):
        t, pl = runs[mode]['tracked'], runs[mode]['plpgsql']
        if not pl:
            continue
        r = pl.ingest / t.total
        figure('ingest_%s_vs_plpgsql' % mode, '%.2fx faster' % r, '>= 5x faster', r >= 5,
               'tracked %s (%s), PL/pgSQL trigger %s; %d events, %s; PL/pgSQL median of %d'
               % (fmt_ms(t.total), t.parts(), fmt_ms(pl.ingest), N, label, min(REPS, PLPGSQL_REPS)))


def side_ingest(conn):
    """Issue 10: the same SIDE_N events (all renamed llm.tokens) ingested into two tenants
    whose catalogs differ, in INSERT batches of 1000, each followed by meter.compact():
    100 meters on the event name vs 20 of the same; an expression meter vs a field meter."""
    batches = (SIDE_N + 999) // 1000
    select = ("SELECT id, %s, '', 'llm.tokens', external_customer_id, ts, properties "
              "FROM bench.staging WHERE g <= " + str(SIDE_N) + " AND batch = %s")

    def measure(a, b):
        runs = {a: Runs(), b: Runs()}
        for rep in range(REPS):
            for tenant in (a, b):
                reset(conn, 'tracked')
                run = load_run('tracked', batch_loader('meter.events', select, batches, (tenant,)), tenant)
                runs[tenant].add(run)
                log('side ingest %s rep %d: %s + compact %s' % (tenant, rep + 1, fmt_ms(run[0]), fmt_ms(run[1])))
                no_pending(conn, 'side ingest %s' % tenant)
        # b is loaded; load a again (untimed) to check both.
        batch_loader('meter.events', select, batches, (a,))(conn)
        scope(conn, a)
        q1(conn, 'SELECT meter.compact()')
        for t in (a, b):
            verify_empty(conn, t)
        return runs

    def per_event(tenant):
        scope(conn, tenant)
        return q1(conn, """SELECT count(*)::float8 / %s FROM bench.staging s
            CROSS JOIN LATERAL meter.matching_meters('llm.tokens', s.properties) m WHERE s.g <= %s"""
                  % (SIDE_N, SIDE_N))

    runs = measure('bench_match20', 'bench_match')
    u20, u100 = usage_totals(conn, 'bench_match20'), usage_totals(conn, 'bench_match')
    for i in range(1, 21):
        check(u20['m20_%03d' % i] == u100['mm_%03d' % i],
              'meter %d of 20 and of 100: usage %s vs %s' % (i, u20['m20_%03d' % i], u100['mm_%03d' % i]))
    def side_figure(name, target, runs, a, b, label_a, label_b, rest):
        r = runs[a].total / runs[b].total
        figure(name, '%.2fx' % r, '<= %.1fx' % target, r <= target,
               '%s %s (%s), %s %s (%s); %d llm.tokens events, INSERT batches of 1000, compaction included%s'
               % (label_a, fmt_ms(runs[a].total), runs[a].parts(), label_b, fmt_ms(runs[b].total),
                  runs[b].parts(), SIDE_N, rest))

    m20, m100 = per_event('bench_match20'), per_event('bench_match')
    side_figure('ingest_100_vs_20_meters', 1.3, runs, 'bench_match', 'bench_match20', '100 meters', '20 meters',
                '; %.1f vs %.1f matching meters per event' % (m100, m20))

    # The same 20 matching meters beside 80 that match nothing: the catalog's size alone.
    runs = measure('bench_match20', 'bench_match_idle')
    ui = usage_totals(conn, 'bench_match_idle')
    for i in range(1, 101):
        want = u20['m20_%03d' % i] if i <= 20 else 0
        check(ui['mi_%03d' % i] == want, 'meter %d of 100 (80 idle): usage %s, want %s' % (i, ui['mi_%03d' % i], want))
    mi = per_event('bench_match_idle')
    check(mi == m20, 'matching meters per event: %s with 80 idle meters, %s without' % (mi, m20))
    side_figure('ingest_100_vs_20_meters_same_matches', 1.3, runs, 'bench_match_idle', 'bench_match20',
                '100 meters of which 80 match no event', 'the 20 others alone',
                '; %.1f matching meters per event in both' % mi)

    runs = measure('bench_field', 'bench_expr')
    scope(conn, 'bench_expr')
    got_e = q1(conn, 'SELECT value FROM meter.usage(%s, %s, %s)' % ("'bx_expr'", *PERIOD))
    scope(conn, 'bench_field')
    got_f = q1(conn, 'SELECT value FROM meter.usage(%s, %s, %s)' % ("'bx_field'", *PERIOD))
    want_e, want_f = q(conn, """SELECT sum((properties->>'tokens')::numeric + (properties->>'duration_ms')::numeric * 2
            + (properties->>'gb')::numeric) FILTER (WHERE tenant_id = 'bench_expr'),
        sum((properties->>'tokens')::numeric) FILTER (WHERE tenant_id = 'bench_field')
        FROM meter.events WHERE tenant_id IN ('bench_expr', 'bench_field')""")[0]
    check(got_e == want_e, 'expression meter: usage %s, SQL says %s' % (got_e, want_e))
    check(got_f == want_f, 'field meter: usage %s, SQL says %s' % (got_f, want_f))
    side_figure('ingest_expression_vs_field', 1.2, runs, 'bench_expr', 'bench_field',
                'SUM of "tokens + duration_ms * 2 + gb"', 'SUM of field tokens', '; one meter')


def rollup_size(conn):
    """Issue 9, figure 5: stored usage (compacted + pending) vs the events table, after the
    final compaction and a VACUUM of meter.pending."""
    q(conn, 'VACUUM meter.pending')
    ev, ro, pe, tot = q(conn, """SELECT pg_total_relation_size('meter.events'),
        pg_total_relation_size('meter.rollups'), pg_total_relation_size('meter.pending'),
        (SELECT coalesce(sum(pg_column_size(data)), 0) FROM meter.rollups WHERE shard < 0)""")[0]
    mb = 1024.0 * 1024.0
    r = (ro + pe) / ev
    figure('rollup_size', '%.2fx' % r, '<= 0.3x', r <= 0.3,
           'compacted %.1f MB (all-customer rows %.1f MB of it) + pending %.1f MB, events %.1f MB '
           '(pg_total_relation_size, indexes and TOAST included); %d events, after meter.compact() and VACUUM meter.pending'
           % (ro / mb, tot / mb, pe / mb, ev / mb, N))


# ── matching ─────────────────────────────────────────────────────────────────────────

def matching(conn):
    q(conn, 'SET max_parallel_workers_per_gather = 0')
    ours = ("SELECT count(*) FROM meter.events WHERE meter.matches("
            "'[{\"key\":\"model\",\"values\":[\"gpt-4o\",\"o1-mini\"]},{\"key\":\"region\",\"values\":[\"us\"]}]'"
            "::meter.filters, properties)")
    hand = ("SELECT count(*) FROM meter.events WHERE properties->>'model' IN ('gpt-4o', 'o1-mini') "
            "AND properties->>'region' = 'us'")
    q(conn, ours)    # warm the cache
    ms, res = alternate(conn, [('ours', ours), ('hand', hand)])
    check(res['ours'] == res['hand'], 'meter.matches counts %r, the hand-written filter %r' % (res['ours'], res['hand']))
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
    scope(conn, 'bench_match')
    ours = ("SELECT count(*) FROM (%s) e "
            "CROSS JOIN LATERAL meter.matching_meters('llm.tokens', e.properties) m" % sample)
    naive = ("SELECT count(*) FROM (%s) e JOIN meter.meters m "
             "ON m.tenant_id = 'bench_match' AND m.environment_id = '' AND m.event_name = 'llm.tokens' "
             "AND m.status = 'published' AND meter.matches(m.filters, e.properties)" % sample)
    # Untimed (and warming both): the same (event, meter) pairs, not just as many.
    pairs = 'count(*), sum(hashtext(e.g || m.id)::numeric)'
    same_rows(conn, 'matching_meters vs the join', ours.replace('count(*)', pairs, 1),
              naive.replace('count(*)', pairs, 1))
    # The floor of any set-returning function here: one that only returns as many rows
    # per event (generate_series over each event's number of matches, stored beforehand;
    # from the event's own g, so that no Memoize node serves repeated arguments).
    q(conn, 'ALTER TABLE bench.match_sample ADD COLUMN k integer')
    q(conn, """UPDATE bench.match_sample s SET k = (SELECT count(*) FROM
        meter.matching_meters('llm.tokens', s.properties))""")
    q(conn, 'VACUUM ANALYZE bench.match_sample')
    floor = ('SELECT count(*) FROM (SELECT g, properties, k FROM bench.match_sample) e '
             'CROSS JOIN LATERAL generate_series(e.g, e.g + e.k - 1) m')
    ms, res = alternate(conn, [('ours', ours), ('naive', naive), ('floor', floor)])
    scope(conn, 'bench')
    check(res['ours'] == res['naive'], 'matching_meters %r, the join %r' % (res['ours'], res['naive']))
    check(res['floor'] == res['ours'], 'generate_series %r rows, matching_meters %r' % (res['floor'], res['ours']))
    r = ms['naive'] / ms['ours']
    figure('matching_meters_vs_join', '%.1fx faster' % r, '>= 10x faster', r >= 10,
           'matching_meters %s, join of meter.meters and meter.matches %s; %d events x 100 meters, '
           '%d matches; a function returning as many rows and doing nothing else (generate_series) '
           '%s, so no set-returning function gets past %.1fx here'
           % (fmt_ms(ms['ours']), fmt_ms(ms['naive']), k, res['ours'][0][0], fmt_ms(ms['floor']),
              ms['naive'] / ms['floor']))


# ── usage ────────────────────────────────────────────────────────────────────────────

def customers(conn, tenant='bench'):
    """The largest customer and the median one (by number of events)."""
    rows = q(conn, """SELECT external_customer_id FROM meter.events WHERE tenant_id = %s GROUP BY 1
        ORDER BY count(*) DESC, 1""", (tenant,))
    return rows[0][0], rows[len(rows) // 2][0]


def usage_args(meter, cust, window='HOUR'):
    return "'%s', %s, %s, external_customer_id => %s, window_size => '%s'" % (
        meter, PERIOD[0], PERIOD[1], cust, window)


def whose(conn):
    largest, median = customers(conn)
    return (('largest', 'largest customer %s' % largest, "'%s'" % largest),
            ('median', 'median customer %s' % median, "'%s'" % median),
            ('all', 'all customers', 'NULL'))


USAGE_TARGETS = {'largest': 50, 'all': 20}


def usage(conn, suffix='', target=True):
    """Issue 9, figure 3: meter.usage (stored usage) vs usage_from_events (raw events), 720
    HOUR windows; warm (the untimed comparison of every row runs both first)."""
    scope(conn, 'bench')
    q(conn, 'SET max_parallel_workers_per_gather = 0')
    n_events = q1(conn, "SELECT count(*) FROM meter.events WHERE tenant_id = 'bench'")
    result = {}
    for who, label, cust in whose(conn):
        for meter, kind in ((SUM_METER, 'sum'), (UNIQUE_METER, 'count_unique')):
            args = usage_args(meter, cust)
            rows = same_rows(conn, 'usage vs usage_from_events, %s %s' % (kind, label),
                             'SELECT * FROM meter.usage(%s)' % args,
                             'SELECT * FROM meter.usage_from_events(%s)' % args)
            check(len(rows) == 720, 'not 720 windows: %d' % len(rows))
            ms, res = alternate(conn, [('usage', 'SELECT count(*), sum(value) FROM meter.usage(%s)' % args),
                                       ('raw', 'SELECT count(*), sum(value) FROM meter.usage_from_events(%s)' % args)])
            check(res['usage'] == res['raw'], 'usage %r, usage_from_events %r' % (res['usage'], res['raw']))
            r = ms['raw'] / ms['usage']
            result[(who, kind)] = ms['usage']
            want = USAGE_TARGETS.get(who)
            ok = (r >= want) if (target and want) else None
            figure('usage_%s_%s%s' % (who, kind, suffix), '%.1fx faster' % r,
                   '>= %dx faster at 1M events' % want if want else 'none', ok,
                   'usage %s, usage_from_events %s; %s meter, %s, 30 days, 720 HOUR windows, %d events'
                   % (fmt_ms(ms['usage']), fmt_ms(ms['raw']), kind.upper(), label, n_events))
    return result


def usage_by_customer(conn):
    """Issue 10: the invoice run — usage_by_customer for every customer, one MONTH window
    (the 30 days), vs its _from_events twin and vs meter.usage called once per customer
    (one SQL statement, LATERAL over the 2,000 customers)."""
    scope(conn, 'bench')
    n_cust = q1(conn, 'SELECT count(*) FROM bench.customers')
    for meter, kind in ((SUM_METER, 'sum'), (UNIQUE_METER, 'count_unique')):
        args = "'%s', %s, %s, window_size => 'MONTH'" % (meter, PERIOD[0], PERIOD[1])
        ours = 'meter.usage_by_customer(%s)' % args
        twin = 'meter.usage_by_customer_from_events(%s)' % args
        loop = ("bench.customers c CROSS JOIN LATERAL meter.usage('%s', %s, %s, "
                "external_customer_id => c.external_customer_id, window_size => 'MONTH') u"
                % (meter, PERIOD[0], PERIOD[1]))
        rows = same_rows(conn, 'usage_by_customer vs its twin (%s)' % kind,
                         'SELECT * FROM %s' % ours, 'SELECT * FROM %s' % twin)
        by_cust = {(c, e): (ws, we, v) for c, e, ws, we, v in rows}
        check(len(by_cust) == len(rows), 'usage_by_customer: not one MONTH window per customer')
        looped = q(conn, 'SELECT c.external_customer_id, u.* FROM %s ORDER BY 1' % loop)
        check(len(looped) == n_cust, 'meter.usage per customer: %d rows for %d customers' % (len(looped), n_cust))
        for e, ws, we, v in looped:
            got = by_cust.pop(('', e), None)
            check(got == (ws, we, v) if got else v == 0,
                  'customer %s: usage %r, usage_by_customer %r' % (e, (ws, we, v), got))
        check(not by_cust, 'usage_by_customer lists customers meter.usage was not asked for: %r' % list(by_cust)[:5])
        ms, res = alternate(conn, [('ours', 'SELECT count(*), sum(value) FROM %s' % ours),
                                   ('twin', 'SELECT count(*), sum(value) FROM %s' % twin),
                                   ('loop', 'SELECT count(*), sum(u.value) FROM %s' % loop)])
        check(res['ours'] == res['twin'] and res['ours'][0][1] == res['loop'][0][1],
              'usage_by_customer %r, twin %r, per customer %r' % (res['ours'], res['twin'], res['loop']))
        r = ms['twin'] / ms['ours']
        figure('usage_by_customer_%s' % kind, '%.1fx faster' % r, '>= 20x faster', r >= 20,
               'usage_by_customer %s, usage_by_customer_from_events %s; %s meter, %d customers, one MONTH window '
               '(30 days), %d events' % (fmt_ms(ms['ours']), fmt_ms(ms['twin']), kind.upper(), len(rows), N))
        r = ms['loop'] / ms['ours']
        figure('usage_by_customer_vs_loop_%s' % kind, '%.1fx faster' % r, '>= 50x faster', r >= 50,
               'usage_by_customer %s, meter.usage once per customer %s (%d calls, one statement, LATERAL); '
               '%s meter, one MONTH window, %d events'
               % (fmt_ms(ms['ours']), fmt_ms(ms['loop']), n_cust, kind.upper(), N))


def usage_by_group(conn):
    """Issue 10: usage_by_group over the 2-key meter (model, region), HOUR windows, vs its
    _from_events twin; the largest customer (target) and all customers (info)."""
    scope(conn, 'bench')
    keys = q1(conn, "SELECT meter.filter_keys(filters) FROM meter.meters WHERE id = %s", (GROUP_METER,))
    check(sorted(keys) == ['model', 'region'], 'meter %s: filter keys %r' % (GROUP_METER, keys))
    for who, label, cust in whose(conn):
        if who == 'median':
            continue
        args = ("'%s', ARRAY['model', 'region'], %s, %s, external_customer_id => %s, window_size => 'HOUR'"
                % (GROUP_METER, PERIOD[0], PERIOD[1], cust))
        ours = 'meter.usage_by_group(%s)' % args
        twin = 'meter.usage_by_group_from_events(%s)' % args
        order = ' ORDER BY window_start, group_values::text'
        rows = same_rows(conn, 'usage_by_group vs its twin (%s)' % label,
                         'SELECT * FROM %s%s' % (ours, order), 'SELECT * FROM %s%s' % (twin, order))
        groups = len({json.dumps(g, sort_keys=True) for g, _, _, _ in rows})
        ms, res = alternate(conn, [('ours', 'SELECT count(*), sum(value) FROM %s' % ours),
                                   ('twin', 'SELECT count(*), sum(value) FROM %s' % twin)])
        check(res['ours'] == res['twin'], 'usage_by_group %r, twin %r' % (res['ours'], res['twin']))
        r = ms['twin'] / ms['ours']
        figure('usage_by_group_%s_sum' % who, '%.1fx faster' % r, '>= 20x faster' if who == 'largest' else 'none',
               (r >= 20) if who == 'largest' else None,
               'usage_by_group %s, usage_by_group_from_events %s; SUM meter filtered on model and region, '
               'group_by {model, region} (%d groups), %s, 720 HOUR windows, %d rows, %d events'
               % (fmt_ms(ms['ours']), fmt_ms(ms['twin']), groups, label, len(rows), N))


def usage_pending(conn):
    """Issue 9, figure 4: meter.usage with the last 10 % of the events still pending vs the
    same events fully compacted. Tenant bench_pend holds the same events and meters (bp_…)
    as bench: 90 % loaded and compacted, the last 10 % in INSERT batches of 1000 with
    meter.compaction_threshold at its maximum (nothing folds); bench is fully compacted."""
    cut = N - N // 10
    s = session('bench_pend')
    q(s, """INSERT INTO meter.events (%s) SELECT id, 'bench_pend', '', event_name, external_customer_id, ts,
        properties FROM bench.staging WHERE g <= %d""" % (COLS, cut))
    q(s, 'SELECT meter.compact()')
    q(s, 'SET meter.compaction_threshold = 2147483647')
    with s.cursor() as cur:
        for b in range(cut // 1000 + 1, q1(conn, 'SELECT max(batch) FROM bench.staging') + 1):
            cur.execute("""INSERT INTO meter.events (%s) SELECT id, 'bench_pend', '', event_name,
                external_customer_id, ts, properties FROM bench.staging WHERE batch = %%s AND g > %d"""
                        % (COLS, cut), (b,))
    s.close()
    q(conn, 'VACUUM ANALYZE meter.events, meter.pending, meter.rollups')
    pend = {m: q(conn, """SELECT count(*), coalesce(sum(entries), 0) FROM meter.pending
        WHERE tenant_id = 'bench_pend' AND meter_id = %s""", (m,))[0] for m in ('bp_01', 'bp_13')}
    check(all(p[0] > 0 for p in pend.values()), 'nothing pending in bench_pend: %r' % pend)
    check(q1(conn, "SELECT count(*) FROM meter.pending WHERE tenant_id = 'bench'") == 0, 'bench has pending rows')
    for who, label, cust in whose(conn):
        if who == 'median':
            continue
        for kind, meter in (('sum', '01'), ('count_unique', '13')):
            pending_sql = 'SELECT * FROM meter.usage(%s)' % usage_args('bp_' + meter, cust)
            compact_sql = 'SELECT * FROM meter.usage(%s)' % usage_args('bm_' + meter, cust)

            def prepare(name):
                scope(conn, 'bench_pend' if name == 'pending' else 'bench')
            prepare('pending')
            want = q(conn, pending_sql.replace('meter.usage(', 'meter.usage_from_events('))
            got_p = q(conn, pending_sql)
            prepare('compacted')
            got_c = q(conn, compact_sql)
            check(got_p == want, 'usage with pending rows differs from usage_from_events (%s, %s)' % (kind, label))
            check(got_c == want, 'usage of the compacted tenant differs from the pending one (%s, %s)' % (kind, label))
            agg = 'SELECT count(*), sum(value) FROM (%s) u'
            ms, res = alternate(conn, [('pending', agg % pending_sql), ('compacted', agg % compact_sql)],
                                prepare=prepare)
            check(res['pending'] == res['compacted'], 'pending %r, compacted %r' % (res['pending'], res['compacted']))
            r = ms['pending'] / ms['compacted']
            p = pend['bp_' + meter]
            figure('usage_pending_%s_%s' % (who, kind), '%.2fx' % r, '<= 2.0x', r <= 2.0,
                   'usage with the last 10%% of the events pending %s (%d pending rows, %d entries), fully compacted %s; '
                   '%s meter, %s, 720 HOUR windows, %d events'
                   % (fmt_ms(ms['pending']), p[0], p[1], fmt_ms(ms['compacted']), kind.upper(), label, N))
    scope(conn, 'bench')


def usage_scaling(conn, small):
    """BENCH_SCALING=1: load SCALING_N events (same distribution over the same 30 days),
    compacted, and compare meter.usage's time with the figures at N."""
    log('scaling: loading %d events' % SCALING_N)
    generate_staging(conn, SCALING_N)
    reset(conn, 'tracked')
    with tempfile.NamedTemporaryFile(prefix='meter-bench-', suffix='.copy') as f:
        write_copy_file(conn, f.name, SELECT_BATCH.replace('WHERE batch = %s', 'ORDER BY g'))
        s = session('bench')
        copy_in(s, 'meter.events', f.name)
        q(s, 'SELECT meter.compact()')
        s.close()
    no_pending(conn, 'scaling load')
    q(conn, 'VACUUM ANALYZE meter.events, meter.pending, meter.rollups')
    big = usage(conn, '_at_%d' % SCALING_N)
    for key, ms in sorted(big.items()):
        r = ms / small[key]
        ok = (r <= 1.5) if key[0] in ('largest', 'all') else None
        figure('usage_scaling_%s_%s' % key, '%.2fx' % r, '<= 1.5x' if ok is not None else 'none', ok,
               'meter.usage %s at %d events vs %s at %d (%s, 720 HOUR windows)'
               % (fmt_ms(ms), SCALING_N, fmt_ms(small[key]), N, key[1].upper()))


# ── aggregate ────────────────────────────────────────────────────────────────────────

def aggregate(conn):
    q(conn, 'SET max_parallel_workers_per_gather = 0')
    ours = ("SELECT meter.aggregate('{\"type\":\"SUM\",\"field\":\"tokens\"}', properties, \"timestamp\") "
            "FROM meter.events")
    builtin = "SELECT sum((properties->>'tokens')::numeric) FROM meter.events"
    q(conn, ours)
    ms, res = alternate(conn, [('ours', ours), ('builtin', builtin)])
    check(res['ours'] == res['builtin'], 'meter.aggregate %r, sum %r' % (res['ours'], res['builtin']))
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
    check(pres['ours'] == res['ours'], 'meter.aggregate parallel %r, serial %r' % (pres['ours'], res['ours']))
    r = serial / pms['ours']
    figure('aggregate_parallel_speedup', '%.2fx' % r, 'none', None,
           'meter.aggregate serial %s, with 2 workers %s (%s); %d events, %d cores'
           % (fmt_ms(serial), fmt_ms(pms['ours']),
              'parallel plan' if 'Gather' in plan else 'NO parallel plan', N, os.cpu_count()))


# ── concurrency ──────────────────────────────────────────────────────────────────────

CONC_TENANT = 'bench_conc'
CONC_START = 1704067200          # 2024-01-01 00:00 UTC: 3 days, 20 customers, shared rows
RECORD = ('jsonb_to_recordset(%s::jsonb) AS s(id text, event_name text, external_customer_id text, '
          'ts bigint, properties jsonb)')
RECORD_ACT = RECORD.replace('properties jsonb)', 'properties jsonb, act text)')
EVENT_NAMES = ['llm.tokens', 'api.request', 'storage.gb', 'seat.active', 'job.run']


class Writer(threading.Thread):
    """One of the concurrent writers: its own ids (so that what it acknowledged is known
    exactly), shared meters, customers, days and slots; every SQL write form."""

    FORMS = ('insert', 'insert_nothing', 'insert_update', 'merge', 'update', 'delete', 'transaction')

    def __init__(self, k, until):
        super().__init__()
        self.k, self.until = k, until
        self.rng = random.Random(1000 + k)
        self.seq = 0
        self.state = {}              # id -> (event_name, customer, epoch seconds, properties)
        self.deadlocks = 0
        self.rows = 0
        self.txns = {f: 0 for f in self.FORMS}
        self.error = None

    def content(self):
        r = self.rng
        return (r.choice(EVENT_NAMES), 'cust_%04d' % min(r.randint(1, 20), r.randint(1, 20)),
                CONC_START + r.randint(0, 3 * 86400 - 1),
                {'model': r.choice(['gpt-4o', 'gpt-4o-mini', 'o1', 'o1-mini', 'claude']),
                 'region': r.choice(['us', 'eu', 'ap']), 'tokens': r.randint(1, 5000),
                 'duration_ms': r.randint(5, 20000), 'user_id': 'user_%d' % r.randint(0, 500),
                 'gb': round(r.random() * 100, 3)})

    def new(self, n):
        out = []
        for _ in range(n):
            self.seq += 1
            out.append(('w%d_%d' % (self.k, self.seq), self.content()))
        return out

    def old(self, n):
        return self.rng.sample(sorted(self.state), min(n, len(self.state)))

    @staticmethod
    def records(rows, extra=None):
        return json.dumps([dict(id=i, event_name=c[0], external_customer_id=c[1], ts=c[2], properties=c[3],
                                **({'act': extra[i]} if extra else {})) for i, c in rows])

    def run_sql(self, cur, sql, args):
        cur.execute(sql, args)
        self.rows += max(cur.rowcount, 0)

    INSERT = ('INSERT INTO meter.events (id, tenant_id, event_name, external_customer_id, "timestamp", properties) '
              "SELECT s.id, '" + CONC_TENANT + "', s.event_name, s.external_customer_id, to_timestamp(s.ts), "
              's.properties FROM ' + RECORD)
    UPSERT_SET = ('event_name = excluded.event_name, external_customer_id = excluded.external_customer_id, '
                  '"timestamp" = excluded."timestamp", properties = excluded.properties')
    MATCH = "e.tenant_id = '" + CONC_TENANT + "' AND e.environment_id = '' AND e.id = s.id"

    def op(self, cur, form):
        """Runs one write form; returns the changes to apply once it commits."""
        r = self.rng
        if form == 'insert':
            rows = self.new(r.randint(20, 200))
            self.run_sql(cur, self.INSERT, (self.records(rows),))
            return rows
        if form in ('insert_nothing', 'insert_update'):
            fresh = self.new(r.randint(10, 100))
            again = [(i, self.content()) for i in self.old(r.randint(1, 30))]
            rows = fresh + again
            r.shuffle(rows)
            conflict = (' ON CONFLICT (tenant_id, environment_id, id) DO NOTHING' if form == 'insert_nothing'
                        else ' ON CONFLICT (tenant_id, environment_id, id) DO UPDATE SET ' + self.UPSERT_SET)
            self.run_sql(cur, self.INSERT + conflict, (self.records(rows),))
            return fresh if form == 'insert_nothing' else rows
        if form == 'merge':
            old = self.old(r.randint(2, 40))
            dele = set(old[:len(old) // 3])
            rows = self.new(r.randint(5, 50)) + [(i, self.content()) for i in old]
            r.shuffle(rows)
            acts = {i: 'delete' if i in dele else 'upsert' for i, _ in rows}
            self.run_sql(cur, """MERGE INTO meter.events e
                USING %s ON %s
                WHEN MATCHED AND s.act = 'delete' THEN DELETE
                WHEN MATCHED THEN UPDATE SET event_name = s.event_name, external_customer_id = s.external_customer_id,
                    "timestamp" = to_timestamp(s.ts), properties = s.properties
                WHEN NOT MATCHED THEN INSERT (id, tenant_id, event_name, external_customer_id, "timestamp", properties)
                    VALUES (s.id, '%s', s.event_name, s.external_customer_id, to_timestamp(s.ts), s.properties)"""
                         % (RECORD_ACT, self.MATCH, CONC_TENANT), (self.records(rows, acts),))
            return [(i, None if i in dele else c) for i, c in rows]
        if form == 'update':
            rows = []
            for i in self.old(r.randint(1, 60)):
                name, cust, ts, props = self.state[i]
                what = r.randrange(4)         # the properties, the timestamp, the customer, the event name
                c = self.content()
                rows.append((i, (c[0] if what == 3 else name, c[1] if what == 2 else cust,
                                 c[2] if what == 1 else ts, c[3] if what == 0 else props)))
            self.run_sql(cur, """UPDATE meter.events e SET event_name = s.event_name,
                external_customer_id = s.external_customer_id, "timestamp" = to_timestamp(s.ts),
                properties = s.properties FROM %s WHERE %s""" % (RECORD, self.MATCH), (self.records(rows),))
            return rows
        if form == 'delete':
            ids = self.old(r.randint(1, 40))
            self.run_sql(cur, "DELETE FROM meter.events WHERE tenant_id = %s AND environment_id = '' AND id = ANY(%s)",
                         (CONC_TENANT, ids))
            return [(i, None) for i in ids]
        # transaction: insert, a rolled-back subtransaction, update, delete — one commit
        rows = self.new(r.randint(10, 80))
        self.run_sql(cur, self.INSERT, (self.records(rows),))
        cur.execute('SAVEPOINT s')
        cur.execute(self.INSERT, (self.records(self.new(r.randint(1, 20))),))
        cur.execute('ROLLBACK TO SAVEPOINT s')
        mine = dict(rows)
        pick = r.sample(sorted(mine), min(len(mine), 5)) + self.old(5)
        upd = [(i, self.content()) for i in dict.fromkeys(pick)]
        self.run_sql(cur, """UPDATE meter.events e SET event_name = s.event_name,
            external_customer_id = s.external_customer_id, "timestamp" = to_timestamp(s.ts),
            properties = s.properties FROM %s WHERE %s""" % (RECORD, self.MATCH), (self.records(upd),))
        gone = self.old(5)
        self.run_sql(cur, "DELETE FROM meter.events WHERE tenant_id = %s AND environment_id = '' AND id = ANY(%s)",
                     (CONC_TENANT, gone))
        return rows + upd + [(i, None) for i in gone]

    def run(self):
        conn = None
        try:
            conn = session(CONC_TENANT)
            q(conn, 'SET meter.compaction_threshold = %s', (CONC_THRESHOLD,))
            conn.autocommit = False
            while time.time() < self.until:
                form = self.rng.choice(self.FORMS) if self.state else 'insert'
                try:
                    with conn.cursor() as cur:
                        changes = self.op(cur, form)
                    conn.commit()
                except psycopg2.errors.DeadlockDetected:
                    conn.rollback()
                    self.deadlocks += 1
                    continue
                for i, c in changes:
                    if c is None:
                        self.state.pop(i, None)
                    else:
                        self.state[i] = c
                self.txns[form] += 1
        except Exception as e:       # reported by the main thread
            self.error = e
        finally:
            if conn is not None:
                conn.close()


def concurrency(conn):
    """Issue 9, figure 6: CONC_WRITERS sessions writing at once with every write form for
    CONC_SECONDS; no deadlock, no lost or extra event, meter.verify() empty."""
    until = time.time() + CONC_SECONDS
    writers = [Writer(k, until) for k in range(CONC_WRITERS)]
    t0 = time.perf_counter()
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    secs = time.perf_counter() - t0
    errors = [w.error for w in writers if w.error]
    if errors:
        raise errors[0]
    want = {}
    for w in writers:
        want.update(w.state)
    got = {i: (n, c, ts, p) for i, n, c, ts, p in q(conn, """SELECT id, event_name, external_customer_id,
        extract(epoch FROM "timestamp")::bigint, properties FROM meter.events WHERE tenant_id = %s""",
                                                      (CONC_TENANT,))}
    lost = sum(1 for i, c in want.items() if got.get(i) != c)
    extra = sum(1 for i in got if i not in want)
    q(conn, 'ANALYZE meter.events')      # see verify_empty
    scope(conn, CONC_TENANT)
    pending_left = q1(conn, "SELECT count(*) FROM meter.pending WHERE tenant_id = %s", (CONC_TENANT,))
    bad = q(conn, 'SELECT * FROM meter.verify() LIMIT 5')
    folded = q1(conn, 'SELECT meter.compact()')
    bad_after = q(conn, 'SELECT * FROM meter.verify() LIMIT 5')
    totals = usage_totals(conn, CONC_TENANT)
    raw = dict(q(conn, """SELECT m.id, u.value FROM meter.meters m
        CROSS JOIN LATERAL meter.usage_from_events(m.id, %s, %s) u WHERE m.tenant_id = %%s""" % PERIOD, (CONC_TENANT,)))
    deadlocks = sum(w.deadlocks for w in writers)
    rows = sum(w.rows for w in writers)
    txns = {f: sum(w.txns[f] for w in writers) for f in Writer.FORMS}
    ok = deadlocks == 0 and lost == 0 and extra == 0 and not bad and not bad_after and totals == raw
    figure('concurrent_writers', '%.0f events/s' % (rows / secs), '0 deadlocks, 0 lost, verify empty', ok,
           '%d writers x %.0f s, every write form (%s), compaction threshold %d: %d rows written in %d transactions; '
           '%d deadlocks, %d lost or changed, %d unexpected of %d events; meter.verify() %s (%d pending rows left, '
           'then meter.compact() folded %d and verify %s); usage of %d meters %s usage_from_events'
           % (CONC_WRITERS, secs, ', '.join('%s %d' % kv for kv in txns.items()), CONC_THRESHOLD, rows,
              sum(txns.values()), deadlocks, lost, extra, len(want), 'empty' if not bad else 'NOT EMPTY',
              pending_left, folded, 'empty' if not bad_after else 'NOT EMPTY', len(totals),
              '=' if totals == raw else '!='))
    check(lost == 0 and extra == 0, 'concurrent writers: %d events lost or changed, %d unexpected' % (lost, extra))
    check(not bad and not bad_after, 'concurrent writers: meter.verify() not empty: %r %r' % (bad, bad_after))
    check(totals == raw, 'concurrent writers: usage differs from usage_from_events')
    scope(conn, 'bench')


# ── memory ───────────────────────────────────────────────────────────────────────────

def peak_memory(table, path):
    """Peak private memory (RssAnon, sampled every 5 ms) of a fresh backend copying the
    file into table, in MB; and its VmHWM (peak resident set, shared buffers included).
    The library is loaded first, so the COPY's statement end compacts as it would."""
    conn = session('bench')
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


# ── partitioned meter.events: what partitioning and the dedup by id cost at ingest ──────

def partitioned_ingest():
    """Informational: the same workload, tracking on, into the plain meter.events and into
    one partitioned by meter.partition_events() (31 daily partitions and the default one),
    as the backend's CPU time (the wall clock beside it),
    each in a database of its own: INSERT batches of 1000 rows, meter.ingest() batches of
    1000 events, and meter.ingest() of every event again (all duplicates). A third database
    holds the partitioned table without its id triggers: partitioning's own cost, apart from
    the dedup's (meter.event_ids)."""
    dbs = {'plain': DB + '_plain', 'partitioned': DB + '_part', 'no_dedup': DB + '_nodedup'}
    admin = connect('postgres')
    conns = {}
    for who, db in dbs.items():
        q(admin, 'DROP DATABASE IF EXISTS %s' % db)
        q(admin, 'CREATE DATABASE %s' % db)
        c = connect(db)
        q(c, 'CREATE EXTENSION meter')
        q(c, 'SET max_parallel_workers_per_gather = 0')
        q(c, open(os.path.join(HERE, 'workload.sql')).read())
        generate_staging(c, PART_N)
        q(c, 'SELECT bench.create_meters()')
        # The events as meter.ingest takes them, built before anything is timed.
        q(c, """CREATE TABLE bench.staging_json AS SELECT batch, jsonb_agg(jsonb_build_object('id', id,
                'event_name', event_name, 'external_customer_id', external_customer_id,
                'timestamp', to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                'properties', properties) ORDER BY g) AS events
            FROM bench.staging GROUP BY batch""")
        if who != 'plain':
            q(c, 'SELECT meter.partition_events(default_partition => true)')
            q(c, """DO $$ DECLARE day timestamptz; BEGIN FOR d IN 0..30 LOOP
                day := timestamptz '2024-01-01 00:00:00+00' + d * interval '1 day';
                EXECUTE format('CREATE TABLE meter.events_%s PARTITION OF meter.events FOR VALUES FROM (%L) TO (%L)',
                    to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD'), day, day + interval '1 day');
                END LOOP; END $$""")
        if who == 'no_dedup':
            q(c, """DO $$ DECLARE t regclass; BEGIN FOR t IN SELECT relid FROM meter.table_tree('meter.events') LOOP
                EXECUTE format('DROP TRIGGER meter_ids_insert ON %1$s; DROP TRIGGER meter_ids_update ON %1$s;'
                    ' DROP TRIGGER meter_ids_delete ON %1$s; DROP TRIGGER meter_ids_truncate ON %1$s', t);
                END LOOP; END $$""")
        q(c, "SET meter.tenant_id = 'bench'")
        conns[who] = c
    admin.close()
    batches = q1(conns['plain'], 'SELECT max(batch) FROM bench.staging')
    insert_sql = 'INSERT INTO meter.events (%s) %s' % (COLS, SELECT_BATCH)
    ingest_sql = 'SELECT * FROM meter.ingest((SELECT events FROM bench.staging_json WHERE batch = %s))'

    def clear(c):
        q(c, """SET session_replication_role = replica;
            DO $$ BEGIN EXECUTE (SELECT 'TRUNCATE ' || string_agg(c.oid::regclass::text, ', ')
                FROM pg_class c WHERE c.relnamespace = 'meter'::regnamespace AND c.relkind IN ('r', 'p')
                AND c.relname NOT IN ('meters', 'tracked_tables', 'seals')); END $$;
            RESET session_replication_role; CHECKPOINT""")

    # CPU time of the backend (from /proc), beside the wall clock: on a busy machine the
    # wall clock measures the neighbours too.
    pids = {who: q1(c, 'SELECT pg_backend_pid()') for who, c in conns.items()}
    tick = 1000.0 / os.sysconf('SC_CLK_TCK')

    def cpu_ms(who):
        try:
            with open('/proc/%d/stat' % pids[who]) as f:
                fields = f.read().rsplit(')', 1)[1].split()
            return (int(fields[11]) + int(fields[12])) * tick
        except OSError:
            return None

    def batched(who, sql):
        c = conns[who]

        def run():
            with c.cursor() as cur:
                for b in range(1, batches + 1):
                    cur.execute(sql, (b,))
                    if cur.description:
                        cur.fetchall()
        before = cpu_ms(who)
        wall = timed(run)[0]
        after = cpu_ms(who)
        return (after - before if before is not None else wall), wall

    modes = ('insert', 'ingest', 'resend')
    times = {(m, w): [] for m in modes for w in dbs}
    for rep in range(REPS):
        for who, c in conns.items():
            clear(c)
            times[('insert', who)].append(batched(who, insert_sql))
            clear(c)
            times[('ingest', who)].append(batched(who, ingest_sql))
            if who != 'no_dedup':   # without meter.event_ids nothing is a duplicate there
                times[('resend', who)].append(batched(who, ingest_sql))
            log('partitioned ingest rep %d %s (backend CPU / wall): %s' % (rep + 1, who, ', '.join(
                '%s %s / %s' % (m, fmt_ms(times[(m, who)][-1][0]), fmt_ms(times[(m, who)][-1][1]))
                for m in modes if times[(m, who)])))
    ms = {k: statistics.median(t[0] for t in v) if v else None for k, v in times.items()}
    wall = {k: statistics.median(t[1] for t in v) if v else None for k, v in times.items()}
    part = conns['partitioned']
    sizes = q(part, """SELECT pg_total_relation_size('meter.event_ids')::float8,
        (SELECT sum(pg_total_relation_size(relid))::float8 FROM meter.table_tree('meter.events'))""")[0]
    # meter.verify() (an SQL oracle) takes minutes at this size: usage = usage_from_events
    # for every meter over the month instead.
    exact = all(q1(c, """SELECT count(*) FROM meter.meters m WHERE m.tenant_id = 'bench'
                AND (SELECT value FROM meter.usage(m.id, %s, %s))
                IS DISTINCT FROM (SELECT value FROM meter.usage_from_events(m.id, %s, %s))""" % (PERIOD * 2)) == 0
                for c in conns.values())
    ids = q1(part, "SELECT (SELECT count(*) FROM meter.event_ids) = (SELECT count(*) FROM meter.events)")
    for c in conns.values():
        c.close()
    if not KEEP:
        admin = connect('postgres')
        for db in dbs.values():
            q(admin, 'DROP DATABASE %s' % db)
        admin.close()
    for mode, label in (('insert', 'INSERT batches of 1000'), ('ingest', 'meter.ingest batches of 1000'),
                        ('resend', 'meter.ingest of every event again, all duplicates')):
        p, x, n = ms[(mode, 'plain')], ms[(mode, 'partitioned')], ms[(mode, 'no_dedup')]
        if not p or not x or (n is not None and not n):
            # Backend CPU time comes in 10 ms ticks: at smoke sizes it can read 0.
            p, x = wall[(mode, 'plain')], wall[(mode, 'partitioned')]
            n = wall[(mode, 'no_dedup')] if n is not None else None
        split = ('without the id triggers %s: partitioning %+.0f%%, dedup %+.0f%%; '
                 % (fmt_ms(n), (n / p - 1) * 100, (x - n) / p * 100)) if n else ''
        figure('partitioned_%s_vs_plain' % mode, '%.2fx' % (x / p), 'none', None,
               'backend CPU: plain %s, partitioned %s (%swall clock %s vs %s; %d events, %s, '
               '31 daily partitions + default)'
               % (fmt_ms(p), fmt_ms(x), split, fmt_ms(wall[(mode, 'plain')]), fmt_ms(wall[(mode, 'partitioned')]),
                  PART_N, label))
    figure('partitioned_event_ids_size', '%.2f of the events' % (sizes[0] / sizes[1]), 'none', None,
           'meter.event_ids %.1f MB, meter.events and its partitions %.1f MB (with indexes); usage exact: %s; '
           'one id per event: %s' % (sizes[0] / 1e6, sizes[1] / 1e6, exact, ids))


def main():
    t0 = time.time()
    log('meter bench: N=%d, %d repetitions, memory N=%d' % (N, REPS, MEMORY_N))
    if PART_N > 0:
        log('partitioned meter.events (%d events)' % PART_N)
        partitioned_ingest()
    conn = setup()
    with tempfile.NamedTemporaryFile(prefix='meter-bench-', suffix='.copy') as f:
        write_copy_file(conn, f.name, SELECT_BATCH.replace('WHERE batch = %s', 'ORDER BY g'))
        log('ingest: 100 vs 20 meters, expression vs field (%d events)' % SIDE_N)
        side_ingest(conn)
        log('ingest: tracked vs plain vs PL/pgSQL')
        ingest(conn, f.name)
        rollup_size(conn)
        q(conn, 'VACUUM ANALYZE meter.events, meter.pending, meter.rollups')
        log('matching')
        matching(conn)
        log('usage')
        q(conn, 'CREATE INDEX bench_events_customer_idx ON meter.events '
                '(tenant_id, environment_id, event_name, external_customer_id, "timestamp")')
        q(conn, 'ANALYZE meter.events')
        small = usage(conn)
        log('usage for many')
        usage_by_customer(conn)
        usage_by_group(conn)
        log('aggregate')
        aggregate(conn)
        log('usage with pending rows')
        usage_pending(conn)
        log('concurrent writers (%d for %.0f s)' % (CONC_WRITERS, CONC_SECONDS))
        concurrency(conn)
        log('memory')
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
