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

/*
 * The replica's bar (handlers_orders.c, read_source): <prefix>meta:lsn, a
 * sorted set whose score is the primary's WAL position past every write
 * invalidated so far. Its name into out (which holds CACHE_KEY_MAX
 * bytes); 0, or -1 when the prefix is too long.
 */
int orders_bar_key(char out[CACHE_KEY_MAX], const char *prefix);

/*
 * A write's part of the bar, before its invalidation: raised to *lsn, the
 * primary's position at or past the write's commit; or, with lsn NULL
 * (that position could not be had), dropped, like an entry, so that the
 * next miss sets it again from the primary's position then. 0, or -1 when
 * Redis took neither (the invalidation would fail too).
 */
int orders_raise_bar(struct kv *kv, const char *bar_key,
    const uint64_t *lsn);

#endif
