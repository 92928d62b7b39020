/*
 * expression.c — the expression language of an aggregation (SPEC §2).
 *
 * A CEL subset: numbers (1, 1.5, 1e3, .5), top-level property names as identifiers,
 * + - * /, unary - and !, parentheses, < <= > >= == !=, && ||, cond ? a : b, and the
 * functions min, max, abs, ceil, floor, round, sqrt, pow and log. Two types, checked when
 * the meter is defined: numbers and conditions (comparisons, && || !, true, false). The
 * result must be a number and at least one property must be read.
 *
 * Compiling is one pass of recursive descent over the text that emits a flat postfix
 * program as it goes (no syntax tree): linear in the text, with the text's length and
 * its nesting bounded (EXPRESSION_MAX_LENGTH, EXPRESSION_MAX_DEPTH). ?: and && || are
 * jumps, so only the taken branch runs and && || short-circuit from left to right.
 *
 * Evaluating runs the program on a stack of slots kept in the program (no allocation but
 * numeric results). Properties are looked up lazily, once per distinct name per event: a
 * missing property is 0, a present one that is not a usable number (number.c, JSON null
 * included) skips the event. Arithmetic is exact numeric through PostgreSQL's own
 * functions; every case where they would raise an error (division by zero, sqrt of a
 * negative, log of a non-positive number, pow's domain, results beyond numeric's range)
 * is checked first or caught by their *_opt_error forms, so a skip is an outcome and
 * never an error.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "parser/scansup.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "expression.h"
#include "number.h"

/* ── The program ─────────────────────────────────────────────────────────────────── */

typedef enum ExprOp
{
	OP_NUMBER,					/* push consts[arg] */
	OP_BOOL,					/* push arg != 0 */
	OP_PROPERTY,				/* push the value of property arg */
	/* numbers → number */
	OP_NEG, OP_ABS, OP_CEIL, OP_FLOOR, OP_ROUND, OP_SQRT, OP_LOG,
	OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MIN, OP_MAX, OP_POW,
	/* numbers → condition */
	OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE,
	/* conditions → condition */
	OP_BOOL_EQ, OP_BOOL_NE, OP_NOT,
	/* control */
	OP_JUMP,					/* go to arg */
	OP_JUMP_IF_FALSE,			/* pop; if false, go to arg */
	OP_JUMP_IF_FALSE_OR_POP,	/* &&: if the top is false go to arg (keeping it), else pop */
	OP_JUMP_IF_TRUE_OR_POP		/* ||: if the top is true go to arg (keeping it), else pop */
} ExprOp;

typedef struct ExprStep
{
	int32		op;
	int32		arg;
} ExprStep;

typedef union ExprSlot
{
	Numeric		number;
	bool		condition;
} ExprSlot;

struct Expression
{
	int			nsteps;
	ExprStep   *steps;
	int			nconsts;
	Numeric    *consts;			/* all in one block [consts_begin, consts_end) */
	char	   *consts_begin;
	char	   *consts_end;
	int			nnames;
	char	  **names;			/* distinct property names, NUL-terminated */
	int		   *namelens;
	/* scratch space, rewritten by every evaluation */
	ExprSlot   *stack;
	Numeric    *values;			/* per property, once loaded */
	bool	   *loaded;
};

/* Constants of evaluation, made once per backend (TopMemoryContext). */
static Numeric num_zero;
static Numeric num_half;
static Numeric num_one;
static Numeric num_int32_max;
static Numeric num_pow_int_limit;	/* ln of the largest pow result computed exactly */
static Numeric num_pow_limit;	/* the same for non-integer exponents */

static Numeric
numeric_of(const char *s)
{
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(s),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
}

static void
init_constants(void)
{
	MemoryContext old;

	if (num_pow_limit != NULL)
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	num_zero = numeric_of("0");
	num_half = numeric_of("0.5");
	num_one = numeric_of("1");
	num_int32_max = numeric_of("2147483647");

	/*
	 * numeric_power raises "value overflows numeric format" past about 131072 digits
	 * (ln ≈ 301800) for integer exponents that fit int32, and past ln 6000 (exp_var's
	 * limit) for others; below these margins it never does.
	 */
	num_pow_int_limit = numeric_of("300000");
	num_pow_limit = numeric_of("5900");
	MemoryContextSwitchTo(old);
}

/* ── Tokens ──────────────────────────────────────────────────────────────────────── */

typedef enum TokenKind
{
	T_EOF, T_NUMBER, T_IDENT, T_TRUE, T_FALSE, T_NULL,
	T_LPAREN, T_RPAREN, T_COMMA, T_QUESTION, T_COLON,
	T_PLUS, T_MINUS, T_STAR, T_SLASH, T_NOT,
	T_LT, T_LE, T_GT, T_GE, T_EQ, T_NE, T_AND, T_OR
} TokenKind;

typedef struct Token
{
	TokenKind	kind;
	int			start;			/* byte offset in the text */
	int			len;
} Token;

typedef enum ExprType
{
	TYPE_NUMBER,
	TYPE_CONDITION
} ExprType;

typedef struct ExprFunction
{
	const char *name;
	int			nargs;
	ExprOp		op;
	const char *example;
} ExprFunction;

static const ExprFunction functions[] = {
	{"min", 2, OP_MIN, "min(a, b)"},
	{"max", 2, OP_MAX, "max(a, b)"},
	{"abs", 1, OP_ABS, "abs(x)"},
	{"ceil", 1, OP_CEIL, "ceil(x)"},
	{"floor", 1, OP_FLOOR, "floor(x)"},
	{"round", 1, OP_ROUND, "round(x)"},
	{"sqrt", 1, OP_SQRT, "sqrt(x)"},
	{"pow", 2, OP_POW, "pow(x, 2)"},
	{"log", 1, OP_LOG, "log(x)"},
};

/* CEL's reserved words: never property names (true, false and null are literals). */
static const char *const reserved_words[] = {
	"in", "as", "break", "const", "continue", "else", "for", "function", "if", "import",
	"let", "loop", "package", "namespace", "return", "var", "void", "while",
};

/* Conversions of CEL that exact numbers make unnecessary (a hint of their own). */
static const char *const conversions[] = {"double", "int", "uint", "dyn", "decimal"};

#define HINT_OPERAND "Write a number, a property name or a parenthesized expression there, e.g. input_tokens + output_tokens * 4."
#define HINT_NUMBERS "Arithmetic and functions work on numbers; turn a condition into a number with ?:, e.g. (a > b ? 1 : 0)."
#define HINT_CONDITIONS "Conditions are comparisons, &&, ||, ! and true/false; compare the number, e.g. x > 0."
#define HINT_MIXED "Compare numbers with numbers and conditions with conditions, e.g. a == b or (a > 0) == (b > 0)."
#define HINT_TERNARY "Write condition ? number : number, e.g. b != 0 ? a / b : 0 (put a nested ?: in the middle in parentheses)."
#define HINT_FUNCTIONS "The functions are min(a, b), max(a, b), abs(x), ceil(x), floor(x), round(x), sqrt(x), pow(x, y) and log(x)."
#define HINT_CONVERSION "Values are exact numbers already: write the argument without the conversion, e.g. duration_ms / 1000."
#define HINT_JOIN "Join the parts with an operator, e.g. a * b."
#define HINT_PAREN "Close every \"(\" with a \")\"."
#define HINT_RESERVED "CEL reserves this word, so a property with this name cannot be used in an expression; read it with \"field\" instead."
#define HINT_NULL "A missing property counts as 0 and a property that is JSON null skips the event; compare with a number instead, e.g. x != 0."
#define HINT_NUMBER_SYNTAX "Write decimal numbers such as 2, 1.5, 0.25 or 1e3."
#define HINT_NUMBER_RANGE "Write a number that numeric can hold (an exponent from -1000 to 1000)."
#define HINT_NO_PROPERTY "Name at least one top-level property of the event, e.g. input_tokens + output_tokens; to count events use \"type\":\"COUNT\"."
#define HINT_RESULT "The expression must give a number; turn a condition into one with ?:, e.g. (a > b ? 1 : 0)."
#define HINT_STRING "Strings are not supported: name properties without quotes, e.g. input_tokens * 2 (a property whose name is not an identifier can only be read with \"field\")."
#define HINT_MEMBER "Properties are top-level keys of the event's properties: write the key alone, e.g. tokens (nested values are not supported)."
#define HINT_LIST "Lists, maps and indexing are not supported: name top-level properties alone, e.g. tokens."
#define HINT_MODULO "The remainder operator is not supported; write a - b * floor(a / b)."
#define HINT_CHARACTERS "Expressions use numbers, property names, + - * /, < <= > >= == !=, && || !, ?: and the functions min, max, abs, ceil, floor, round, sqrt, pow and log."

/* ── The parser ──────────────────────────────────────────────────────────────────── */

typedef struct Parser
{
	const char *text;
	int			len;
	Token		tok;			/* the current token */
	char	   *number;			/* the current T_NUMBER, normalised for numeric_in */
	int			depth;
	/* the program being built */
	ExprStep   *steps;
	int			nsteps;
	int			maxsteps;
	Numeric    *consts;
	int			nconsts;
	int			maxconsts;
	char	  **names;
	int		   *namelens;
	int			nnames;
	int			maxnames;
	int		   *slots;			/* open addressing: 1 + index into names, 0 empty */
	int			nslots;
	int			height;			/* stack height after the steps so far */
	int			maxheight;
} Parser;

/* 1-based character position of a byte offset. */
static int
position_of(const Parser *p, int offset)
{
	return pg_mbstrlen_with_len(p->text, offset) + 1;
}

static void expr_error(const Parser *p, int offset, const char *hint, const char *fmt,...) pg_attribute_printf(4, 5) pg_attribute_noreturn();

/* 22023 "invalid expression": DETAIL says where and what, HINT what to write instead. */
static void
expr_error(const Parser *p, int offset, const char *hint, const char *fmt,...)
{
	StringInfoData what;

	initStringInfo(&what);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&what, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&what, needed);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid expression"),
			 errdetail("At position %d of the expression: %s.", position_of(p, offset), what.data),
			 errhint("%s", hint)));
}

/* A token as the error messages quote it. */
static const char *
describe(const Parser *p, const Token *t)
{
	if (t->kind == T_EOF)
		return "the end of the expression";
	if (t->len > 40)
		return psprintf("\"%.*s…\"", 40, p->text + t->start);
	return psprintf("\"%.*s\"", t->len, p->text + t->start);
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
is_ident_char(char c)
{
	return is_ident_start(c) || is_digit(c);
}

/* A number literal from s[i]: digits, an optional fraction, an optional exponent. */
static void
lex_number(Parser *p, int i)
{
	const char *s = p->text;
	int			n = p->len;
	int			start = i;
	int			intend;
	int			z;
	StringInfoData buf;

	while (i < n && is_digit(s[i]))
		i++;
	intend = i;
	if (i < n && s[i] == '.' && i + 1 < n && is_digit(s[i + 1]))
	{
		i++;
		while (i < n && is_digit(s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E'))
	{
		int			k = i + 1;

		if (k < n && (s[k] == '+' || s[k] == '-'))
			k++;
		if (k < n && is_digit(s[k]))
		{
			i = k;
			while (i < n && is_digit(s[i]))
				i++;
		}
	}
	if (i < n && (is_ident_char(s[i]) || s[i] == '.'))
	{
		while (i < n && (is_ident_char(s[i]) || s[i] == '.'))
			i++;
		expr_error(p, start, HINT_NUMBER_SYNTAX, "\"%.*s\" is not a decimal number",
				   Min(i - start, 40), s + start);
	}

	/* numeric_in's form, checked by number.c's rule: no leading zeros, "0" before ".5" */
	z = start;
	while (z < intend - 1 && s[z] == '0')
		z++;
	initStringInfo(&buf);
	if (z == intend)
		appendStringInfoChar(&buf, '0');
	appendBinaryStringInfo(&buf, s + z, i - z);
	if (!number_syntax_ok(buf.data, buf.len))
		expr_error(p, start, HINT_NUMBER_RANGE, "the number \"%.*s\" is out of numeric's range",
				   Min(i - start, 40), s + start);
	p->number = buf.data;
	p->tok.kind = T_NUMBER;
	p->tok.len = i - start;
}

/* An identifier from s[i]: a keyword, a reserved word (an error) or a name. */
static void
lex_identifier(Parser *p, int i)
{
	const char *s = p->text;
	int			start = i;
	int			len;

	while (i < p->len && is_ident_char(s[i]))
		i++;
	len = i - start;
	p->tok.len = len;
	p->tok.kind = T_IDENT;
	if (len == 4 && memcmp(s + start, "true", 4) == 0)
		p->tok.kind = T_TRUE;
	else if (len == 5 && memcmp(s + start, "false", 5) == 0)
		p->tok.kind = T_FALSE;
	else if (len == 4 && memcmp(s + start, "null", 4) == 0)
		p->tok.kind = T_NULL;
	else
		for (int k = 0; k < (int) lengthof(reserved_words); k++)
			if ((int) strlen(reserved_words[k]) == len && memcmp(s + start, reserved_words[k], len) == 0)
				expr_error(p, start, HINT_RESERVED, "\"%s\" is a reserved word, not a property name",
						   reserved_words[k]);
}

/* An unexpected character at s[i]: the error, with a hint for what was probably meant. */
static void
bad_character(Parser *p, int i)
{
	const char *s = p->text;
	unsigned char c = (unsigned char) s[i];
	const char *hint = HINT_CHARACTERS;

	switch (c)
	{
		case '%':
			hint = HINT_MODULO;
			break;
		case '=':
			hint = "Write == to compare.";
			break;
		case '&':
			hint = "Write && for \"and\".";
			break;
		case '|':
			hint = "Write || for \"or\".";
			break;
		case '"':
		case '\'':
			expr_error(p, i, HINT_STRING, "strings are not supported");
		case '.':
			expr_error(p, i, HINT_MEMBER, "\".\" (nested properties, methods) is not supported");
		case '[':
		case ']':
		case '{':
		case '}':
			hint = HINT_LIST;
			break;
	}
	if (c >= 0x80)
	{
		int			l = Min(pg_mblen(s + i), p->len - i);

		if (GetDatabaseEncoding() == PG_UTF8 && l == pg_utf_mblen((const unsigned char *) s + i))
			expr_error(p, i, hint, "the character \"%.*s\" (U+%04X) is not allowed", l, s + i,
					   (unsigned int) utf8_to_unicode((const unsigned char *) s + i));
		expr_error(p, i, hint, "the character \"%.*s\" is not allowed", l, s + i);
	}
	if (c < 0x20 || c == 0x7f)
		expr_error(p, i, hint, "the control character U+%04X is not allowed", c);
	expr_error(p, i, hint, "the character \"%c\" is not allowed", c);
}

/* Operators and punctuation: c alone is one (T_EOF: not a token alone), c then next is two. */
static const struct
{
	char		c;
	TokenKind	one;
	char		next;
	TokenKind	two;
}			punctuation[] = {
	{'(', T_LPAREN, '\0', T_EOF}, {')', T_RPAREN, '\0', T_EOF}, {',', T_COMMA, '\0', T_EOF},
	{'?', T_QUESTION, '\0', T_EOF}, {':', T_COLON, '\0', T_EOF}, {'+', T_PLUS, '\0', T_EOF},
	{'-', T_MINUS, '\0', T_EOF}, {'*', T_STAR, '\0', T_EOF}, {'/', T_SLASH, '\0', T_EOF},
	{'!', T_NOT, '=', T_NE}, {'<', T_LT, '=', T_LE}, {'>', T_GT, '=', T_GE},
	{'=', T_EOF, '=', T_EQ}, {'&', T_EOF, '&', T_AND}, {'|', T_EOF, '|', T_OR},
};

static void
next_token(Parser *p)
{
	const char *s = p->text;
	int			i = p->tok.start + p->tok.len;
	char		c,
				d;

	while (i < p->len && scanner_isspace(s[i]))
		i++;
	p->tok.start = i;
	p->tok.len = 1;
	if (i >= p->len)
	{
		p->tok.kind = T_EOF;
		p->tok.len = 0;
		return;
	}
	c = s[i];
	d = i + 1 < p->len ? s[i + 1] : '\0';
	if (is_digit(c) || (c == '.' && is_digit(d)))
	{
		lex_number(p, i);
		return;
	}
	if (is_ident_start(c))
	{
		lex_identifier(p, i);
		return;
	}
	for (int k = 0; k < (int) lengthof(punctuation); k++)
	{
		if (punctuation[k].c != c)
			continue;
		if (punctuation[k].next != '\0' && punctuation[k].next == d)
		{
			p->tok.kind = punctuation[k].two;
			p->tok.len = 2;
			return;
		}
		if (punctuation[k].one != T_EOF)
		{
			p->tok.kind = punctuation[k].one;
			return;
		}
	}
	bad_character(p, i);
}

/* ── Emitting the program ────────────────────────────────────────────────────────── */

/* Append a step whose net effect on the stack height is delta; its index. */
static int
emit(Parser *p, ExprOp op, int arg, int delta)
{
	if (p->nsteps == p->maxsteps)
	{
		p->maxsteps *= 2;
		p->steps = repalloc(p->steps, sizeof(ExprStep) * p->maxsteps);
	}
	p->steps[p->nsteps].op = op;
	p->steps[p->nsteps].arg = arg;
	p->height += delta;
	p->maxheight = Max(p->maxheight, p->height);
	return p->nsteps++;
}

/* Make a jump emitted earlier go to the next step. */
static void
land(Parser *p, int jump)
{
	p->steps[jump].arg = p->nsteps;
}

static void
emit_number(Parser *p, const char *text)
{
	if (p->nconsts == p->maxconsts)
	{
		p->maxconsts *= 2;
		p->consts = repalloc(p->consts, sizeof(Numeric) * p->maxconsts);
	}
	p->consts[p->nconsts] = numeric_of(text);
	emit(p, OP_NUMBER, p->nconsts++, 1);
}

/* The index of a property name, added on first sight (a hash table: linear overall). */
static int
intern(Parser *p, const char *name, int len)
{
	int			mask = p->nslots - 1;
	int			i = hash_bytes((const unsigned char *) name, len) & mask;

	for (;; i = (i + 1) & mask)
	{
		int			k = p->slots[i];

		if (k == 0)
			break;
		if (p->namelens[k - 1] == len && memcmp(p->names[k - 1], name, len) == 0)
			return k - 1;
	}
	if (p->nnames == p->maxnames)
	{
		p->maxnames *= 2;
		p->names = repalloc(p->names, sizeof(char *) * p->maxnames);
		p->namelens = repalloc(p->namelens, sizeof(int) * p->maxnames);
	}
	p->names[p->nnames] = pnstrdup(name, len);
	p->namelens[p->nnames] = len;
	p->slots[i] = ++p->nnames;
	return p->nnames - 1;
}

/* ── Grammar (CEL's precedence, lowest first) ────────────────────────────────────── */

static ExprType parse_expr(Parser *p);

/* One more level of nesting: bounded, and the C stack checked. */
static void
enter(Parser *p)
{
	check_stack_depth();
	if (++p->depth > EXPRESSION_MAX_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("expression is nested too deeply"),
				 errdetail("At position %d, the expression is nested more than %d levels deep.",
						   position_of(p, p->tok.start), EXPRESSION_MAX_DEPTH),
				 errhint("Simplify the expression: fewer nested parentheses, function calls, ?: and unary operators.")));
}

static const char *
type_name(ExprType t)
{
	return t == TYPE_NUMBER ? "a number" : "a condition";
}

/* An operand of op must be of type want; side is "left", "right" or NULL (unary). */
static void
need_type(Parser *p, const Token *op, ExprType t, ExprType want, const char *side)
{
	const char *wanted = want == TYPE_NUMBER ? "number" : "condition";
	const char *hint = want == TYPE_NUMBER ? HINT_NUMBERS : HINT_CONDITIONS;

	if (t == want)
		return;
	if (side == NULL)
		expr_error(p, op->start, hint, "\"%.*s\" needs a %s, but its operand is %s",
				   op->len, p->text + op->start, wanted, type_name(t));
	expr_error(p, op->start, hint, "\"%.*s\" needs %ss, but its %s operand is %s",
			   op->len, p->text + op->start, wanted, side, type_name(t));
}

/* A function call; p->tok is the "(" after the name. */
static ExprType
parse_call(Parser *p, Token name)
{
	const ExprFunction *f = NULL;
	int			nargs = 0;
	Token		open = p->tok;

	for (int k = 0; k < (int) lengthof(functions); k++)
		if ((int) strlen(functions[k].name) == name.len &&
			memcmp(functions[k].name, p->text + name.start, name.len) == 0)
			f = &functions[k];
	if (f == NULL)
	{
		const char *hint = HINT_FUNCTIONS;

		for (int k = 0; k < (int) lengthof(conversions); k++)
			if ((int) strlen(conversions[k]) == name.len &&
				memcmp(conversions[k], p->text + name.start, name.len) == 0)
				hint = HINT_CONVERSION;
		expr_error(p, name.start, hint, "unknown function %s", describe(p, &name));
	}
	next_token(p);
	if (p->tok.kind != T_RPAREN)
		for (;;)
		{
			Token		arg = p->tok;

			if (parse_expr(p) != TYPE_NUMBER)
				expr_error(p, arg.start, HINT_NUMBERS, "argument %d of \"%s\" is a condition, not a number",
						   nargs + 1, f->name);
			nargs++;
			if (p->tok.kind != T_COMMA)
				break;
			next_token(p);
		}
	if (p->tok.kind != T_RPAREN)
		expr_error(p, p->tok.start, HINT_PAREN, "expected \",\" or \")\" in the arguments of \"%s\" (opened at position %d), found %s",
				   f->name, position_of(p, open.start), describe(p, &p->tok));
	if (nargs != f->nargs)
		expr_error(p, name.start, psprintf("Write e.g. %s.", f->example),
				   "\"%s\" takes %d argument%s, not %d", f->name, f->nargs,
				   f->nargs == 1 ? "" : "s", nargs);
	next_token(p);
	emit(p, f->op, 0, 1 - nargs);
	return TYPE_NUMBER;
}

static ExprType
parse_primary(Parser *p)
{
	Token		t = p->tok;
	ExprType	type;

	switch (t.kind)
	{
		case T_NUMBER:
			emit_number(p, p->number);
			next_token(p);
			return TYPE_NUMBER;
		case T_TRUE:
		case T_FALSE:
			emit(p, OP_BOOL, t.kind == T_TRUE, 1);
			next_token(p);
			return TYPE_CONDITION;
		case T_NULL:
			expr_error(p, t.start, HINT_NULL, "null is not a number");
		case T_IDENT:
			next_token(p);
			if (p->tok.kind == T_LPAREN)
				return parse_call(p, t);
			emit(p, OP_PROPERTY, intern(p, p->text + t.start, t.len), 1);
			return TYPE_NUMBER;
		case T_LPAREN:
			next_token(p);
			type = parse_expr(p);
			if (p->tok.kind != T_RPAREN)
				expr_error(p, p->tok.start, HINT_PAREN, "expected \")\" to close the \"(\" at position %d, found %s",
						   position_of(p, t.start), describe(p, &p->tok));
			next_token(p);
			return type;
		default:
			expr_error(p, t.start, HINT_OPERAND, "expected a number, a property name or \"(\", found %s",
					   describe(p, &t));
	}
}

static ExprType
parse_unary(Parser *p)
{
	Token		op = p->tok;
	ExprType	t;

	if (op.kind != T_MINUS && op.kind != T_NOT)
		return parse_primary(p);
	enter(p);
	next_token(p);
	t = parse_unary(p);
	if (op.kind == T_MINUS)
	{
		need_type(p, &op, t, TYPE_NUMBER, NULL);
		emit(p, OP_NEG, 0, 0);
	}
	else
	{
		need_type(p, &op, t, TYPE_CONDITION, NULL);
		emit(p, OP_NOT, 0, 0);
	}
	p->depth--;
	return t;
}

/* * and / (multiplicative), or + and - one level up: numbers on both sides. */
static ExprType
parse_arithmetic(Parser *p, bool additive)
{
	TokenKind	first = additive ? T_PLUS : T_STAR;
	TokenKind	second = additive ? T_MINUS : T_SLASH;
	ExprType	t = additive ? parse_arithmetic(p, false) : parse_unary(p);

	while (p->tok.kind == first || p->tok.kind == second)
	{
		Token		op = p->tok;

		need_type(p, &op, t, TYPE_NUMBER, "left");
		next_token(p);
		need_type(p, &op, additive ? parse_arithmetic(p, false) : parse_unary(p), TYPE_NUMBER, "right");
		emit(p, op.kind == T_PLUS ? OP_ADD : op.kind == T_MINUS ? OP_SUB :
			 op.kind == T_STAR ? OP_MUL : OP_DIV, 0, -1);
	}
	return t;
}

static ExprType
parse_relation(Parser *p)
{
	ExprType	t = parse_arithmetic(p, true);

	for (;;)
	{
		Token		op = p->tok;
		ExprType	r;
		ExprOp		code;

		switch (op.kind)
		{
			case T_LT:
				code = OP_LT;
				break;
			case T_LE:
				code = OP_LE;
				break;
			case T_GT:
				code = OP_GT;
				break;
			case T_GE:
				code = OP_GE;
				break;
			case T_EQ:
				code = OP_EQ;
				break;
			case T_NE:
				code = OP_NE;
				break;
			default:
				return t;
		}
		next_token(p);
		r = parse_arithmetic(p, true);
		if (code == OP_EQ || code == OP_NE)
		{
			if (t != r)
				expr_error(p, op.start, HINT_MIXED, "\"%.*s\" compares %s with %s",
						   op.len, p->text + op.start, type_name(t), type_name(r));
			if (t == TYPE_CONDITION)
				code = code == OP_EQ ? OP_BOOL_EQ : OP_BOOL_NE;
		}
		else
		{
			if (t != TYPE_NUMBER || r != TYPE_NUMBER)
				expr_error(p, op.start, HINT_MIXED, "\"%.*s\" compares numbers, but its %s operand is a condition",
						   op.len, p->text + op.start, t != TYPE_NUMBER ? "left" : "right");
		}
		emit(p, code, 0, -1);
		t = TYPE_CONDITION;
	}
}

/* && (and ||, one level up): the left operand decides whether the right one runs. */
static ExprType
parse_logical(Parser *p, TokenKind kind)
{
	ExprType	t = kind == T_OR ? parse_logical(p, T_AND) : parse_relation(p);

	while (p->tok.kind == kind)
	{
		Token		op = p->tok;
		int			jump;

		need_type(p, &op, t, TYPE_CONDITION, "left");
		jump = emit(p, kind == T_OR ? OP_JUMP_IF_TRUE_OR_POP : OP_JUMP_IF_FALSE_OR_POP, 0, -1);
		next_token(p);
		need_type(p, &op, kind == T_OR ? parse_logical(p, T_AND) : parse_relation(p), TYPE_CONDITION, "right");
		land(p, jump);
	}
	return t;
}

/* cond ? a : b, CEL's grammar: the middle is an ||-expression, the last part nests. */
static ExprType
parse_expr(Parser *p)
{
	ExprType	t,
				other;
	Token		q;
	int			jump_else,
				jump_end,
				height;

	enter(p);
	t = parse_logical(p, T_OR);
	if (p->tok.kind == T_QUESTION)
	{
		q = p->tok;
		if (t != TYPE_CONDITION)
			expr_error(p, q.start, HINT_TERNARY, "the condition before \"?\" is a number");
		jump_else = emit(p, OP_JUMP_IF_FALSE, 0, -1);
		height = p->height;
		next_token(p);
		t = parse_logical(p, T_OR);
		if (p->tok.kind != T_COLON)
			expr_error(p, p->tok.start, HINT_TERNARY, "expected \":\" for the \"?\" at position %d, found %s",
					   position_of(p, q.start), describe(p, &p->tok));
		jump_end = emit(p, OP_JUMP, 0, 0);
		land(p, jump_else);
		p->height = height;
		next_token(p);
		other = parse_expr(p);
		land(p, jump_end);
		if (t != other)
			expr_error(p, q.start, HINT_TERNARY, "the two results of \"?:\" differ: %s and %s",
					   type_name(t), type_name(other));
	}
	p->depth--;
	return t;
}

/* ── Compiling ───────────────────────────────────────────────────────────────────── */

Expression *
expression_compile(const char *text, int len)
{
	Parser		p;
	Expression *e;
	int			nchars = pg_mbstrlen_with_len(text, len);
	Size		total = 0;
	char	   *block;
	Token		first;
	ExprType	t;

	if (nchars > EXPRESSION_MAX_LENGTH)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("expression is too long"),
				 errdetail("The expression has %d characters; at most %d are allowed.",
						   nchars, EXPRESSION_MAX_LENGTH),
				 errhint("Shorten the expression.")));
	init_constants();

	memset(&p, 0, sizeof(p));
	p.text = text;
	p.len = len;
	p.maxsteps = 16;
	p.steps = palloc(sizeof(ExprStep) * p.maxsteps);
	p.maxconsts = 4;
	p.consts = palloc(sizeof(Numeric) * p.maxconsts);
	p.maxnames = 4;
	p.names = palloc(sizeof(char *) * p.maxnames);
	p.namelens = palloc(sizeof(int) * p.maxnames);
	/* at most one name per two bytes: a table at most half full */
	p.nslots = 8;
	while (p.nslots < len + 2)
		p.nslots *= 2;
	p.slots = palloc0(sizeof(int) * p.nslots);

	next_token(&p);
	first = p.tok;
	t = parse_expr(&p);
	if (p.tok.kind == T_RPAREN)
		expr_error(&p, p.tok.start, HINT_PAREN, "\")\" has no matching \"(\"");
	if (p.tok.kind != T_EOF)
		expr_error(&p, p.tok.start, HINT_JOIN, "unexpected %s after a complete expression",
				   describe(&p, &p.tok));
	if (t != TYPE_NUMBER)
		expr_error(&p, first.start, HINT_RESULT, "the expression gives a condition, not a number");
	if (p.nnames == 0)
		expr_error(&p, first.start, HINT_NO_PROPERTY, "the expression reads no property");
	Assert(p.height == 1);
	pfree(p.slots);

	e = palloc0(sizeof(Expression));
	e->nsteps = p.nsteps;
	e->steps = p.steps;
	e->nnames = p.nnames;
	e->names = p.names;
	e->namelens = p.namelens;
	e->nconsts = p.nconsts;
	e->consts = p.consts;

	/* the constants in one block, so that a result that is one is recognised at once */
	for (int i = 0; i < p.nconsts; i++)
		total += MAXALIGN(VARSIZE(p.consts[i]));
	block = palloc(Max(total, 1));
	e->consts_begin = block;
	for (int i = 0; i < p.nconsts; i++)
	{
		Numeric		c = p.consts[i];

		memcpy(block, c, VARSIZE(c));
		e->consts[i] = (Numeric) block;
		block += MAXALIGN(VARSIZE(c));
		pfree(c);
	}
	e->consts_end = block;

	e->stack = palloc(sizeof(ExprSlot) * p.maxheight);
	e->values = palloc(sizeof(Numeric) * p.nnames);
	e->loaded = palloc(sizeof(bool) * p.nnames);
	return e;
}

/* ── Evaluating ──────────────────────────────────────────────────────────────────── */

static int
compare(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

static Numeric
call1(PGFunction f, Numeric a)
{
	return DatumGetNumeric(DirectFunctionCall1(f, NumericGetDatum(a)));
}

static Numeric
call2(PGFunction f, Numeric a, Numeric b)
{
	return DatumGetNumeric(DirectFunctionCall2(f, NumericGetDatum(a), NumericGetDatum(b)));
}

static Numeric
truncate_numeric(Numeric a)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_trunc, NumericGetDatum(a), Int32GetDatum(0)));
}

/*
 * ceil, floor and round (half away from zero) through trunc and an exact ±1 or ±0.5,
 * so that a result one digit beyond numeric's range is a skip instead of an error.
 */
static Numeric
round_numeric(ExprOp op, Numeric a)
{
	int			sign = compare(a, num_zero);
	bool		error = false;
	Numeric		t;

	if (op == OP_ROUND)
	{
		Numeric		shifted = sign >= 0 ? numeric_add_opt_error(a, num_half, &error) :
			numeric_sub_opt_error(a, num_half, &error);

		return error ? NULL : truncate_numeric(shifted);
	}
	t = truncate_numeric(a);
	if (compare(t, a) == 0)
		return t;
	if (op == OP_CEIL && sign > 0)
		return numeric_add_opt_error(t, num_one, &error);
	if (op == OP_FLOOR && sign < 0)
		return numeric_sub_opt_error(t, num_one, &error);
	return t;
}

/* Whether a comparison holds for numeric_cmp's answer c (-1, 0, 1). */
static bool
comparison_holds(ExprOp op, int c)
{
	switch (op)
	{
		case OP_LT:
			return c < 0;
		case OP_LE:
			return c <= 0;
		case OP_GT:
			return c > 0;
		case OP_GE:
			return c >= 0;
		case OP_EQ:
			return c == 0;
		default:
			return c != 0;
	}
}

/* pow(a, b) as numeric_power, with its errors checked first. */
static ExpressionOutcome
power(Numeric a, Numeric b, Numeric *out)
{
	int			sa = compare(a, num_zero);
	int			sb = compare(b, num_zero);
	bool		integral = compare(truncate_numeric(b), b) == 0;

	if (sa == 0 && sb < 0)
		return EXPRESSION_POW_ZERO_NEGATIVE;
	if (sa < 0 && !integral)
		return EXPRESSION_POW_NEGATIVE_FRACTION;
	if (sa != 0 && sb != 0)
	{
		/* the result's natural logarithm, b · ln|a|, against numeric_power's limits */
		bool		error = false;
		Numeric		ln = call1(numeric_ln, sa < 0 ? call1(numeric_abs, a) : a);
		Numeric		l = numeric_mul_opt_error(ln, b, &error);
		Numeric		limit = integral && compare(call1(numeric_abs, b), num_int32_max) <= 0 ?
			num_pow_int_limit : num_pow_limit;

		if (error || compare(l, limit) > 0)
			return EXPRESSION_OUT_OF_RANGE;
	}
	*out = call2(numeric_power, a, b);
	return EXPRESSION_VALUE;
}

ExpressionOutcome
expression_evaluate(const Expression *e, Jsonb *properties, Numeric *result,
					const char **property)
{
	ExprSlot   *stack = e->stack;
	int			sp = 0;			/* slots in use */
	int			pc = 0;

	memset(e->loaded, 0, sizeof(bool) * e->nnames);
	while (pc < e->nsteps)
	{
		const ExprStep *s = &e->steps[pc++];
		ExprSlot   *top = sp > 0 ? &stack[sp - 1] : NULL;
		bool		error = false;
		Numeric		n = NULL;
		ExpressionOutcome outcome;

		switch ((ExprOp) s->op)
		{
			case OP_NUMBER:
				stack[sp++].number = e->consts[s->arg];
				break;
			case OP_BOOL:
				stack[sp++].condition = s->arg != 0;
				break;
			case OP_PROPERTY:
				if (!e->loaded[s->arg])
				{
					JsonbValue	v;

					if (properties == NULL ||
						!jsonb_get_field(properties, e->names[s->arg], e->namelens[s->arg], &v))
						n = num_zero;
					else if ((n = jsonb_value_numeric(&v)) == NULL)
					{
						*property = e->names[s->arg];
						return EXPRESSION_NOT_A_NUMBER;
					}
					e->values[s->arg] = n;
					e->loaded[s->arg] = true;
				}
				stack[sp++].number = e->values[s->arg];
				break;
			case OP_NEG:
				top->number = call1(numeric_uminus, top->number);
				break;
			case OP_ABS:
				top->number = call1(numeric_abs, top->number);
				break;
			case OP_CEIL:
			case OP_FLOOR:
			case OP_ROUND:
				if ((top->number = round_numeric((ExprOp) s->op, top->number)) == NULL)
					return EXPRESSION_OUT_OF_RANGE;
				break;
			case OP_SQRT:
				if (compare(top->number, num_zero) < 0)
					return EXPRESSION_SQRT_NEGATIVE;
				top->number = call1(numeric_sqrt, top->number);
				break;
			case OP_LOG:
				if (compare(top->number, num_zero) <= 0)
					return EXPRESSION_LOG_NOT_POSITIVE;
				top->number = call1(numeric_ln, top->number);
				break;
			case OP_ADD:
				n = numeric_add_opt_error(top[-1].number, top->number, &error);
				goto binary;
			case OP_SUB:
				n = numeric_sub_opt_error(top[-1].number, top->number, &error);
				goto binary;
			case OP_MUL:
				n = numeric_mul_opt_error(top[-1].number, top->number, &error);
				goto binary;
			case OP_DIV:
				n = numeric_div_opt_error(top[-1].number, top->number, &error);
				if (error && compare(top->number, num_zero) == 0)
					return EXPRESSION_DIVISION_BY_ZERO;
				goto binary;
			case OP_MIN:
				n = call2(numeric_smaller, top[-1].number, top->number);
				goto binary;
			case OP_MAX:
				n = call2(numeric_larger, top[-1].number, top->number);
				goto binary;
			case OP_POW:
				outcome = power(top[-1].number, top->number, &n);
				if (outcome != EXPRESSION_VALUE)
					return outcome;
		binary:
				if (error || n == NULL)
					return EXPRESSION_OUT_OF_RANGE;
				top[-1].number = n;
				sp--;
				break;
			case OP_LT:
			case OP_LE:
			case OP_GT:
			case OP_GE:
			case OP_EQ:
			case OP_NE:
				top[-1].condition = comparison_holds((ExprOp) s->op, compare(top[-1].number, top->number));
				sp--;
				break;
			case OP_BOOL_EQ:
			case OP_BOOL_NE:
				top[-1].condition = (top[-1].condition == top->condition) == (s->op == OP_BOOL_EQ);
				sp--;
				break;
			case OP_NOT:
				top->condition = !top->condition;
				break;
			case OP_JUMP:
				pc = s->arg;
				break;
			case OP_JUMP_IF_FALSE:
				sp--;
				if (!top->condition)
					pc = s->arg;
				break;
			case OP_JUMP_IF_FALSE_OR_POP:
				if (!top->condition)
					pc = s->arg;
				else
					sp--;
				break;
			case OP_JUMP_IF_TRUE_OR_POP:
				if (top->condition)
					pc = s->arg;
				else
					sp--;
				break;
		}
	}
	Assert(sp == 1);

	/* a constant of the program or the zero of a missing property: the caller's copy */
	*result = stack[0].number;
	if ((char *) *result >= e->consts_begin && (char *) *result < e->consts_end)
		*result = DatumGetNumericCopy(NumericGetDatum(*result));
	else if (*result == num_zero)
		*result = numeric_of("0");
	return EXPRESSION_VALUE;
}
