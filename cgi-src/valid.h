/*
 * Validation of single values from untrusted input: ids, dates, amounts of
 * money. Pure functions, no I/O; every parser takes the whole text and
 * rejects anything but the exact form.
 */
#ifndef ORDERS_VALID_H
#define ORDERS_VALID_H

#include <stddef.h>
#include <stdint.h>

/* Amounts are numeric(12,2): at most 10 digits before the point. */
#define MONEY_MAX_CENTS	999999999999LL
#define DATE_LEN	10	/* YYYY-MM-DD */

enum money_err {
	MONEY_OK,
	MONEY_MALFORMED,	/* not a plain decimal number */
	MONEY_NEGATIVE,
	MONEY_PRECISION,	/* more than two decimals */
	MONEY_TOO_LARGE
};

/*
 * A positive 32-bit integer written in decimal digits only (leading zeros
 * allowed); no sign, no spaces. 0 on success.
 */
int valid_positive_int(const char *s, size_t len, int32_t *out);

/* A real calendar date "YYYY-MM-DD", years 1000 to 9999. 0 on success. */
int valid_date(const char *s, size_t len);

/*
 * A plain decimal amount ("12", "12.5", "12.50", "-0"); exponents, signs
 * other than a minus on zero, and more than two decimals are refused.
 */
enum money_err valid_money(const char *s, size_t len, int64_t *cents);
const char *valid_money_strerror(enum money_err e);

/*
 * Percent-decodes s[0..len) into out (of size outlen), and '+' into a space
 * when plus_is_space (query strings). Returns the decoded length, or -1 on
 * a bad escape, a NUL byte, or a result that does not fit.
 */
int pct_decode(const char *s, size_t len, char *out, size_t outlen,
    int plus_is_space);

/* "12.50" for 1250; buf needs 24 bytes. Returns buf. */
char *money_format(int64_t cents, char *buf, size_t len);

#endif
