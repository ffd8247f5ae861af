/*
 * The Redis layer: one connection per worker with short connect and command
 * timeouts, a pause of a second after a failure before it tries again, and
 * the two scripts the cache needs. Knows nothing of Postgres, HTTP or JSON.
 */
#ifndef ORDERS_KV_H
#define ORDERS_KV_H

#include <stddef.h>

#include "buf.h"

struct kv_url {
	int	unix_socket;	/* 1: path, 0: host and port */
	char	host[256];
	int	port;
	char	path[108];
	char	user[128];	/* "" for the password-only AUTH */
	char	password[256];	/* "" for none */
	int	db;
};

enum kv_status {
	KV_OK,
	KV_MISS,	/* no such key */
	KV_DOWN		/* Redis unreachable, slow or refusing: go without it */
};

/*
 * redis://[user:password@]host[:port][/db] or
 * unix:///path?password=...&db=N. 0, or -1 with a reason in err.
 */
int kv_url_parse(const char *url, struct kv_url *u, char *err, size_t errlen);

struct kv;

/* url is borrowed and must outlive the handle. Does not connect yet. */
struct kv *kv_new(const struct kv_url *url, int timeout_ms);
void kv_free(struct kv *kv);	/* NULL-safe */

enum kv_status kv_get(struct kv *kv, const char *key, struct buf *out);

/*
 * Stores value under key for ttl seconds and, when index is not NULL,
 * records key in the set index in the same atomic step (so an invalidation
 * of the index can never miss it).
 */
enum kv_status kv_fill(struct kv *kv, const char *key, const char *value,
    size_t len, int ttl, const char *index);

/*
 * Deletes keys[0..nkeys) and every key recorded in indexes[0..nindexes),
 * with the indexes themselves, in one atomic step.
 */
enum kv_status kv_invalidate(struct kv *kv, const char *const *keys,
    int nkeys, const char *const *indexes, int nindexes);

enum kv_status kv_ping(struct kv *kv);

#endif
