/*
 * The Redis layer: one connection per process, at most one timeout per
 * call, a circuit breaker that stops trying a Redis that keeps failing
 * (every call is then KV_DOWN at once; kv.c says when it opens and
 * closes), and the scripts the cache needs (lease, fill, release,
 * invalidate), each one atomic step in Redis. Finds the master through
 * Redis Sentinel when given sentinels, and again after a failover. Knows
 * nothing of Postgres, HTTP or JSON.
 */
#ifndef ORDERS_KV_H
#define ORDERS_KV_H

#include <stddef.h>
#include <stdint.h>

#include "breaker.h"
#include "buf.h"

#define KV_SENTINELS_MAX	16

struct kv_hostport {
	char	host[256];
	int	port;
};

/*
 * Where Redis is. With sentinels (nsentinels > 0), host, port and path are
 * not used: the master's address is asked of the sentinels on every
 * connect (kv.c); user, password and db still are.
 */
struct kv_url {
	int	unix_socket;	/* 1: path, 0: host and port */
	char	host[256];
	int	port;
	char	path[108];
	char	user[128];	/* "" for the password-only AUTH */
	char	password[256];	/* "" for none */
	int	db;
	int			nsentinels;	/* 0: Redis is at host/path */
	struct kv_hostport	sentinels[KV_SENTINELS_MAX];
	char			master_name[128];
	char			sentinel_password[256];	/* "" for none */
};

enum kv_status {
	KV_OK,
	KV_MISS,	/* no such key */
	KV_DOWN,	/* Redis unreachable, slow or refusing: go without it */
	KV_LEASED,	/* kv_lease: ours to fill */
	KV_BUSY,	/* kv_lease, kv_peek: another client is filling */
	KV_STALE	/* kv_fill: a write came first; nothing stored */
};

/*
 * What kv_lease hands a filler: the generation it saw before loading, and
 * the lock token if it holds the lock.
 */
struct kv_ticket {
	char	gen[24];
	char	token[32];
	int	leased;
	char	epoch[48];	/* the guard's value when it was handed out;
				   "": no guard (kv_guard) */
};

/*
 * redis://[user:password@]host[:port][/db] or
 * unix://[user[:password]@]/path[?password=...&db=N] (redis-py's forms).
 * 0, or -1 with a reason in err.
 */
int kv_url_parse(const char *url, struct kv_url *u, char *err, size_t errlen);

/* s[0..len) as a decimal in [lo, hi] into *out: 0, or -1 (kv_url.c) */
int kv_parse_int(const char *s, size_t len, int lo, int hi, int *out);

/*
 * REDIS_SENTINELS ("host:port[,host:port...]", an IPv6 host in brackets)
 * and REDIS_MASTER_NAME into u's sentinels, to be called after
 * kv_url_parse. list NULL or "" leaves u without sentinels. 0, or -1 with
 * a reason in err.
 */
int kv_sentinels_parse(const char *list, const char *master_name,
    struct kv_url *u, char *err, size_t errlen);

struct kv;

/*
 * url is borrowed and must outlive the handle. Does not connect yet.
 * timeout_ms: the most one call waits for Redis, connect included.
 */
struct kv *kv_new(const struct kv_url *url, int timeout_ms);
void kv_free(struct kv *kv);	/* NULL-safe */

/*
 * The dataset guard, for a cache whose entries must not outlive the Redis
 * dataset they were written to (a failover, a restart; cache.c says why
 * and how). From now on, a connection serves no read and takes no fill
 * until meta_key holds the replication id of the master it is connected
 * to: when it does not, every key matching match that has a ttl is
 * deleted first (in steps, each operation's budget at a time; meanwhile
 * reads are KV_DOWN), then meta_key is set. Tickets carry the value they
 * were handed out under, and kv_fill stores nothing under another.
 * meta_key and match are borrowed and must outlive the handle; match is a
 * SCAN pattern. Idempotent.
 */
void kv_guard(struct kv *kv, const char *meta_key, const char *match);

/*
 * The circuit breaker's state: BREAKER_OPEN or BREAKER_HALF_OPEN while
 * this process is not trying Redis (or is trying it once, the probe).
 */
enum breaker_state kv_breaker_state(const struct kv *kv);

/* Failed operations (timeouts, I/O errors, failed connects) so far. */
unsigned long kv_failures(const struct kv *kv);

/* key's value into out (KV_OK), or KV_MISS: one GET. */
enum kv_status kv_get(struct kv *kv, const char *key, struct buf *out);

/*
 * A command in Redis's protocol (RESP) into out, as redisFormatCommandArgv
 * makes it; lens NULL: each argument's strlen. 0, or -1 when out of memory.
 */
int kv_format_command(struct buf *out, int argc, const char *const *argv,
    const size_t *lens);

/*
 * A read of key that GET did not answer: KV_OK with the value in out, and
 * in *ttl_ms the milliseconds it has left to live (-1: no ttl), when it is
 * there; else the generation now in gen_key goes into t, and the lock
 * lock_key (for lock_ms) is ours (KV_LEASED: load and fill) or another's
 * (KV_BUSY). One script, one round trip.
 */
enum kv_status kv_lease(struct kv *kv, const char *key, const char *gen_key,
    const char *lock_key, int lock_ms, struct buf *out, struct kv_ticket *t,
    long long *ttl_ms);

/*
 * While another client fills key: the value (KV_OK, in out, *ttl_ms as
 * kv_lease's), still being filled (KV_BUSY), or neither (KV_MISS: the
 * filler gave up or could not store; ask for the lease again).
 */
enum kv_status kv_peek(struct kv *kv, const char *key, const char *lock_key,
    struct buf *out, long long *ttl_ms);

/*
 * Stores value under key for ttl seconds, and records key in the set index
 * (if not NULL), in one atomic step, but only if gen_key still holds the
 * generation in t and the guard (kv_guard) the value t was handed out
 * under (else KV_STALE: a write, or a failover, came after t).
 * Releases t's lock either way.
 */
enum kv_status kv_fill(struct kv *kv, const char *key, const char *value,
    size_t len, int ttl, const char *index, const char *gen_key,
    const char *lock_key, const struct kv_ticket *t);

/* Releases t's lock (if it holds it) without storing anything. */
enum kv_status kv_release(struct kv *kv, const char *lock_key,
    const struct kv_ticket *t);

/*
 * Moves every generation in gens, then deletes keys and every key recorded
 * in indexes, with the indexes themselves: one atomic step. Tried even
 * while the breaker is open: its outcome matters to other processes.
 */
enum kv_status kv_invalidate(struct kv *kv, const char *const *keys,
    int nkeys, const char *const *indexes, int nindexes,
    const char *const *gens, int ngens);

/* KV_DOWN at once while the breaker is open (GET /healthz: "down"). */
enum kv_status kv_ping(struct kv *kv);

/*
 * The replica's bar (handlers_orders.c): the highest WAL position (in
 * bytes) of the writes whose invalidations were made, in key. Raising it
 * never lowers it, and goes whatever the breaker says, like an
 * invalidation; kv_lsn_get gives 0 when there is none.
 */
enum kv_status kv_lsn_raise(struct kv *kv, const char *key, uint64_t lsn);
enum kv_status kv_lsn_get(struct kv *kv, const char *key, uint64_t *lsn);

#endif
