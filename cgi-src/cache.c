#include "cache.h"

#include <stdio.h>

#include "clock.h"
#include "log.h"

#define MAX_INDEXES	4

static int
fits(int n, size_t outlen)
{
	return n >= 0 && (size_t)n < outlen ? n : -1;
}

int
cache_key(char *out, size_t outlen, const char *prefix,
    const struct cache_ns *ns, const char *id)
{
	return fits(snprintf(out, outlen, "%s%s:%s", prefix, ns->name, id),
	    outlen);
}

int
cache_index_key(char *out, size_t outlen, const char *prefix,
    const struct cache_ns *ns)
{
	return fits(snprintf(out, outlen, "%sindex:%s", prefix, ns->name),
	    outlen);
}

enum cache_load
cache_read(struct cache *c, const struct cache_ns *ns, const char *id,
    cache_loader load, void *arg, struct buf *body, struct cache_result *res)
{
	char key[CACHE_KEY_MAX], index[CACHE_KEY_MAX];
	enum cache_load lr;
	enum kv_status ks;
	double t0, t1;

	res->cache_ms = res->load_ms = 0;
	if (cache_key(key, sizeof(key), c->prefix, ns, id) == -1 ||
	    cache_index_key(index, sizeof(index), c->prefix, ns) == -1) {
		log_error("cache: key too long for %s", ns->name);
		return LOAD_ERROR;
	}
	t0 = clock_ms();
	ks = kv_get(c->kv, key, body);
	res->cache_ms = clock_ms() - t0;
	if (ks == KV_OK) {
		res->status = CACHE_HIT;
		return LOAD_OK;
	}
	res->status = ks == KV_MISS ? CACHE_MISS : CACHE_BYPASS;
	buf_reset(body);
	t0 = clock_ms();
	lr = load(arg, body);
	t1 = clock_ms();
	res->load_ms = t1 - t0;
	if (lr != LOAD_OK || res->status == CACHE_BYPASS)
		return lr;
	if (kv_fill(c->kv, key, body->data, body->len, c->ttl,
	    ns->indexed ? index : NULL) != KV_OK)
		res->status = CACHE_BYPASS;
	res->cache_ms += clock_ms() - t1;
	return LOAD_OK;
}

int
cache_invalidate(struct cache *c, const struct cache_ns *ns, const char *id,
    const struct cache_ns *const *all, int nall)
{
	char key[CACHE_KEY_MAX], indexes[MAX_INDEXES][CACHE_KEY_MAX];
	const char *keys[1], *idx[MAX_INDEXES];
	int nkeys = 0, i;

	if (nall > MAX_INDEXES)
		return -1;
	if (ns != NULL) {
		if (cache_key(key, sizeof(key), c->prefix, ns, id) == -1)
			return -1;
		keys[nkeys++] = key;
	}
	for (i = 0; i < nall; i++) {
		if (cache_index_key(indexes[i], sizeof(indexes[i]), c->prefix,
		    all[i]) == -1)
			return -1;
		idx[i] = indexes[i];
	}
	if (kv_invalidate(c->kv, keys, nkeys, idx, nall) == KV_OK)
		return 0;
	log_error("cache: invalidation failed; entries may stay stale until "
	    "their ttl (%d s)", c->ttl);
	return -1;
}
