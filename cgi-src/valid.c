#include "valid.h"

#include <stdio.h>

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int
valid_positive_int(const char *s, size_t len, int32_t *out)
{
	int64_t v = 0;
	size_t i;

	if (len == 0 || len > 32)
		return -1;
	for (i = 0; i < len; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
		if (v > INT32_MAX)
			return -1;
	}
	if (v == 0)
		return -1;
	*out = (int32_t)v;
	return 0;
}

static int
leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int
valid_date(const char *s, size_t len)
{
	static const int mdays[] =
	    { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, m, d, i;

	if (len != DATE_LEN || s[4] != '-' || s[7] != '-')
		return -1;
	for (i = 0; i < DATE_LEN; i++)
		if (i != 4 && i != 7 && !is_digit(s[i]))
			return -1;
	y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
	    (s[3] - '0');
	m = (s[5] - '0') * 10 + (s[6] - '0');
	d = (s[8] - '0') * 10 + (s[9] - '0');
	if (y < 1000 || m < 1 || m > 12 || d < 1)
		return -1;
	if (d > mdays[m - 1] + (m == 2 && leap(y)))
		return -1;
	return 0;
}

enum money_err
valid_money(const char *s, size_t len, int64_t *cents)
{
	int64_t whole = 0, frac = 0;
	size_t i = 0, intdigits = 0, fracdigits = 0;
	int negative = 0;

	if (len > 0 && s[0] == '-') {
		negative = 1;
		i++;
	}
	for (; i < len && is_digit(s[i]); i++) {
		if (++intdigits > 18)
			return MONEY_TOO_LARGE;
		whole = whole * 10 + (s[i] - '0');
	}
	if (intdigits == 0)
		return MONEY_MALFORMED;
	if (i < len && s[i] == '.') {
		for (i++; i < len && is_digit(s[i]); i++) {
			/* "12.500" too: the contract says two decimals */
			if (++fracdigits > 2)
				return MONEY_PRECISION;
			frac = frac * 10 + (s[i] - '0');
		}
		if (fracdigits == 0)
			return MONEY_MALFORMED;
	}
	if (i != len)
		return MONEY_MALFORMED;
	if (fracdigits == 1)
		frac *= 10;
	if (whole > MONEY_MAX_CENTS / 100)
		return MONEY_TOO_LARGE;
	*cents = whole * 100 + frac;
	if (negative && *cents != 0)
		return MONEY_NEGATIVE;
	if (*cents > MONEY_MAX_CENTS)
		return MONEY_TOO_LARGE;
	return MONEY_OK;
}

const char *
valid_money_strerror(enum money_err e)
{
	switch (e) {
	case MONEY_OK:
		return "ok";
	case MONEY_MALFORMED:
		return "must be a plain decimal number";
	case MONEY_NEGATIVE:
		return "must not be negative";
	case MONEY_PRECISION:
		return "must have at most two decimals";
	case MONEY_TOO_LARGE:
		return "is too large (at most 9999999999.99)";
	}
	return "is invalid";
}

char *
money_format(int64_t cents, char *buf, size_t len)
{
	snprintf(buf, len, "%lld.%02lld", (long long)(cents / 100),
	    (long long)(cents % 100));
	return buf;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
pct_decode(const char *s, size_t len, char *out, size_t outlen,
    int plus_is_space)
{
	size_t i, o = 0;
	int hi, lo;
	char c;

	for (i = 0; i < len; i++) {
		c = s[i];
		if (c == '%') {
			if (i + 2 >= len)
				return -1;
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (char)(hi * 16 + lo);
			i += 2;
		} else if (c == '+' && plus_is_space)
			c = ' ';
		if (c == '\0' || o + 1 >= outlen)
			return -1;
		out[o++] = c;
	}
	if (outlen == 0)
		return -1;
	out[o] = '\0';
	return (int)o;
}
