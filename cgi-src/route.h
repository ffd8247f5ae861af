/*
 * The routing table's matcher: a path pattern and the methods it allows
 * per entry; "{id}" matches one path segment of digits, a positive 32-bit
 * orderid. HEAD is allowed wherever GET is.
 */
#ifndef ORDERS_ROUTE_H
#define ORDERS_ROUTE_H

#include <stddef.h>
#include <stdint.h>

struct exchange;
typedef void (*route_handler)(struct exchange *x);

struct route {
	const char	*pattern;	/* "/orders/count", "/orders/{id}" */
	unsigned	 methods;	/* enum http_method bits */
	route_handler	 handler;
};

enum route_result { ROUTE_OK, ROUTE_NOT_FOUND, ROUTE_BAD_METHOD };

/*
 * Finds the entry of table[0..n) for path and method; one path may have
 * several entries, one per handler. ROUTE_OK sets *match and *id (0 when
 * the pattern has none); ROUTE_BAD_METHOD sets *allowed to the methods the
 * path does allow, for the Allow header.
 */
enum route_result route_match(const struct route *table, size_t n,
    const char *path, unsigned method, const struct route **match,
    int32_t *id, unsigned *allowed);

/* "GET, HEAD, DELETE" for an Allow header. Returns out. */
char *route_allow(unsigned methods, char *out, size_t outlen);

#endif
