/*
 * What the orders resource keeps in the cache, and what a write to it makes
 * stale: shared by the handlers and the invalidator, so both drop the same
 * entries.
 */
#ifndef ORDERS_KEYS_H
#define ORDERS_KEYS_H

#include <stdint.h>

#include "cache.h"

extern const struct cache_ns orders_ns_count;	/* <prefix>count:<criteria> */
extern const struct cache_ns orders_ns_order;	/* <prefix>id:<orderid> */

/* After a committed write to one order: its entry and every count. */
int orders_invalidate_order(struct cache *c, int32_t orderid);

/* After writes to orders we cannot name: every entry of both kinds. */
int orders_invalidate_all(struct cache *c);

#endif
