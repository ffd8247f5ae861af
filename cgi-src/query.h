/*
 * The criteria of GET /orders/count, parsed from a query string and written
 * back in one canonical form: parameters sorted by name, values normalised,
 * so that every spelling of one criterion is one cache entry.
 */
#ifndef ORDERS_QUERY_H
#define ORDERS_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "valid.h"

#define QUERY_MAX	1024	/* longest query string accepted */
#define CRITERIA_KEY_MAX	128

struct criteria {
	int	has_customerid;
	int32_t	customerid;
	int	has_from;
	char	from[DATE_LEN + 1];
	int	has_to;
	char	to[DATE_LEN + 1];
	int	has_min_total;
	int64_t	min_total_cents;
};

/*
 * Parses qs (NULL or "" is no criteria). On a malformed, unknown or repeated
 * parameter returns -1 with a message for the client in err.
 */
int criteria_parse(const char *qs, struct criteria *c, char *err,
    size_t errlen);

/*
 * The canonical form, e.g. "customerid=42&from=2004-01-01", or "all" when
 * there are no criteria. Returns the length, or -1 if out is too small.
 */
int criteria_key(const struct criteria *c, char *out, size_t outlen);

#endif
