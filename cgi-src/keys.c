#include "keys.h"

#include <stdio.h>

/* Every count may change with any write, so counts are indexed: one
 * invalidation drops them all. Orders are indexed too, for
 * orders_invalidate_all(). */
const struct cache_ns orders_ns_count = { "count", 1 };
const struct cache_ns orders_ns_order = { "id", 1 };

static const struct cache_ns *const counts_only[] = { &orders_ns_count };
static const struct cache_ns *const everything[] =
    { &orders_ns_count, &orders_ns_order };

int
orders_invalidate_order(struct cache *c, int32_t orderid)
{
	char id[16];

	snprintf(id, sizeof(id), "%d", (int)orderid);
	return cache_invalidate(c, &orders_ns_order, id, counts_only,
	    sizeof(counts_only) / sizeof(counts_only[0]));
}

int
orders_invalidate_all(struct cache *c)
{
	return cache_invalidate(c, NULL, NULL, everything,
	    sizeof(everything) / sizeof(everything[0]));
}

int
orders_bar_key(char out[CACHE_KEY_MAX], const char *prefix)
{
	int n = snprintf(out, CACHE_KEY_MAX, "%smeta:lsn", prefix);

	return n >= 0 && n < CACHE_KEY_MAX ? 0 : -1;
}

int
orders_raise_bar(struct kv *kv, const char *bar_key, const uint64_t *lsn)
{
	if (lsn != NULL && kv_lsn_raise(kv, bar_key, *lsn) == KV_OK)
		return 0;
	return kv_invalidate(kv, &bar_key, 1, NULL, 0, NULL, 0) == KV_OK ?
	    0 : -1;
}
