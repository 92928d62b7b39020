#!/usr/bin/python3
"""Fuzzing the expression language of meter.aggregation (SPEC §2, §9: bad input gets a
clear error, never a crash; evaluation never aborts, a skip is NULL).

Generated expressions (random trees over numbers, properties, + - * /, unary - and !,
comparisons, && ||, ?:, every function, with the wrong types and arities too) and
mutations of them (characters inserted, deleted, duplicated, swapped; truncation; deep
nesting; unary chains; 10,000-character expressions; long identifiers; huge literals;
reserved words; unicode and control characters), inside aggregation JSON of every type
(with field, multiplier, bucket_size and group_by now and then, and the JSON itself
mutated now and then), are sent in batches to a plpgsql loop that, for each one:
  - casts the text to meter.aggregation (and, for JSON, jsonb to meter.aggregation);
    allowed errors are classes 22 (22023 invalid expression and the other rules, 22P02
    not JSON, …) and 54 (54000 too long or too deeply nested, 54001 stack depth);
  - for an accepted value: text round trip, accessors, binary send, and meter.quantity on
    three random property objects (numbers, number strings, huge numbers, null, strings,
    booleans, arrays, objects, missing keys): quantity must never raise any error.
A differential part checks values: expressions over + - * min max abs ceil floor round,
comparisons, && || ! and ?: on random properties, against an independent evaluator in
Python's decimal (missing property 0, anything but a usable number skips, round half away
from zero), compared by value.
At the end the server must not have restarted (pg_postmaster_start_time unchanged).

Knobs: FUZZ_N (default 100000 expressions), FUZZ_SEED (default random; printed).
Connection: PGHOST, PGPORT, PGUSER (set by scripts/test.sh).
"""
import decimal
import json
import os
import random
import re
import sys
import time

import psycopg2

N = int(os.environ.get("FUZZ_N", "5000" if os.environ.get("METER_VALGRIND") == "1" else "100000"))
SEED = int(os.environ.get("FUZZ_SEED", str(random.randrange(1 << 30))))
DB = "meter_fuzz_expression_%d" % os.getpid()
CLEAN = ("22", "54")
BATCH = 2000
ORACLE_N = max(N // 10, 100)

rng = random.Random(SEED)
decimal.getcontext().prec = 20000
decimal.getcontext().Emax = 10 ** 6
decimal.getcontext().Emin = -10 ** 6

TYPES = ["SUM", "AVG", "MAX", "MIN", "LATEST", "COUNT", "COUNT_UNIQUE", "SUM_WITH_MULTIPLIER",
         "WEIGHTED_SUM"]
WINDOWS = ["MINUTE", "HOUR", "DAY", "MONTH"]
IDENTS = ["a", "b", "c", "tokens", "input_tokens", "output_tokens", "x_1", "_y", "min", "max",
          "log", "True", "Null", "iff", "ab", "A"]
LITERALS = ["0", "1", "2", "3", "10", "0.5", "1.5", "2.50", "1e3", "2.5e-1", ".5", "007", "1E+2",
            "123456789012345678901234567890", "0.000000000000000000001", "1e1000", "1e-1000",
            "9" * 300]
FUNCS1 = ["abs", "ceil", "floor", "round", "sqrt", "log"]
FUNCS2 = ["min", "max", "pow"]
RESERVED = ["in", "as", "break", "const", "continue", "else", "for", "function", "if", "import",
            "let", "loop", "package", "namespace", "return", "var", "void", "while", "null",
            "true", "false"]
CHARS = list("abcxyz_019.eE+-*/%()<>=!&|?:, \t\n\"'[]{}#@$^~\\") + ["é", "中", "\U0001F600", "\u00a0",
                                                                     "\u0001", "\u007f", "\u2028"]
PROP_VALUES = ["0", "1", "-1", "2.5", "-3.75", "100", "1e10", "1e999", "-1e999", "1e-999",
               "0.1", "0.2", "123456789012345678901234567890.123456789",
               '"2"', '"-2.50"', '"1e2"', '"0"', '" 1"', '"01"', '"abc"', '""', '"NaN"',
               '"Infinity"', '"1e400"', "null", "true", "false", "[1]", '{"v":1}', '"中"']


def size(small, big):
    """Mostly small; a giant size for a few inputs only, so that 100,000 stay fast."""
    return big if rng.random() < 0.003 else small


# ── Generated expressions ────────────────────────────────────────────────────────────

def gen_number(depth):
    r = rng.random()
    if depth <= 0 or r < 0.25:
        return rng.choice(IDENTS) if rng.random() < 0.6 else rng.choice(LITERALS)
    if r < 0.5:
        return "%s %s %s" % (gen_number(depth - 1), rng.choice("+-*/"), gen_number(depth - 1))
    if r < 0.57:
        return "-" + gen_number(depth - 1)
    if r < 0.65:
        return "(%s)" % gen_number(depth - 1)
    if r < 0.75:
        return "%s(%s)" % (rng.choice(FUNCS1), gen_number(depth - 1))
    if r < 0.85:
        return "%s(%s, %s)" % (rng.choice(FUNCS2), gen_number(depth - 1), gen_number(depth - 1))
    return "(%s ? %s : %s)" % (gen_condition(depth - 1), gen_number(depth - 1), gen_number(depth - 1))


def gen_condition(depth):
    r = rng.random()
    if depth <= 0 or r < 0.1:
        return rng.choice(["true", "false", "a > 0", "b != 0"])
    if r < 0.55:
        return "%s %s %s" % (gen_number(depth - 1), rng.choice(["<", "<=", ">", ">=", "==", "!="]),
                             gen_number(depth - 1))
    if r < 0.75:
        return "%s %s %s" % (gen_condition(depth - 1), rng.choice(["&&", "||"]), gen_condition(depth - 1))
    if r < 0.85:
        return "!(%s)" % gen_condition(depth - 1)
    return "(%s)" % gen_condition(depth - 1)


def gen_wrong(depth):
    """Type errors, arity errors, unknown functions, reserved words, strings."""
    r = rng.random()
    n = gen_number(depth)
    c = gen_condition(depth)
    if r < 0.2:
        return "%s %s %s" % (c, rng.choice("+-*/"), n)
    if r < 0.35:
        return "%s && %s" % (n, c)
    if r < 0.45:
        return c
    if r < 0.55:
        return "%s(%s)" % (rng.choice(FUNCS2 + FUNCS1), ", ".join(gen_number(1) for _ in range(rng.randrange(0, 4))))
    if r < 0.65:
        return "%s(%s)" % (rng.choice(["foo", "double", "int", "size", "has", "Min", "math.max"]), n)
    if r < 0.75:
        return "%s + %s" % (rng.choice(RESERVED), n)
    if r < 0.85:
        return "%s ? %s : %s" % (n, n, n)
    return rng.choice(["1 + 2", "2", "-1.5", "'a' + b", '"a"', "a.b", "a[0]", "a % 2", "a = b", "a & b"])


def mutate(s):
    for _ in range(rng.randrange(1, 4)):
        r = rng.random()
        n = len(s)
        if r < 0.15 and n:
            s = s[:rng.randrange(n)]                                     # truncate
        elif r < 0.35:
            i = rng.randrange(n + 1)
            s = s[:i] + rng.choice(CHARS) + s[i:]                        # insert a character
        elif r < 0.5 and n:
            i = rng.randrange(n)
            s = s[:i] + s[i + rng.randrange(1, 4):]                      # delete a few
        elif r < 0.6 and n:
            i = rng.randrange(n)
            j = min(n, i + rng.randrange(1, 20))
            s = s[:j] + s[i:j] + s[j:]                                   # duplicate a slice
        elif r < 0.7 and n > 1:
            i, j = sorted(rng.sample(range(n), 2))
            s = s[:i] + s[j] + s[i + 1:j] + s[i] + s[j + 1:]              # swap two characters
        elif r < 0.78:
            d = size(rng.choice([5, 50, 99, 100, 101]), rng.choice([1000, 5000]))
            s = rng.choice(["(" * d + s + ")" * d, "-" * d + s, "!" * d + s, "(" * d + s])
        elif r < 0.84:
            s = s.replace(rng.choice(IDENTS), rng.choice(RESERVED + ["x" * size(100, 10001)]), 1)
        elif r < 0.9:
            s = s.replace(rng.choice(["1", "2", "0.5"]), rng.choice(
                ["1e1001", "1e-1001", "0x1F", "1u", "1.", "1e", "1.2.3", "9" * size(50, 20000), "1e1000"]), 1)
        elif r < 0.95:
            s = " + ".join([s] * size(rng.randrange(2, 5), rng.randrange(200, 1200)))   # long
        else:
            s = "".join(rng.choice(CHARS) for _ in range(rng.randrange(0, 30)))
    return s


def expression():
    r = rng.random()
    if r < 0.3:
        return gen_number(rng.randrange(0, 6))
    if r < 0.45:
        return gen_wrong(rng.randrange(0, 4))
    return mutate(gen_number(rng.randrange(0, 5)))


def aggregation_text(expr):
    """An aggregation around the expression: usually SUM-like, sometimes anything."""
    keys = {"type": rng.choice(TYPES[:5]) if rng.random() < 0.8 else rng.choice(TYPES)}
    if rng.random() < 0.97:
        keys["expression"] = expr
    if rng.random() < 0.05:
        keys["field"] = rng.choice(["", "a", "tokens"])
    if keys["type"] == "SUM_WITH_MULTIPLIER" or rng.random() < 0.03:
        keys["multiplier"] = rng.choice([2, "1.5", 0])
    if rng.random() < 0.1:
        keys["bucket_size"] = rng.choice(WINDOWS)
    if rng.random() < 0.08:
        keys["group_by"] = rng.choice(["volume", "", "a", "中"])
    items = list(keys.items())
    rng.shuffle(items)
    s = "{" + ",".join(json.dumps(k) + ":" + json.dumps(v) for k, v in items) + "}"
    if rng.random() < 0.03:                                              # broken JSON
        i = rng.randrange(len(s) + 1)
        s = s[:i] + rng.choice(['"', "}", ",", "\\u0000", "\\ud800", "\\"]) + s[i:]
    return s.replace("\x00", "\\u0000")


def properties():
    items = []
    for _ in range(rng.randrange(0, 7)):
        items.append(json.dumps(rng.choice(IDENTS)) + ":" + rng.choice(PROP_VALUES))
    if rng.random() < 0.1:
        return rng.choice(["[1,2]", '"scalar"', "null", "7"])
    return "{" + ",".join(items) + "}"


# ── The differential part: an independent evaluator in Python's decimal ─────────────

D = decimal.Decimal
SKIP = object()
ORACLE_IDENTS = ["a", "b", "c", "tokens", "x_1"]
ORACLE_LITERALS = ["0", "1", "2", "3", "0.5", "1.5", "2.50", "1e3", "2.5e-1", ".5", "10"]
ORACLE_VALUES = ["0", "1", "-1", "2.5", "-3.75", "100", "0.1", "0.2", "7", "-0.5", "1e2",
                 '"2"', '"-2.50"', '"1e2"', '"abc"', '" 1"', '"01"', '""', "null", "true", "[1]"]


def o_number(depth):
    r = rng.random()
    if depth <= 0 or r < 0.3:
        return ("id", rng.choice(ORACLE_IDENTS)) if rng.random() < 0.6 else ("lit", rng.choice(ORACLE_LITERALS))
    if r < 0.55:
        return (rng.choice("+-*"), o_number(depth - 1), o_number(depth - 1))
    if r < 0.62:
        return ("neg", o_number(depth - 1))
    if r < 0.75:
        return (rng.choice(["abs", "ceil", "floor", "round"]), o_number(depth - 1))
    if r < 0.85:
        return (rng.choice(["min", "max"]), o_number(depth - 1), o_number(depth - 1))
    return ("?", o_condition(depth - 1), o_number(depth - 1), o_number(depth - 1))


def o_condition(depth):
    r = rng.random()
    if depth <= 0 or r < 0.1:
        return ("bool", rng.random() < 0.5)
    if r < 0.6:
        return (rng.choice(["<", "<=", ">", ">=", "==", "!="]), o_number(depth - 1), o_number(depth - 1))
    if r < 0.85:
        return (rng.choice(["&&", "||"]), o_condition(depth - 1), o_condition(depth - 1))
    return ("!", o_condition(depth - 1))


def render(t):
    k = t[0]
    if k == "id" or k == "lit":
        return t[1]
    if k == "bool":
        return "true" if t[1] else "false"
    if k == "neg":
        return "-(%s)" % render(t[1])
    if k == "!":
        return "!(%s)" % render(t[1])
    if k in ("abs", "ceil", "floor", "round"):
        return "%s(%s)" % (k, render(t[1]))
    if k in ("min", "max"):
        return "%s(%s, %s)" % (k, render(t[1]), render(t[2]))
    if k == "?":
        return "(%s ? %s : %s)" % (render(t[1]), render(t[2]), render(t[3]))
    return "(%s %s %s)" % (render(t[1]), k, render(t[2]))


def usable(raw):
    """SPEC §8: a JSON number, or a string in JSON number syntax (no spaces)."""
    v = json.loads(raw)
    if isinstance(v, bool) or v is None:
        return SKIP
    if isinstance(v, (int, float)):
        return D(raw)
    if isinstance(v, str) and re.fullmatch(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", v):
        return D(v)
    return SKIP


def evaluate(t, props):
    k = t[0]
    if k == "id":
        return usable(props[t[1]]) if t[1] in props else D(0)
    if k == "lit":
        return D(t[1])
    if k == "bool":
        return t[1]
    if k == "?":
        c = evaluate(t[1], props)
        if c is SKIP:
            return SKIP
        return evaluate(t[2] if c else t[3], props)
    if k in ("&&", "||"):
        left = evaluate(t[1], props)
        if left is SKIP:
            return SKIP
        if (k == "&&" and not left) or (k == "||" and left):
            return left
        return evaluate(t[2], props)
    args = [evaluate(x, props) for x in t[1:]]
    if any(a is SKIP for a in args):
        return SKIP
    if k == "neg":
        return -args[0]
    if k == "!":
        return not args[0]
    if k == "abs":
        return abs(args[0])
    if k == "ceil":
        return args[0].to_integral_value(rounding=decimal.ROUND_CEILING)
    if k == "floor":
        return args[0].to_integral_value(rounding=decimal.ROUND_FLOOR)
    if k == "round":
        return args[0].to_integral_value(rounding=decimal.ROUND_HALF_UP)   # half away from zero
    if k == "min":
        return min(args[0], args[1])
    if k == "max":
        return max(args[0], args[1])
    a, b = args
    return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "<": lambda: a < b,
            "<=": lambda: a <= b, ">": lambda: a > b, ">=": lambda: a >= b, "==": lambda: a == b,
            "!=": lambda: a != b}[k]()


def reads_property(t):
    return t[0] == "id" or any(isinstance(x, tuple) and reads_property(x) for x in t[1:])


def oracle_case():
    t = o_number(rng.randrange(1, 6))
    if not reads_property(t):
        t = ("+", t, ("id", "a"))
    props = {}
    for ident in ORACLE_IDENTS:
        if rng.random() < 0.7:
            props[ident] = rng.choice(ORACLE_VALUES)
    return t, props


# ── The server side ──────────────────────────────────────────────────────────────────

SETUP = r"""
CREATE EXTENSION meter;
CREATE FUNCTION fuzz_expressions(inputs text[], props jsonb[])
RETURNS TABLE (what text, sqlstate text, n bigint, example text, message text)
LANGUAGE plpgsql AS $f$
DECLARE
	x text; st text; msg text; a meter.aggregation; p jsonb; q numeric; k int; evaluated int := 0;
	whats text[] := '{}'; states text[] := '{}'; examples text[] := '{}'; msgs text[] := '{}';
BEGIN
	FOREACH x IN ARRAY inputs LOOP
		a := NULL;
		BEGIN
			a := x::meter.aggregation;
			IF a::text::meter.aggregation IS DISTINCT FROM a OR a::text::meter.aggregation::text IS DISTINCT FROM a::text
				OR a::jsonb::meter.aggregation IS DISTINCT FROM a THEN
				RAISE EXCEPTION 'no round trip' USING ERRCODE = 'XX001';
			END IF;
			PERFORM meter.type_of(a), meter.field_of(a), meter.expression_of(a), meter.group_by_of(a),
				meter.multiplier_of(a), meter.bucket_size_of(a), meter.aggregation_send(a), meter.aggregation_hash(a);
			st := 'ok'; msg := NULL;
		EXCEPTION WHEN OTHERS THEN
			a := NULL; st := SQLSTATE; msg := SQLERRM;
		END;
		whats := whats || 'aggregation text'::text; states := states || st; examples := examples || x; msgs := msgs || msg;
		BEGIN
			PERFORM x::jsonb::meter.aggregation;
			st := 'ok'; msg := NULL;
		EXCEPTION WHEN invalid_text_representation THEN
			CONTINUE;
		WHEN OTHERS THEN
			st := SQLSTATE; msg := SQLERRM;
		END;
		whats := whats || 'aggregation jsonb'::text; states := states || st; examples := examples || x; msgs := msgs || msg;
		IF a IS NOT NULL THEN
			BEGIN
				FOR k IN 0 .. 2 LOOP
					p := props[1 + ((hashtext(x) & 1048575) + k * 331) % array_length(props, 1)];
					q := meter.quantity(a, p);
					evaluated := evaluated + 1;
				END LOOP;
				st := 'ok'; msg := NULL;
			EXCEPTION WHEN OTHERS THEN
				st := SQLSTATE; msg := SQLERRM;
			END;
			whats := whats || 'quantity'::text; states := states || st; examples := examples || (x || ' on ' || p::text);
			msgs := msgs || msg;
		END IF;
	END LOOP;
	RETURN QUERY SELECT u.w, u.s, count(*), min(u.x), min(u.m)
		FROM unnest(whats, states, examples, msgs) AS u(w, s, x, m) GROUP BY u.w, u.s
		UNION ALL SELECT 'evaluations', 'ok', evaluated::bigint, NULL, NULL;
END $f$;
"""


def main():
    print("fuzz_expression: FUZZ_N=%d FUZZ_SEED=%d" % (N, SEED))
    admin = psycopg2.connect(dbname="postgres")
    admin.autocommit = True
    cur = admin.cursor()
    cur.execute("SELECT pg_postmaster_start_time()")
    started = cur.fetchone()[0]
    cur.execute("CREATE DATABASE " + DB)
    ok = True
    try:
        conn = psycopg2.connect(dbname=DB)
        conn.autocommit = True
        try:
            ok = run(conn.cursor())
        finally:
            conn.close()
        cur.execute("SELECT pg_postmaster_start_time()")
        if cur.fetchone()[0] != started:
            ok = False
            print("FAIL: the server restarted")
    finally:
        cur.execute("DROP DATABASE IF EXISTS " + DB)
        admin.close()
    return ok


def run(cur):
    ok = True
    cur.execute(SETUP)
    totals, examples = {}, {}
    props = [properties() for _ in range(997)]
    t0 = time.time()
    inputs = [aggregation_text(expression()) for _ in range(N)]
    print("generated %d inputs in %.1f s" % (N, time.time() - t0))
    t0 = time.time()
    for i in range(0, N, BATCH):
        cur.execute("SELECT * FROM fuzz_expressions(%s, %s::jsonb[])", (inputs[i:i + BATCH], props))
        for what, st, n, ex, msg in cur.fetchall():
            totals[(what, st)] = totals.get((what, st), 0) + n
            clean = st == "ok" or (what != "quantity" and st.startswith(CLEAN))
            if not clean and (what, st) not in examples:
                examples[(what, st)] = ((ex or "")[:300], msg)
    print("%d inputs in %.1f s" % (N, time.time() - t0))
    for (what, st), n in sorted(totals.items()):
        print("  %-18s %-6s %8d" % (what, st, n))
    for (what, st), (ex, msg) in examples.items():
        ok = False
        print("FAIL: %s gave %s (%s) for %r" % (what, st, msg, ex))

    # the differential part
    t0 = time.time()
    cases = [oracle_case() for _ in range(ORACLE_N)]
    exprs = [json.dumps({"type": "SUM", "expression": render(t)}) for t, _ in cases]
    pjson = ["{" + ",".join(json.dumps(k) + ":" + v for k, v in p.items()) + "}" for _, p in cases]
    got = []
    for i in range(0, ORACLE_N, BATCH):
        cur.execute("SELECT meter.quantity(e::meter.aggregation, p::jsonb)::text FROM unnest(%s::text[], %s::text[])"
                    " WITH ORDINALITY AS u(e, p, i) ORDER BY i", (exprs[i:i + BATCH], pjson[i:i + BATCH]))
        got += [r[0] for r in cur.fetchall()]
    wrong = 0
    skipped = 0
    for (t, p), e, pj, g in zip(cases, exprs, pjson, got):
        want = evaluate(t, p)
        if want is SKIP:
            skipped += 1
        if (want is SKIP) != (g is None) or (g is not None and D(g) != want):
            wrong += 1
            if wrong <= 10:
                print("FAIL: %s on %s gave %s, expected %s" % (e, pj, g, "NULL" if want is SKIP else want))
    print("differential: %d expressions (%d skipped) in %.1f s, %d wrong"
          % (ORACLE_N, skipped, time.time() - t0, wrong))
    if wrong:
        ok = False
    if totals.get(("aggregation text", "ok"), 0) < N // 20 or totals.get(("evaluations", "ok"), 0) < N // 20:
        ok = False
        print("FAIL: too few accepted expressions to be a test")
    return ok


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
