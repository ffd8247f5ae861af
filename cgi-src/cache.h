/*
 * The caching module: the tutorial's decorator, in C. A handler hands it a
 * key and a loader; it answers from Redis when it can, else runs the loader
 * (Postgres) and stores what it returned for CACHE_TTL seconds. Writes ask
 * it to drop what they made stale. Redis trouble is never the caller's
 * trouble: the answer then comes from the loader, marked BYPASS.
 *
 * Keys are <prefix><namespace>:<id>, e.g. orders:count:customerid=42 or
 * orders:id:17. A namespace whose entries must all go at once (every count
 * changes with any write) is "indexed": each of its keys is also recorded in
 * the set <prefix>index:<namespace>, so no KEYS or SCAN is ever needed.
 * Beside them: <prefix>gen:<namespace>, a counter every invalidation
 * moves, and <prefix>lock:<namespace>:<id>, held briefly by the one reader
 * that fills a cold entry (cache.c says why these make fills safe); and
 * <prefix>meta:replid, the replication id of the Redis master the entries
 * were written to, so that none is served by another (a promoted replica,
 * a restarted Redis).
 */
#ifndef ORDERS_CACHE_H
#define ORDERS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "kv.h"

#define CACHE_KEY_MAX	256
#define CACHE_MEMO_SLOTS 4096	/* expiries this process remembers (24 bytes
				   each, touched as they are used) */

enum cache_status { CACHE_HIT, CACHE_MISS, CACHE_BYPASS };

/* What a loader found. Only LOAD_OK answers are stored. */
enum cache_load { LOAD_OK, LOAD_NOTFOUND, LOAD_UNAVAILABLE, LOAD_ERROR };

struct cache_ns {
	const char	*name;		/* "count", "id" */
	int		 indexed;
};

struct cache {
	struct kv	*kv;		/* borrowed */
	const char	*prefix;	/* borrowed */
	int		 ttl;		/* seconds an entry lives */
	int		 wait_ms;	/* longest wait for another's fill */
	int		 lock_ms;	/* how long a filler's lock holds */
	int		 fill_delay_ms;	/* tests only: pause before a fill */
	/* The dataset guard (cache.c), set up by the first cache_read. */
	int		 guarded;
	char		 guard_key[CACHE_KEY_MAX];	/* <prefix>meta:replid */
	char		 guard_match[CACHE_KEY_MAX];	/* <prefix>*, escaped */
	/* Entries' expiries it learned (cache.c: a hit is one GET). */
	struct cache_memo {
		uint64_t	 key;		/* etag_hash of the key; 0: none */
		uint64_t	 body;		/* etag_hash of the value */
		double		 expires_ms;	/* clock_ms(): at or before */
	}		 memo[CACHE_MEMO_SLOTS];
};

struct cache_result {
	enum cache_status status;
	double		 cache_ms;	/* time spent on Redis */
	double		 load_ms;	/* time spent in the loader */
	int		 waited;	/* waited for another's fill */
	int		 stored;	/* this read filled the entry */
	/*
	 * Seconds a client may reuse the answer: never more than the
	 * entry's remaining ttl (a hit), the ttl (a fill), else 0.
	 */
	int		 max_age;
	/*
	 * hashed: the body's etag_hash is in hash (the cache needs it for a
	 * hit or a fill: whoever makes the ETag need not hash it again).
	 */
	int		 hashed;
	uint64_t	 hash;
};

/* Appends the body of a LOAD_OK answer to body. */
typedef enum cache_load (*cache_loader)(void *arg, struct buf *body);

/* <prefix><ns>:<id> into out; the length, or -1 if it does not fit. */
int cache_key(char *out, size_t outlen, const char *prefix,
    const struct cache_ns *ns, const char *id);

/* <prefix>index:<ns>; the length, or -1 if it does not fit. */
int cache_index_key(char *out, size_t outlen, const char *prefix,
    const struct cache_ns *ns);

/* <prefix>gen:<ns>; the length, or -1 if it does not fit. */
int cache_gen_key(char *out, size_t outlen, const char *prefix,
    const struct cache_ns *ns);

/*
 * The answer for <ns>:<id> into body: from Redis, else from load(arg)
 * (stored on LOAD_OK, unless a write came meanwhile). Of concurrent misses
 * on one entry, one loads while the others wait up to wait_ms for it. res
 * says which and where the time went.
 */
enum cache_load cache_read(struct cache *c, const struct cache_ns *ns,
    const char *id, cache_loader load, void *arg, struct buf *body,
    struct cache_result *res);

/*
 * Drops the entry <ns>:<id> (ns may be NULL) and every entry of the indexed
 * namespaces all[0..nall). Call after the write has committed. 0, or -1 if
 * Redis could not be told (logged).
 */
int cache_invalidate(struct cache *c, const struct cache_ns *ns,
    const char *id, const struct cache_ns *const *all, int nall);

#endif
