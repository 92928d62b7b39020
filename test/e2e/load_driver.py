# Load driver for the end-to-end stress and crash tests (test/e2e/stress.sh, crash.sh).
# Not a test by itself (not executable): the scripts run it with /usr/bin/python3.
#
#   load_driver.py run   MODEL.json  -- N client threads ingest, re-send, update and
#                                       delete events for SECONDS; optional meter churn.
#   load_driver.py check MODEL.json  -- compare the event tables with what was acknowledged.
#
# Every client keeps a model of what the server acknowledged (a COMMIT that returned):
# for each event id its table, tenant and content, or that it was deleted. An operation
# whose COMMIT did not return (server killed) leaves its ids "uncertain": either the old
# or the new state is then accepted. Nothing else is: an acknowledged insert, update or
# delete must be visible exactly, a rolled-back or failed one must not be.
#
# Errors accepted during the run, each counted and printed:
#   23505 unique_violation  a plain INSERT (no ON CONFLICT) re-sending an id already stored:
#                           the duplicate is refused, the whole statement rolls back (the
#                           client knows it and does not count the batch as acknowledged);
#   40001 serialization_failure  only if the server asks for a retry (not expected at
#                           READ COMMITTED; counted separately).
# Everything else is a failure, in particular 40P01 deadlock_detected.
#
# Connection: libpq environment (PGHOST, PGPORT, PGUSER) plus options below.

import argparse
import json
import random
import sys
import threading
import time

import psycopg2
import psycopg2.errors
import psycopg2.extras

BASE = 1714557600  # 2024-05-01 10:00:00 UTC: every event falls in a few shared minutes
CUSTOMERS = ['c1', 'c2', 'c3']
MODELS = ['a', 'b', 'c']
USERS = ['u1', 'u2', 'u3', 'u4', 'u5']
OPS = ['insert', 'resend', 'shared', 'update', 'delete']


def iso(epoch):
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(epoch)) + 'Z'


class Shared:
    """State shared by the client threads (under one lock)."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.model = {}        # id -> {'table','tenant','env','state': dict|None, 'alt': [..]}
        self.resendable = {}   # tenant -> list of (table, id, original content) acked, never deleted
        self.counts = {'statements': 0, 'committed': 0, 'events_sent': 0, 'events_acked_new': 0,
                       'duplicates': 0, 'updates': 0, 'deletes': 0, 'unique_violation': 0,
                       'serialization_failure': 0, 'uncertain_ops': 0, 'meter_changes': 0}
        self.errors = []       # unexpected errors (strings)
        self.stop = threading.Event()
        self.mix = [float(x) for x in args.mix.split(',')]
        assert len(self.mix) == len(OPS), '--mix needs %d weights' % len(OPS)

    def bump(self, key, n=1):
        with self.lock:
            self.counts[key] += n


def connect(args, tenant, env):
    conn = psycopg2.connect(dbname=args.db, user=args.role or None,
                            application_name='meter_load_driver')
    conn.autocommit = False
    with conn.cursor() as cur:
        cur.execute("SELECT set_config('meter.tenant_id', %s, false), "
                    "set_config('meter.environment_id', %s, false)", (tenant, env))
    conn.commit()
    return conn


def random_content(rng, shared_id_seed=None):
    r = rng if shared_id_seed is None else random.Random(shared_id_seed)
    props = {'model': r.choice(MODELS), 'user': r.choice(USERS)}
    x = r.random()
    if x < 0.05:
        props['tokens'] = 'n/a'          # not a number: SUM/MAX/LATEST skip it
    elif x < 0.10:
        pass                             # no tokens at all
    elif x < 0.30:
        props['tokens'] = str(r.randint(-5, 500)) + '.5'   # numeric string, maybe negative
    else:
        props['tokens'] = r.randint(0, 1000)
    return {'event_name': 'api_call' if r.random() < 0.9 else 'other',
            'customer_id': r.choice(CUSTOMERS),
            'ts': BASE + r.randint(0, 20 * 60 - 1),   # 20 minutes: 2 rollup buckets
            'props': props}


class Client(threading.Thread):
    def __init__(self, shared, n, tenant, env, has_ingest):
        super().__init__(name='client%d' % n, daemon=True)
        self.s = shared
        self.n = n
        self.tenant = tenant
        self.env = env
        self.has_ingest = has_ingest
        self.rng = random.Random(shared.args.seed * 1000 + n)
        self.seq = 0
        self.own = []          # own live ids (acked, not deleted)
        self.dead = False

    # ---- model helpers -------------------------------------------------------------
    def new_id(self):
        self.seq += 1
        return 'e%d_%d_%d' % (self.s.args.seed, self.n, self.seq)

    def pick_table(self):
        return 'public.app_events' if self.rng.random() < self.s.args.user_table_share else 'meter.events'

    # ---- SQL -----------------------------------------------------------------------
    def insert_sql(self, cur, table, rows, mode):
        """rows: list of (id, content). mode: ingest | on_conflict | plain. Returns accepted."""
        rows = sorted(rows, key=lambda r: r[0])   # a fixed order, like a careful client
        if mode == 'ingest':
            payload = [{'event_id': i, 'event_name': c['event_name'], 'customer_id': c['customer_id'],
                        'timestamp': iso(c['ts']), 'properties': c['props'], 'source': 'load'}
                       for i, c in rows]
            cur.execute('SELECT accepted, duplicates FROM meter.ingest(%s::jsonb)', (json.dumps(payload),))
            acc, dup = cur.fetchone()
            return acc
        values = [(i, c['event_name'], c['customer_id'], iso(c['ts']), json.dumps(c['props'])) for i, c in rows]
        sql = ('INSERT INTO ' + table + ' (id, event_name, customer_id, "timestamp", properties, source) '
               'SELECT v.id, v.n, v.c, v.t::timestamptz, v.p::jsonb, \'load\' FROM (VALUES %s) AS v(id, n, c, t, p)')
        if mode == 'on_conflict':
            sql += ' ON CONFLICT DO NOTHING'
        psycopg2.extras.execute_values(cur, sql, values, page_size=1000)
        return cur.rowcount

    def run_op(self, conn):
        s = self.s
        own_live = self.own
        op = self.rng.choices(OPS, weights=s.mix)[0]
        if not own_live:
            op = 'insert'

        cur = conn.cursor()
        pending = []     # (id, old model entry or None, new model entry) applied on commit
        accepted = None
        if op == 'insert':
            table = self.pick_table()
            k = self.rng.randint(1, s.args.batch)
            rows = [(self.new_id(), random_content(self.rng)) for _ in range(k)]
            mode = self.rng.choice(['ingest', 'on_conflict', 'plain']) if (table == 'meter.events' and self.has_ingest) \
                else self.rng.choice(['on_conflict', 'plain'])
            for i, c in rows:
                pending.append((i, None, {'table': table, 'tenant': self.tenant, 'env': self.env, 'state': c,
                                          'owner': self.n, 'orig': c}))
            sent = len(rows)
        elif op in ('resend', 'shared'):
            if op == 'resend':
                with s.lock:
                    pool = s.resendable.get(self.tenant, [])
                    picks = [pool[self.rng.randrange(len(pool))] for _ in range(min(len(pool), self.rng.randint(1, 5)))] if pool else []
                if not picks:
                    return
                table = picks[0][0]
                rows = {i: c for t, i, c in picks if t == table}
                # one new id along with the re-sent ones: a partly duplicate batch
                nid = self.new_id()
                rows[nid] = random_content(self.rng)
                pending.append((nid, None, {'table': table, 'tenant': self.tenant, 'env': self.env,
                                            'state': rows[nid], 'owner': self.n, 'orig': rows[nid]}))
                rows = list(rows.items())
            else:
                # ids every client of the tenant may send at the same moment, same content
                table = 'meter.events'
                ks = sorted(self.rng.sample(range(s.args.shared_ids), self.rng.randint(1, 4)))
                rows = []
                for k in ks:
                    i = 's%d_%s_%d' % (s.args.seed, self.tenant, k)
                    c = random_content(None, shared_id_seed=i)
                    rows.append((i, c))
                    pending.append((i, 'shared', {'table': table, 'tenant': self.tenant, 'env': self.env,
                                                  'state': c, 'owner': None, 'orig': c}))
            mode = self.rng.choice(['ingest', 'on_conflict', 'plain']) if (table == 'meter.events' and self.has_ingest) \
                else self.rng.choice(['on_conflict', 'plain'])
            sent = len(rows)
        elif op == 'update':
            picks = self.rng.sample(own_live, min(len(own_live), self.rng.randint(1, 8)))
            with s.lock:
                entries = [(i, s.model[i]) for i in picks]
            table = entries[0][1]['table']
            entries = [(i, e) for i, e in entries if e['table'] == table]
            vals = []
            for i, e in sorted(entries, key=lambda x: x[0]):
                c = dict(e['state'])
                c['props'] = dict(c['props'])
                what = self.rng.random()
                if what < 0.4:
                    c['ts'] = BASE + self.rng.randint(0, 20 * 60 - 1)
                elif what < 0.6:
                    c['customer_id'] = self.rng.choice(CUSTOMERS)
                else:
                    n2 = random_content(self.rng)
                    c['props'] = n2['props']
                vals.append((i, c['customer_id'], iso(c['ts']), json.dumps(c['props'])))
                ne = dict(e)
                ne['state'] = c
                pending.append((i, e, ne))
            psycopg2.extras.execute_values(
                cur, 'UPDATE ' + table + ' AS e SET customer_id = v.c, "timestamp" = v.t::timestamptz, '
                'properties = v.p::jsonb FROM (VALUES %s) AS v(id, c, t, p) WHERE e.id = v.id', vals)
            mode = 'update'
            sent = 0
        else:  # delete: only ids of the deletable class (never re-sent by anyone)
            cands = [i for i in own_live if i.endswith(('0', '5'))]
            if not cands:
                return
            picks = self.rng.sample(cands, min(len(cands), self.rng.randint(1, 3)))
            with s.lock:
                entries = [(i, s.model[i]) for i in picks]
            table = entries[0][1]['table']
            entries = [(i, e) for i, e in entries if e['table'] == table]
            for i, e in entries:
                ne = dict(e)
                ne['state'] = None
                pending.append((i, e, ne))
            cur.execute('DELETE FROM ' + table + ' WHERE id = ANY(%s)', ([i for i, _ in entries],))
            mode = 'delete'
            sent = 0

        if op in ('insert', 'resend', 'shared'):
            accepted = self.insert_sql(cur, table, rows, mode)
        s.bump('statements')
        # From here on the outcome is unknown until COMMIT returns.
        self.inflight = pending
        conn.commit()
        self.inflight = None
        s.bump('committed')
        with s.lock:
            if op in ('insert', 'resend', 'shared'):
                s.counts['events_sent'] += sent
                s.counts['events_acked_new'] += accepted
                s.counts['duplicates'] += sent - accepted
            elif op == 'update':
                s.counts['updates'] += len(pending)
            else:
                s.counts['deletes'] += len(pending)
            for i, old, new in pending:
                if old == 'shared':
                    cur_e = s.model.get(i)
                    if cur_e is None or cur_e['state'] is None:
                        s.model[i] = new
                    continue
                s.model[i] = new
                if old is None:
                    self.own.append(i)
                    if not i.endswith(('0', '5')):
                        s.resendable.setdefault(self.tenant, []).append((new['table'], i, new['orig']))
                elif new['state'] is None:
                    self.own.remove(i)

    def run(self):
        s = self.s
        self.inflight = None
        try:
            conn = connect(s.args, self.tenant, self.env)
        except Exception as e:
            with s.lock:
                s.errors.append('%s: connect: %s' % (self.name, e))
            return
        while not s.stop.is_set():
            try:
                self.run_op(conn)
            except psycopg2.errors.UniqueViolation:
                s.bump('unique_violation')
                self.inflight = None
                conn.rollback()
            except psycopg2.errors.SerializationFailure:
                s.bump('serialization_failure')
                self.inflight = None
                conn.rollback()
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                # The server went away (crash test): whatever was in flight is uncertain.
                self.mark_uncertain()
                if not s.args.expect_crash:
                    with s.lock:
                        s.errors.append('%s: %s' % (self.name, str(e).strip()))
                self.dead = True
                return
            except psycopg2.Error as e:
                with s.lock:
                    s.errors.append('%s: %s %s' % (self.name, e.pgcode, str(e).strip()))
                self.inflight = None
                try:
                    conn.rollback()
                except psycopg2.Error:
                    self.dead = True
                    return
        conn.close()

    def mark_uncertain(self):
        s = self.s
        if not self.inflight:
            return
        with s.lock:
            s.counts['uncertain_ops'] += 1
            for i, old, new in self.inflight:
                cur_e = s.model.get(i)
                if old == 'shared':
                    if cur_e is None:
                        e = dict(new)
                        e['alt'] = [None]
                        s.model[i] = e
                    continue
                base = cur_e if cur_e is not None else {'table': new['table'], 'tenant': new['tenant'],
                                                        'env': new['env'], 'state': None}
                e = dict(new)
                e['alt'] = [base['state']]
                s.model[i] = e
        self.inflight = None


class MeterChurn(threading.Thread):
    """Changes filters, disables and re-publishes meters while the clients ingest."""

    def __init__(self, shared, tenant, env, until):
        super().__init__(name='churn', daemon=True)
        self.s, self.tenant, self.env, self.until = shared, tenant, env, until
        self.rng = random.Random(shared.args.seed + 7)
        self.p = tenant[0]      # meter ids: <first letter of the tenant>_count, _sum, ...

    def run(self):
        s = self.s
        try:
            conn = psycopg2.connect(dbname=s.args.db, application_name='meter_load_churn')
            with conn.cursor() as cur:
                cur.execute("SELECT set_config('meter.tenant_id', %s, false), "
                            "set_config('meter.environment_id', %s, false)", (self.tenant, self.env))
            conn.commit()
        except Exception as e:
            with s.lock:
                s.errors.append('churn: connect: %s' % e)
            return
        filters = ['[{"key":"model","values":["a"]}]', '[{"key":"model","values":["a","b"]}]', '[]',
                   '[{"key":"model","values":["c"]},{"key":"user","values":["u1","u2"]}]']
        cur = conn.cursor()
        while not s.stop.is_set() and time.time() < self.until:
            try:
                what = self.rng.random()
                if what < 0.5:
                    cur.execute('SELECT (meter.update_meter(%s, %s::meter.filters)).id',
                                (self.p + self.rng.choice(['_unique', '_latest']), self.rng.choice(filters)))
                else:
                    cur.execute('SELECT (meter.disable_meter(%s)).id', (self.p + '_max',))
                    conn.commit()
                    time.sleep(self.rng.random() * 0.2)
                    cur.execute("UPDATE meter.meters SET status = 'published' WHERE id = %s "
                                "AND tenant_id = %s AND environment_id = %s", (self.p + '_max', self.tenant, self.env))
                conn.commit()
                s.bump('meter_changes')
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                if not s.args.expect_crash:
                    with s.lock:
                        s.errors.append('churn: %s' % str(e).strip())
                return
            except psycopg2.Error as e:
                with s.lock:
                    s.errors.append('churn: %s %s' % (e.pgcode, str(e).strip()))
                conn.rollback()
            time.sleep(self.rng.random() * s.args.churn_pause)
        # leave every meter published, so that verify() covers it
        try:
            cur.execute("UPDATE meter.meters SET status = 'published' WHERE id = %s AND status = 'archived' "
                        "AND tenant_id = %s AND environment_id = %s", (self.p + '_max', self.tenant, self.env))
            conn.commit()
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
            if not s.args.expect_crash:
                with s.lock:
                    s.errors.append('churn (final): %s' % str(e).strip())
        except psycopg2.Error as e:
            with s.lock:
                s.errors.append('churn (final): %s %s' % (e.pgcode, str(e).strip()))
        conn.close()


def scopes(args):
    out = []
    for t in args.tenants.split(','):
        tenant, _, env = t.partition(':')
        out.append((tenant, env))
    return out


def cmd_run(args):
    shared = Shared(args)
    conn = psycopg2.connect(dbname=args.db)
    with conn.cursor() as cur:
        cur.execute("SELECT to_regprocedure('meter.ingest(jsonb)') IS NOT NULL")
        has_ingest = cur.fetchone()[0] and not args.no_ingest
    conn.close()
    sc = scopes(args)
    clients = [Client(shared, n, sc[n % len(sc)][0], sc[n % len(sc)][1], has_ingest) for n in range(args.clients)]
    start = time.time()
    churn = None
    if args.churn:
        churn = MeterChurn(shared, sc[0][0], sc[0][1], start + args.seconds * 0.75)
        churn.start()
    for c in clients:
        c.start()
    deadline = start + args.seconds
    while time.time() < deadline and not all(c.dead for c in clients):
        time.sleep(0.05)
    shared.stop.set()
    for c in clients:
        c.join(30)
    if churn:
        churn.join(60)
    elapsed = time.time() - start
    # an in-flight operation of a client still blocked is uncertain too
    for c in clients:
        if c.is_alive() or c.inflight:
            c.mark_uncertain()
    cnt = shared.counts
    print('driver: clients=%d seconds=%.1f batch<=%d mix(%s)=%s user_table_share=%.2f shared_ids=%d ingest=%s churn=%s tenants=%s'
          % (args.clients, elapsed, args.batch, ','.join(OPS), args.mix, args.user_table_share, args.shared_ids,
             'yes' if has_ingest else 'no', 'yes' if args.churn else 'no', args.tenants))
    print('driver: ' + ' '.join('%s=%d' % kv for kv in cnt.items()))
    print('driver: %.0f events sent/s, %.0f new events stored/s, %.0f transactions/s'
          % (cnt['events_sent'] / elapsed, cnt['events_acked_new'] / elapsed, cnt['committed'] / elapsed))
    with open(args.model[0], 'w') as f:
        json.dump({'model': shared.model, 'counts': cnt, 'errors': shared.errors}, f)
    for e in shared.errors[:20]:
        print('driver: unexpected error: ' + e)
    return 1 if shared.errors else 0


def cmd_check(args):
    model = {}
    for path in args.model:
        with open(path) as f:
            model.update(json.load(f)['model'])
    conn = psycopg2.connect(dbname=args.db)
    cur = conn.cursor()
    stored = {}
    for table in ('meter.events', 'public.app_events'):
        cur.execute('SELECT id, tenant_id, environment_id, event_name, customer_id, '
                    'extract(epoch FROM "timestamp")::bigint, properties FROM ' + table)
        for i, t, e, n, c, ts, p in cur.fetchall():
            if i in stored:
                print('check: id %s stored twice (%s and %s)' % (i, stored[i][0], table))
            stored[i] = (table, t, e, {'event_name': n, 'customer_id': c, 'ts': int(ts), 'props': p})
    bad = 0
    exact = uncertain = absent = 0
    for i, m in model.items():
        got = stored.get(i)
        want = [m['state']] + m.get('alt', [])
        if m.get('alt'):
            uncertain += 1
        if got is None:
            ok = None in want
            absent += 1
        else:
            ok = got[0] == m['table'] and got[1] == m['tenant'] and got[2] == m['env'] \
                and any(w is not None and w == got[3] for w in want)
        if not ok:
            bad += 1
            if bad <= 10:
                print('check: id %s: expected %s, stored %s' % (i, json.dumps(want), json.dumps(got)))
    extra = [i for i in stored if i not in model]
    for i in extra[:10]:
        print('check: id %s stored but never acknowledged nor in flight: %s' % (i, json.dumps(stored[i])))
    print('check: %d ids in the model (%d deleted or absent, %d uncertain), %d stored, %d wrong, %d unexpected'
          % (len(model), absent, uncertain, len(stored), bad, len(extra)))
    if args.usage and not uncertain:
        bad += check_usage(cur, model)
    return 1 if bad or extra else 0


def check_usage(cur, model):
    """The money figures, computed here from the acknowledged events alone (not by the
    extension): per tenant and customer, <t>_count (COUNT of api_call) and <t>_sum (SUM of
    tokens, numbers and numeric strings) must equal meter.usage over the whole range."""
    from decimal import Decimal
    want = {}
    for i, m in model.items():
        c = m['state']
        if c is None or c['event_name'] != 'api_call':
            continue
        k = (m['tenant'], m['env'], c['customer_id'])
        cnt, total = want.get(k, (0, Decimal(0)))
        v = c['props'].get('tokens')
        if isinstance(v, int) or (isinstance(v, str) and v != 'n/a'):
            total += Decimal(str(v))
        want[k] = (cnt + 1, total)
    bad = 0
    for (t, e, c), (cnt, total) in sorted(want.items()):
        cur.execute("SELECT set_config('meter.tenant_id', %s, false), set_config('meter.environment_id', %s, false)", (t, e))
        got = []
        for m in (t[0] + '_count', t[0] + '_sum'):
            cur.execute("SELECT value FROM meter.usage(%s, '2024-05-01', '2024-05-02', customer_id => %s)", (m, c))
            got.append(cur.fetchone()[0])
        ok = got[0] == cnt and got[1] == total
        print('usage: tenant %s customer %s: COUNT %s (expected %d), SUM %s (expected %s)%s'
              % (t, c, got[0], cnt, got[1], total, '' if ok else '  WRONG'))
        bad += 0 if ok else 1
    return bad


def main():
    p = argparse.ArgumentParser()
    p.add_argument('command', choices=['run', 'check'])
    p.add_argument('model', nargs='+', help='run: the file to write; check: the files to read')
    p.add_argument('--db', required=True)
    p.add_argument('--role', default='')
    p.add_argument('--clients', type=int, default=8)
    p.add_argument('--seconds', type=float, default=10)
    p.add_argument('--batch', type=int, default=20)
    p.add_argument('--tenants', default='acme:')
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--shared-ids', type=int, default=200)
    p.add_argument('--user-table-share', type=float, default=0.2)
    p.add_argument('--churn', action='store_true')
    p.add_argument('--churn-pause', type=float, default=0.3)
    p.add_argument('--no-ingest', action='store_true')
    p.add_argument('--expect-crash', action='store_true')
    p.add_argument('--usage', action='store_true')
    p.add_argument('--mix', default='50,12,8,18,12', help='weights of ' + ','.join(OPS))
    args = p.parse_args()
    sys.exit(cmd_run(args) if args.command == 'run' else cmd_check(args))


if __name__ == '__main__':
    main()
