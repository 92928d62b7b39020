#!/usr/bin/python3
"""meter.aggregate_state binary I/O (SPEC §8): states survive COPY (FORMAT binary) out
and in unchanged, and every damaged binary state (truncated, bit-flipped, random) is
either a valid state that round-trips through its text or a clean error: never a crash.
States of aggregations with an expression or a group_by are binary version 2, the others
version 1 (0.1.0's layout); both are damaged the same ways.
"""
import io
import os
import random
import struct
import sys

import psycopg2

DB = "meter_state_bin_%d" % os.getpid()
HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
# What receiving a bad state may raise: binary representation, protocol (truncated
# message), invalid parameter, character encoding.
CLEAN = {"22P03", "08P01", "22023", "22021"}


def copy_file(payloads):
    out = bytearray(HEADER)
    for p in payloads:
        out += struct.pack("!hi", 1, len(p)) + p
    out += TRAILER
    return bytes(out)


def main():
    admin = psycopg2.connect(dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute("CREATE DATABASE " + DB)
    try:
        run()
    finally:
        admin.cursor().execute("DROP DATABASE IF EXISTS " + DB)
        admin.close()


def run():
    conn = psycopg2.connect(dbname=DB)
    try:
        check(conn)
    finally:
        conn.close()


def check(conn):
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION meter")
    cur.execute("""
        CREATE TABLE states AS
        SELECT t, meter.aggregate_partial(agg::meter.aggregation, jsonb_strip_nulls(jsonb_build_object('v', v, 'u', u, 'w', w)), ts) AS s
        FROM (VALUES ('COUNT', '{"type":"COUNT"}'), ('SUM', '{"type":"SUM","field":"v"}'),
                     ('AVG', '{"type":"AVG","field":"v"}'), ('CU', '{"type":"COUNT_UNIQUE","field":"u"}'),
                     ('MAX', '{"type":"MAX","field":"v"}'), ('MIN', '{"type":"MIN","field":"v"}'),
                     ('LATEST', '{"type":"LATEST","field":"v"}'),
                     ('SWM', '{"type":"SUM_WITH_MULTIPLIER","field":"v","multiplier":1.25}'),
                     ('BMAX', '{"type":"MAX","field":"v","bucket_size":"HOUR"}'),
                     ('XSUM', '{"type":"SUM","expression":"v * 2 + w"}'),
                     ('XLATEST', '{"type":"LATEST","expression":"max(v, w)"}'),
                     ('GMAX', '{"type":"MAX","field":"v","bucket_size":"HOUR","group_by":"u"}'),
                     ('XGMAX', '{"type":"MAX","expression":"v - w","bucket_size":"DAY","group_by":"w"}')) a(t, agg),
             (SELECT g * 1.5 - 40 AS v, 'user ' || (g % 7) AS u, CASE WHEN g % 5 > 0 THEN g % 5 END AS w,
                     timestamptz '2024-01-01 00:00+00' + g * interval '17 minutes' AS ts
              FROM generate_series(1, 50) g) e
        GROUP BY t
        UNION ALL
        SELECT 'WS', meter.aggregate_partial('{"type":"WEIGHTED_SUM","field":"v"}', jsonb_build_object('v', g),
               timestamptz '2024-01-01 00:00+00' + g * interval '1 hour', '2024-01-01', '2024-02-01')
        FROM generate_series(1, 20) g""")
    cur.execute("CREATE TABLE back (s meter.aggregate_state)")

    # 1. Round trip through COPY binary.
    buf = io.BytesIO()
    cur.copy_expert("COPY (SELECT s FROM states ORDER BY t) TO STDOUT (FORMAT binary)", buf)
    cur.copy_expert("COPY back FROM STDIN (FORMAT binary)", io.BytesIO(buf.getvalue()))
    cur.execute("SELECT (SELECT array_agg(s::text ORDER BY s::text) FROM states)"
                " = (SELECT array_agg(s::text ORDER BY s::text) FROM back)")
    assert cur.fetchone()[0], "states changed through COPY binary"

    # The payloads of the good states, one by one.
    goods = []
    cur.execute("SELECT meter.aggregate_state_send(s) FROM states ORDER BY t")
    for (b,) in cur.fetchall():
        goods.append(bytes(b))
    assert len(goods) == 14
    cur.execute("SELECT t, get_byte(meter.aggregate_state_send(s), 0) FROM states ORDER BY t")
    versions = dict(cur.fetchall())
    assert all(v == (2 if t in ("XSUM", "XLATEST", "GMAX", "XGMAX") else 1) for t, v in versions.items()), \
        "binary versions: %r" % versions
    cur.execute("SELECT t, meter.aggregate_final(s)::text FROM states WHERE t IN ('GMAX', 'XGMAX') ORDER BY t")
    finals = dict(cur.fetchall())
    cur.execute("""
        SELECT sum(m)::text FROM (SELECT max(g * 1.5 - 40) m FROM generate_series(1, 50) g
        GROUP BY date_trunc('hour', timestamptz '2024-01-01 00:00+00' + g * interval '17 minutes', 'UTC'), g % 7) q""")
    assert finals["GMAX"] == cur.fetchone()[0], "GMAX: %r" % finals
    cur.execute("""
        SELECT sum(m)::text FROM (SELECT max(g * 1.5 - 40 - coalesce(NULLIF(g % 5, 0), 0)) m FROM generate_series(1, 50) g
        GROUP BY date_trunc('day', timestamptz '2024-01-01 00:00+00' + g * interval '17 minutes', 'UTC'), NULLIF(g % 5, 0)) q""")
    assert finals["XGMAX"] == cur.fetchone()[0], "XGMAX: %r" % finals
    # A version byte that does not fit the aggregation: 1 with an expression, 2 without.
    for t, other in (("SUM", b"\x02"), ("XSUM", b"\x01")):
        cur.execute("SELECT meter.aggregate_state_send(s) FROM states WHERE t = %s", (t,))
        p = other + bytes(cur.fetchone()[0])[1:]
        cur.execute("DELETE FROM back")
        try:
            cur.copy_expert("COPY back FROM STDIN (FORMAT binary)", io.BytesIO(copy_file([p])))
        except psycopg2.Error as e:
            assert e.pgcode in CLEAN, "unexpected error %s %s" % (e.pgcode, e.pgerror)
        else:
            raise AssertionError("a %s state with version byte %r was accepted" % (t, other))

    rng = random.Random(20240101)
    damaged = [b"", b"\x01", b"\x09" + goods[1][1:], b"\xff" * 64]
    for g in goods:
        damaged += [g[:n] for n in range(0, len(g), max(1, len(g) // 40))]
        damaged.append(g + b"\x00")
        for _ in range(40):
            d = bytearray(g)
            i = rng.randrange(len(d))
            d[i] ^= 1 << rng.randrange(8)
            damaged.append(bytes(d))
    damaged += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))) for _ in range(200)]

    ok = errors = 0
    for p in damaged:
        cur.execute("DELETE FROM back")
        try:
            cur.copy_expert("COPY back FROM STDIN (FORMAT binary)", io.BytesIO(copy_file([p])))
        except psycopg2.Error as e:
            if e.pgcode not in CLEAN:
                raise AssertionError("unexpected error %s %s for %r" % (e.pgcode, e.pgerror, p))
            errors += 1
            continue
        # Accepted: it must be a consistent state.
        cur.execute("SELECT s::text = s::text::meter.aggregate_state::text,"
                    " meter.aggregate_state_send(s) = meter.aggregate_state_send(s::text::meter.aggregate_state)"
                    " FROM back")
        a, b = cur.fetchone()
        assert a and b, "accepted state does not round-trip: %r" % p
        cur.execute("SELECT meter.aggregate_final(s) FROM back")
        cur.fetchone()
        ok += 1
    # 2. The same for damaged text: 22P02 (not JSON), 22023 (not a valid state), 22P05.
    cur.execute("SELECT s::text FROM states ORDER BY t")
    texts = [r[0] for r in cur.fetchall()]
    alphabet = '0123456789-.e+:" ,{}[]aZ\\'
    tok = terr = 0
    for t in texts:
        for _ in range(60):
            d = list(t)
            for _ in range(rng.randrange(1, 3)):
                i = rng.randrange(len(d))
                if rng.random() < 0.3:
                    del d[i]
                else:
                    d[i] = rng.choice(alphabet)
            d = "".join(d)
            try:
                cur.execute("SELECT %s::meter.aggregate_state::text", (d,))
                again = cur.fetchone()[0]
                cur.execute("SELECT %s::meter.aggregate_state::text = %s", (again, again))
                assert cur.fetchone()[0], "accepted text does not round-trip: %r" % d
                tok += 1
            except psycopg2.Error as e:
                if e.pgcode not in ("22P02", "22023", "22P05"):
                    raise AssertionError("unexpected error %s %s for %r" % (e.pgcode, e.pgerror, d))
                terr += 1
    cur.execute("SELECT 1")
    assert cur.fetchone()[0] == 1
    print("text states: %d damaged texts, %d accepted (valid), %d clean errors" % (tok + terr, tok, terr))
    print("binary states: %d damaged payloads, %d accepted (valid), %d clean errors" % (len(damaged), ok, errors))


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL:", e)
        sys.exit(1)
