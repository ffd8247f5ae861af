/*
 * libFuzzer target: the query string of GET /orders/count.
 *
 * criteria_parse() takes any bytes a client can put after the '?'. Beyond
 * "no crash, no sanitizer report", it must keep the promise the cache
 * relies on: whatever it accepts has a canonical key, and that key, parsed
 * again, gives the same criteria and the same key (one spelling, one cache
 * entry). A broken promise aborts, which libFuzzer reports as a crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int ok)
{
	if (!ok)
		abort();
}

static int
same_criteria(const struct criteria *a, const struct criteria *b)
{
	return a->has_customerid == b->has_customerid &&
	    (!a->has_customerid || a->customerid == b->customerid) &&
	    a->has_from == b->has_from &&
	    (!a->has_from || strcmp(a->from, b->from) == 0) &&
	    a->has_to == b->has_to &&
	    (!a->has_to || strcmp(a->to, b->to) == 0) &&
	    a->has_min_total == b->has_min_total &&
	    (!a->has_min_total || a->min_total_cents == b->min_total_cents);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct criteria c, again;
	char err[160], key[CRITERIA_KEY_MAX], key2[CRITERIA_KEY_MAX];
	char *qs;
	int n, n2;

	/* Exactly size + 1 bytes: ASan sees any read past the NUL. */
	if ((qs = malloc(size + 1)) == NULL)
		return 0;
	memcpy(qs, data, size);
	qs[size] = '\0';

	err[0] = '\0';
	if (criteria_parse(qs, &c, err, sizeof(err)) == -1) {
		/* A refusal always says why, in a terminated string. */
		check(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
		free(qs);
		return 0;
	}
	n = criteria_key(&c, key, sizeof(key));
	check(n > 0 && (size_t)n == strlen(key));

	/* "all" is the key of no criteria, whose query string is empty. */
	err[0] = '\0';
	check(criteria_parse(strcmp(key, "all") == 0 ? "" : key, &again, err,
	    sizeof(err)) == 0);
	check(same_criteria(&c, &again));
	n2 = criteria_key(&again, key2, sizeof(key2));
	check(n2 == n && strcmp(key, key2) == 0);
	free(qs);
	return 0;
}
