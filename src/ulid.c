/*
 * ulid.c — ULIDs generated in C (SPEC §4: ids are k-sortable).
 *
 * Within one millisecond the random part of the previous id is incremented instead of
 * drawn again, so ids made by one backend sort in the order they were made (the
 * "monotonic" ULID variant) and most ids cost no call to the random source.
 */
#include "postgres.h"

#include <sys/time.h>

#include "fmgr.h"
#include "utils/builtins.h"

#include "ulid.h"

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static uint64 last_ms = 0;
static uint8 last_random[10];

static uint64
now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64) tv.tv_sec * 1000 + (uint64) tv.tv_usec / 1000;
}

/* Add one to the 80-bit big-endian counter; false on overflow. */
static bool
increment_random(uint8 *r)
{
	for (int i = 9; i >= 0; i--)
	{
		if (++r[i] != 0)
			return true;
	}
	return false;
}

void
ulid_generate(char *out)
{
	uint64		ms = now_ms();
	uint8		bytes[16];
	int			bit;

	if (ms <= last_ms && increment_random(last_random))
		ms = last_ms;			/* same (or a stepped-back) clock: keep the order */
	else
	{
		if (!pg_strong_random(last_random, sizeof(last_random)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random id")));
		if (ms <= last_ms)
			ms = last_ms + 1;	/* counter overflowed within one millisecond */
		last_ms = ms;
	}

	for (int i = 0; i < 6; i++)
		bytes[i] = (uint8) (ms >> (8 * (5 - i)));
	memcpy(bytes + 6, last_random, 10);

	/* 128 bits as 26 base32 digits: the first digit holds the top 3 bits. */
	bit = -2;
	for (int i = 0; i < ULID_LEN; i++, bit += 5)
	{
		int			v = 0;

		for (int b = bit; b < bit + 5; b++)
		{
			v <<= 1;
			if (b >= 0)
				v |= (bytes[b / 8] >> (7 - b % 8)) & 1;
		}
		out[i] = crockford[v];
	}
	out[ULID_LEN] = '\0';
}

char *
ulid_with_prefix(const char *prefix)
{
	size_t		plen = strlen(prefix);
	char	   *result = palloc(plen + 1 + ULID_LEN + 1);

	if (plen > 0)
	{
		memcpy(result, prefix, plen);
		result[plen++] = '_';
	}
	ulid_generate(result + plen);
	return result;
}

/*
 * meter.new_id(prefix text) → text: prefix + '_' + a new ULID. The default of every id
 * column of the extension (meters, events).
 */
PG_FUNCTION_INFO_V1(meter_new_id);
Datum
meter_new_id(PG_FUNCTION_ARGS)
{
	char	   *prefix = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_TEXT_P(cstring_to_text(ulid_with_prefix(prefix)));
}
