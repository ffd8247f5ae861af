/*
 * The caching module. Why a fill can never store stale data, and why a
 * cold key is loaded once:
 *
 * Generations. Every namespace has a generation counter in Redis
 * (<prefix>gen:<ns>). A reader that missed reads the generation (in the
 * lease script) *before* it queries Postgres; a writer, after its commit,
 * moves the generation and deletes the keys, in one script. The fill
 * script stores only if the generation is still the one the reader saw.
 * If the reader's snapshot predates a write, that write commits after the
 * snapshot, so its invalidation comes after the reader read the generation:
 * either it runs before the fill (the generation moved: the fill stores
 * nothing) or after it (it deletes what the fill stored). Both scripts are
 * atomic in Redis, so there is no third order. (An invalidation that has
 * more than a step's worth of index members to delete goes on in further
 * steps, members only, until the index is empty, and the write is not
 * answered before: Redis answers others in between, and an entry not yet
 * deleted is served only as it is between a commit and its invalidation.)
 * Generations have no ttl and the eviction policy is volatile-*, so they
 * are never evicted; a Redis restart empties the cache and resets them,
 * which only makes fills refuse.
 *
 * Single flight. The lease script also takes a short lock for the key
 * (SET NX PX) for the first reader; the others see it held and poll the
 * key (with the lock) for up to CACHE_WAIT_MS: they take the value when it
 * is stored, ask for the lease again if the holder gave up, and past the
 * wait load it themselves (their fill is still guarded by the generation).
 * So of N concurrent misses on one key, one queries Postgres.
 *
 * Failovers. Replication is asynchronous: an invalidation the master
 * acknowledged may never reach the replica that Sentinel promotes when the
 * master dies, so the new master can hold entries a committed write
 * deleted, and generations that a lease handed out before moved on the
 * old master only. The guard (kv_guard) closes that. <prefix>meta:replid
 * holds the replication id (INFO: master_replid) of the master the entries
 * were written to. A promoted replica takes a new replication id, and so
 * does a Redis that restarts; the key itself is replicated like any other,
 * so on a promoted replica it names the old master. On every new
 * connection (kv.c: one GET in the handshake's round trip, nothing per
 * request), before any read or fill, a process compares the two; when they
 * differ it deletes every key under the prefix that has a ttl (entries and
 * locks; generations, indexes and the guard have none), in SCAN steps of
 * at most one operation's budget each, and sets the guard when the scan is
 * over. Until then it serves no read from Redis (BYPASS) and fills
 * nothing. Why that holds:
 *
 * - Nobody reads or fills before a full scan is over. Every process checks
 *   the guard on each connection it makes, and the guard only takes the new
 *   id in the step that ends a scan; SCAN returns every key that was there
 *   for its whole length, so every entry from before the failover is gone
 *   by then. A process connected before the failover was connected to the
 *   old master: it learns of the failover through the connection (killed
 *   with the master, or by Sentinel's CLIENT KILL when it reconfigures a
 *   demoted master, or a READONLY reply) and connects again, to be checked
 *   like any other.
 * - Two processes flushing at once: both delete, both set the same id.
 *   The second may go on deleting after the first has finished and others
 *   have filled again; it only ever deletes entries and locks, which costs
 *   a miss (or a second loader) but never serves anything stale. It keeps
 *   generations and indexes, so a fill's index membership and the
 *   generation check stay as they were between fills and invalidations
 *   (deleting a generation under a lease, or an index under a live entry,
 *   would let a stale fill through, or keep an entry out of the next
 *   invalidation).
 * - A fill during the flush, or one leased before the failover: a lease
 *   hands out, with the generation, the guard's value it was served under;
 *   the fill script stores only if the guard still holds it. A lease taken
 *   on the old master carries the old id, and on the new master the guard
 *   holds the new one before anyone may fill there. Its generation, which
 *   the new master may hold an older value of, is never compared across
 *   the failover.
 * - Invalidations need no check: they only move generations and delete, so
 *   they go at once to whatever master there is, even mid-flush.
 *
 * What it does not cover: a master cut off from the sentinels but not from
 * the workers keeps answering them until Sentinel demotes it (split brain;
 * min-replicas-to-write on the masters shortens that); and a Redis that
 * restarts from a dump and keeps its replication id (persistence, which
 * deploy.sh turns off) keeps the dump's entries.
 */
#include "cache.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "etag.h"
#include "log.h"

#define MAX_INDEXES	4
#define POLL_FIRST_MS	2
#define POLL_MAX_MS	16

/* The names of one entry's keys in Redis. */
struct entry_keys {
	char	key[CACHE_KEY_MAX];
	char	index[CACHE_KEY_MAX];
	char	gen[CACHE_KEY_MAX];
	char	lock[CACHE_KEY_MAX];
};

/*
 * a, b, c, d and e (NULL: nothing) one after another into out, terminated:
 * the length, or -1 when it does not fit. Not snprintf: a hit names its
 * keys on every request, and "%s%s:%s" cost it a thousand instructions
 * each (callgrind).
 */
static int
join(char *out, size_t outlen, const char *a, const char *b, const char *c,
    const char *d, const char *e)
{
	const char *parts[5] = { a, b, c, d, e };
	size_t len = 0;
	int i;

	if (outlen == 0)
		return -1;
	out[0] = '\0';
	for (i = 0; i < 5; i++)
		if (parts[i] != NULL &&
		    str_add(out, outlen, &len, parts[i]) == -1)
			return -1;
	return (int)len;
}

int
cache_key(char *out, size_t outlen, const char *prefix,
    const struct cache_ns *ns, const char *id)
{
	return join(out, outlen, prefix, ns->name, ":", id, NULL);
}

int
cache_index_key(char *out, size_t outlen, const char *prefix,
    const struct cache_ns *ns)
{
	return join(out, outlen, prefix, "index:", ns->name, NULL, NULL);
}

int
cache_gen_key(char *out, size_t outlen, const char *prefix,
    const struct cache_ns *ns)
{
	return join(out, outlen, prefix, "gen:", ns->name, NULL, NULL);
}

/*
 * The keys besides the entry's own: only a read that goes past a plain
 * GET (the lease, the fill) needs them, so a hit does not name them.
 */
static int
other_keys(struct entry_keys *k, const char *prefix,
    const struct cache_ns *ns, const char *id)
{
	if (cache_index_key(k->index, sizeof(k->index), prefix, ns) == -1 ||
	    cache_gen_key(k->gen, sizeof(k->gen), prefix, ns) == -1 ||
	    join(k->lock, sizeof(k->lock), prefix, "lock:", ns->name, ":",
	    id) == -1)
		return -1;
	return 0;
}

/*
 * The memo: a hit in one GET. A hit answers Cache-Control: max-age no
 * longer than the entry has left to live, which GET alone does not say;
 * PTTL beside it would, for a second command on every hit. So each
 * process remembers, per key (a slot per hash, the last one wins), the
 * value it last saw there and a time at or before which that entry
 * expires: the ttl when it filled it, counted from before its SET was
 * sent, or the ttl the lease script answered with the value, counted from
 * before the script was sent. A later read of the key is a GET alone while
 * the memo has at least a second left (any other read goes to the lease,
 * which answers a hit as well). If the value is the one remembered, the
 * entry is the one remembered or a later fill of the same value (a key
 * holds one entry at a time, and every fill lives the same ttl from its
 * own SET), so it expires no sooner than remembered, and max-age counts
 * from the memo. Another value is another entry: max-age 0 this once, and
 * the next read goes to the lease. What it cannot see: a ttl shortened by
 * hand (redis-cli EXPIRE), or processes of one Redis prefix with different
 * CACHE_TTL; a client's copy may then outlive the entry, by no more than
 * the difference.
 */
static struct cache_memo *
memo_slot(struct cache *c, const char *key, uint64_t *kh)
{
	*kh = etag_hash(key, strlen(key)) | 1;	/* never 0: "none" */
	return &c->memo[*kh % CACHE_MEMO_SLOTS];
}

/* bh: the body's etag_hash */
static void
memo_learn(struct cache_memo *m, uint64_t kh, uint64_t bh, double expires_ms)
{
	m->key = kh;
	m->body = bh;
	m->expires_ms = expires_ms;
}

/*
 * Seconds a client may keep a hit whose body has etag_hash bh, rounded
 * down: never past the entry.
 */
static int
hit_max_age(struct cache_memo *m, uint64_t kh, uint64_t bh, long long ttl_ms,
    double sent_ms)
{
	double left;

	if (ttl_ms >= 0) {		/* the lease told: learn it */
		memo_learn(m, kh, bh, sent_ms + (double)ttl_ms);
		return (int)(ttl_ms / 1000);
	}
	if (ttl_ms == -1 || m->key != kh || m->body != bh) {
		m->key = 0;		/* no ttl, or another entry */
		return 0;
	}
	left = m->expires_ms - clock_ms();
	return left > 0 ? (int)(left / 1000) : 0;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * Another client holds the lease: wait for its value until deadline.
 * KV_OK (value in body), KV_MISS (it gave up: lease again), KV_BUSY (the
 * wait is over), KV_DOWN.
 */
static enum kv_status
wait_for_fill(struct cache *c, const struct entry_keys *k, struct buf *body,
    double deadline, long long *ttl_ms)
{
	enum kv_status ks = KV_BUSY;
	int step = POLL_FIRST_MS;

	while (ks == KV_BUSY && clock_ms() < deadline) {
		sleep_ms(step);
		if (step < POLL_MAX_MS)
			step *= 2;
		ks = kv_peek(c->kv, k->key, k->lock, body, ttl_ms);
	}
	return ks;
}

/*
 * A miss: take the lease, or wait for whoever has it. KV_OK when the value
 * came from the cache after all (in body), KV_LEASED / KV_BUSY when we are
 * to load (t says with which generation, and whether we hold the lock),
 * KV_DOWN.
 */
static enum kv_status
lease_or_wait(struct cache *c, const struct entry_keys *k, struct buf *body,
    struct kv_ticket *t, struct cache_result *res, long long *ttl_ms)
{
	double deadline = clock_ms() + c->wait_ms;
	enum kv_status ks;

	for (;;) {
		ks = kv_lease(c->kv, k->key, k->gen, k->lock, c->lock_ms, body,
		    t, ttl_ms);
		if (ks != KV_BUSY)
			return ks;
		res->waited = 1;
		ks = wait_for_fill(c, k, body, deadline, ttl_ms);
		if (ks == KV_BUSY) {
			log_debug("cache: waited %d ms for %s, loading it too",
			    c->wait_ms, k->key);
			return KV_BUSY;
		}
		if (ks != KV_MISS)
			return ks;
	}
}

/*
 * Before the first read: the guard (see the top of this file) on
 * <prefix>meta:replid, for every key matching <prefix>*, the prefix's own
 * glob characters escaped.
 */
static void
cache_guard(struct cache *c)
{
	size_t i, n = 0;

	c->guarded = 1;
	if (join(c->guard_key, sizeof(c->guard_key), c->prefix, "meta:replid",
	    NULL, NULL, NULL) == -1)
		goto toolong;
	for (i = 0; c->prefix[i] != '\0'; i++) {
		if (n + 3 >= sizeof(c->guard_match))
			goto toolong;
		if (strchr("*?[]\\", c->prefix[i]) != NULL)
			c->guard_match[n++] = '\\';
		c->guard_match[n++] = c->prefix[i];
	}
	c->guard_match[n++] = '*';
	c->guard_match[n] = '\0';
	kv_guard(c->kv, c->guard_key, c->guard_match);
	return;
toolong:
	log_error("cache: prefix too long for the guard's key; entries may "
	    "outlive a failover");
}

enum cache_load
cache_read(struct cache *c, const struct cache_ns *ns, const char *id,
    cache_loader load, void *arg, struct buf *body, struct cache_result *res)
{
	struct entry_keys k;
	struct kv_ticket t;
	struct cache_memo *m;
	enum cache_load lr;
	enum kv_status ks;
	long long ttl_ms = -2;	/* -2: not asked (the memo knows) */
	uint64_t kh;
	double t0, t1;

	res->cache_ms = res->load_ms = 0;
	res->waited = res->stored = res->max_age = res->hashed = 0;
	res->status = CACHE_BYPASS;
	if (cache_key(k.key, sizeof(k.key), c->prefix, ns, id) == -1) {
		log_error("cache: key too long for %s", ns->name);
		return LOAD_ERROR;
	}
	if (!c->guarded)
		cache_guard(c);
	/*
	 * A key the memo knows was there a moment ago: GET alone. Any other
	 * goes straight to the lease, which answers with the value and its
	 * ttl when there is one: a cold miss is two round trips (the lease,
	 * the fill), as in the tutorial, and a hit on a key new to this
	 * process runs one script and teaches the memo.
	 */
	m = memo_slot(c, k.key, &kh);
	t0 = t1 = clock_ms();
	ks = KV_MISS;
	if (m->key == kh && m->expires_ms - t0 >= 1000)
		ks = kv_get(c->kv, k.key, body);
	if (ks == KV_MISS) {
		if (other_keys(&k, c->prefix, ns, id) == -1) {
			log_error("cache: key too long for %s", ns->name);
			return LOAD_ERROR;
		}
		t1 = clock_ms();
		ks = lease_or_wait(c, &k, body, &t, res, &ttl_ms);
	}
	res->cache_ms = clock_ms() - t0;
	if (ks == KV_OK) {
		res->status = CACHE_HIT;
		res->hash = etag_hash(body->data, body->len);
		res->hashed = 1;
		res->max_age = hit_max_age(m, kh, res->hash, ttl_ms, t1);
		return LOAD_OK;
	}
	if (ks != KV_DOWN)
		res->status = CACHE_MISS;
	buf_reset(body);
	t0 = clock_ms();
	lr = load(arg, body);
	t1 = clock_ms();
	res->load_ms = t1 - t0;
	if (res->status == CACHE_BYPASS)
		return lr;
	if (lr != LOAD_OK) {
		kv_release(c->kv, k.lock, &t);
	} else {
		if (c->fill_delay_ms > 0)	/* tests only: widen the race */
			sleep_ms(c->fill_delay_ms);
		t0 = clock_ms();
		ks = kv_fill(c->kv, k.key, body->data, body->len, c->ttl,
		    ns->indexed ? k.index : NULL, k.gen, k.lock, &t);
		if (ks == KV_OK) {
			res->stored = 1;
			res->max_age = c->ttl;
			res->hash = etag_hash(body->data, body->len);
			res->hashed = 1;
			memo_learn(m, kh, res->hash, t0 + c->ttl * 1000.0);
		}
		else if (ks == KV_STALE)
			log_debug("cache: %s changed while loading, not stored",
			    k.key);
		else
			res->status = CACHE_BYPASS;
	}
	res->cache_ms += clock_ms() - t1;
	return lr;
}

int
cache_invalidate(struct cache *c, const struct cache_ns *ns, const char *id,
    const struct cache_ns *const *all, int nall)
{
	char key[CACHE_KEY_MAX], indexes[MAX_INDEXES][CACHE_KEY_MAX];
	char gens[MAX_INDEXES + 1][CACHE_KEY_MAX];
	const char *keys[1], *idx[MAX_INDEXES], *gen[MAX_INDEXES + 1];
	int nkeys = 0, ngens = 0, i;

	if (nall > MAX_INDEXES)
		return -1;
	if (ns != NULL) {
		if (cache_key(key, sizeof(key), c->prefix, ns, id) == -1 ||
		    cache_gen_key(gens[ngens], sizeof(gens[ngens]), c->prefix,
		    ns) == -1)
			return -1;
		keys[nkeys++] = key;
		gen[ngens] = gens[ngens];
		ngens++;
	}
	for (i = 0; i < nall; i++) {
		if (cache_index_key(indexes[i], sizeof(indexes[i]), c->prefix,
		    all[i]) == -1)
			return -1;
		idx[i] = indexes[i];
		if (all[i] == ns)
			continue;	/* its generation moves already */
		if (cache_gen_key(gens[ngens], sizeof(gens[ngens]), c->prefix,
		    all[i]) == -1)
			return -1;
		gen[ngens] = gens[ngens];
		ngens++;
	}
	if (kv_invalidate(c->kv, keys, nkeys, idx, nall, gen, ngens) == KV_OK)
		return 0;
	log_error("cache: invalidation failed; entries may stay stale until "
	    "their ttl (%d s)", c->ttl);
	return -1;
}
