/*
 * The Redis layer. How long Redis may hold a worker, and when it is not
 * asked at all:
 *
 * One operation, one timeout. Each call of kv.h (kv_get, kv_lease, ...)
 * has REDIS_TIMEOUT_MS in all for the network: the connect, the handshake
 * (AUTH, SELECT and the SCRIPT LOADs, pipelined: one round trip), its
 * command or two (EVALSHA, then EVAL on NOSCRIPT) and, when Redis had
 * closed the connection while we were not using it (a restart), the new
 * connection and the command again: they get what the EOF left of the
 * budget, not a timeout of their own. Before each round trip the socket's
 * timeout is cut to what is left. A timeout is never retried: Redis is
 * slow or hung, and a second wait would double the cost.
 *
 * Failures. A timeout, an I/O error, a connect or a handshake that did
 * not succeed. An answer, even an error reply, is not one: Redis is there.
 * A failure drops the connection, so a late reply can never be taken for
 * the answer to the next command. A connection Redis closed while idle
 * (EOF, reset, broken pipe) is not a failure but replaced at once, as
 * above: the first request after a Redis restart is served from the cache.
 *
 * One failure per request. After a failure no call goes to Redis for
 * HOLD_MS: the next calls of the same request (cache.c stops at its first
 * KV_DOWN anyway, but not every caller need know to) and of the requests
 * right behind it return KV_DOWN at once rather than each wait a timeout.
 * HOLD_MS is short enough that BREAKER_THRESHOLD failures in a row still
 * come well within a second of Redis hanging when requests keep coming: 3 x
 * 100 ms of timeouts + 2 x 100 ms of hold-off, at the default timeout.
 *
 * The circuit breaker (breaker.h), one per process. BREAKER_THRESHOLD
 * failures in a row open it: for about OPEN_MS (+-JITTER_PCT %, seeded per
 * process, so that workers do not probe in step), doubling with each
 * failed probe up to about OPEN_MAX_MS, every call returns KV_DOWN at once,
 * without a system call. Then the next call is the probe: an answer closes
 * the breaker, a failure opens it again. Each change is logged once. The
 * cap is low on purpose: a probe of a hung Redis costs one request one
 * timeout, every OPEN_MAX_MS at most, while each second of the cap is a
 * second more without the cache once Redis is back.
 *
 * Where Redis is. With REDIS_SENTINELS, every connect first asks the
 * sentinels which address the master has (kv_discover), within the same
 * budget; REDIS_URL then only gives the password and the db. Every
 * connection, sentinels or not, checks in its handshake's round trip that
 * it reached a master (INFO replication: role), and learns the master's
 * replication id (for the guard, kv_guard and cache.c). A connection is
 * dropped and the master looked for again when it breaks (a dead master
 * resets it; Sentinel kills the clients of one it demotes) or a reply says
 * it is no longer the master (READONLY, MASTERDOWN): at once, in what is
 * left of the budget, as for a connection closed while idle. Until a new
 * master is found that is a failed connect like any other: the breaker
 * spaces the attempts, and reads go to Postgres (BYPASS).
 *
 * Invalidations are the exception: kv_invalidate goes to Redis whatever
 * the breaker or the hold-off say (one operation, one timeout, like any
 * other), and its outcome counts. The breaker is this process's: other
 * workers may be using Redis meanwhile, and a skipped invalidation would
 * let them serve what a committed write made stale for a whole TTL. A
 * write pays for that with one timeout at most.
 */
#include "kv.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "log.h"
#include "valid.h"

#define HOLD_MS			100	/* after a failure: no call */
#define BREAKER_THRESHOLD	3	/* failures in a row: open */
#define OPEN_MS			1000	/* the first open interval */
#define OPEN_MAX_MS		2000	/* doubling up to this */
#define JITTER_PCT		25
#define MAX_SCRIPT_ITEMS	16
/* Index members one invalidation step deletes: some 3 ms of Redis time
   (entries with a ttl), during which it answers nobody else. */
#define INVALIDATE_STEP		1000
#define INVALIDATE_STEPS_MAX	10000	/* 10 million members, some 30 s */


#define FLUSH_BATCH		"1000"	/* SCAN's COUNT per flush step */

enum script { SCRIPT_LEASE, SCRIPT_PEEK, SCRIPT_FILL,
	SCRIPT_RELEASE, SCRIPT_INVALIDATE, SCRIPT_FLUSH, NSCRIPTS };

static const struct {
	const char	*name;
	const char	*source;
} scripts[NSCRIPTS] = {
	/*
	 * KEYS: entry, generation, lock. ARGV: token, lock ms.
	 * {1, value, ms to live} when the entry is there after all; else {2,
	 * generation} with the lock taken for us, or {3, generation} when
	 * another client holds it.
	 */
	[SCRIPT_LEASE] = { "lease",
	    "local v = redis.call('GET', KEYS[1])\n"
	    "if v then return {1, v, redis.call('PTTL', KEYS[1])} end\n"
	    "local g = redis.call('GET', KEYS[2]) or ''\n"
	    "if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
	    "  return {2, g}\n"
	    "end\n"
	    "return {3, g}\n" },
	/*
	 * KEYS: entry, lock. {1, value, ms to live} when the entry is there,
	 * {2} while the lock is held (the filler is at work), {0} neither.
	 */
	[SCRIPT_PEEK] = { "peek",
	    "local v = redis.call('GET', KEYS[1])\n"
	    "if v then return {1, v, redis.call('PTTL', KEYS[1])} end\n"
	    "if redis.call('EXISTS', KEYS[2]) == 1 then return {2} end\n"
	    "return {0}\n" },
	/*
	 * KEYS: entry, generation, lock, [guard], [index]. ARGV: value, ttl,
	 * the generation seen before loading, token, the guard's value then
	 * ('' when there is no guard, and no guard key). Releases our lock;
	 * stores only if neither the generation nor the guard has moved (1),
	 * else nothing (0). The index has no ttl, so the eviction policy
	 * (volatile-*) never drops it while members live; two random members
	 * are checked per fill and removed once expired, which keeps it near
	 * the live set's size.
	 */
	[SCRIPT_FILL] = { "fill",
	    "if redis.call('GET', KEYS[3]) == ARGV[4] then\n"
	    "  redis.call('DEL', KEYS[3])\n"
	    "end\n"
	    "local ix = 4\n"
	    "if ARGV[5] ~= '' then\n"
	    "  if redis.call('GET', KEYS[4]) ~= ARGV[5] then return 0 end\n"
	    "  ix = 5\n"
	    "end\n"
	    "if (redis.call('GET', KEYS[2]) or '') ~= ARGV[3] then return 0 end\n"
	    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
	    "local index = KEYS[ix]\n"
	    "if index then\n"
	    "  for _, m in ipairs(redis.call('SRANDMEMBER', index, 2)) do\n"
	    "    if redis.call('EXISTS', m) == 0 then\n"
	    "      redis.call('SREM', index, m)\n"
	    "    end\n"
	    "  end\n"
	    "  redis.call('SADD', index, KEYS[1])\n"
	    "end\n"
	    "return 1\n" },
	/* KEYS: lock. ARGV: token. */
	[SCRIPT_RELEASE] = { "release",
	    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
	    "  return redis.call('DEL', KEYS[1])\n"
	    "end\n"
	    "return 0\n" },
	/*
	 * KEYS: ARGV[1] plain keys, ARGV[2] indexes, then generations; ARGV[3]:
	 * the most index members to delete. Moves every generation first, so
	 * no fill that loaded before this can store afterwards, then deletes
	 * the keys and up to that many members of the indexes (each member's
	 * entry, and the member). {deleted, 1 if an index may hold more}:
	 * kv_invalidate calls it again, without keys or generations, until
	 * none does, so that Redis answers others between the steps of a
	 * write that made many counts stale.
	 */
	[SCRIPT_INVALIDATE] = { "invalidate",
	    "local n, m = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
	    "local step = tonumber(ARGV[3])\n"
	    "for i = n + m + 1, #KEYS do redis.call('INCR', KEYS[i]) end\n"
	    "local deleted, more = 0, 0\n"
	    "for i = 1, n do deleted = deleted + redis.call('DEL', KEYS[i]) end\n"
	    "for i = n + 1, n + m do\n"
	    "  local members = redis.call('SPOP', KEYS[i], step)\n"
	    "  for j = 1, #members, 500 do\n"
	    "    local k = math.min(j + 499, #members)\n"
	    "    deleted = deleted + redis.call('DEL', unpack(members, j, k))\n"
	    "  end\n"
	    "  if #members >= step then more = 1 end\n"
	    "end\n"
	    "return {deleted, more}\n" },
	/*
	 * One step of the guard's flush. KEYS: the guard. ARGV: SCAN cursor,
	 * pattern, count, the master's replication id. Deletes the keys of
	 * one SCAN step that have a ttl (entries, locks: what a reader could
	 * be served, or wait for), not those without (generations, indexes,
	 * the guard), except the replica's bar (the one sorted set, see
	 * kv_lsn_raise): the old master may have taken raises the new one
	 * never got, and a bar too low lets a stale replica fill the cache;
	 * gone, it is set again from the primary's position. And it sets the
	 * guard when the scan is over. {next cursor,
	 * keys deleted}. Over at once when the guard holds the id already:
	 * another process's scan ended, and it saw every key ours would.
	 */
	[SCRIPT_FLUSH] = { "flush",
	    "if redis.call('GET', KEYS[1]) == ARGV[4] then return {'0', 0} end\n"
	    "local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2],"
	    " 'COUNT', ARGV[3])\n"
	    "local n = 0\n"
	    "for _, k in ipairs(r[2]) do\n"
	    "  if redis.call('PTTL', k) >= 0 or"
	    " redis.call('TYPE', k)['ok'] == 'zset' then\n"
	    "    redis.call('UNLINK', k)\n"
	    "    n = n + 1\n"
	    "  end\n"
	    "end\n"
	    "if r[1] == '0' then redis.call('SET', KEYS[1], ARGV[4]) end\n"
	    "return {r[1], n}\n" },
};

struct kv {
	const struct kv_url	*url;		/* borrowed */
	int			 timeout_ms;	/* one operation's budget */
	redisContext		*ctx;		/* NULL while disconnected */
	double			 deadline_ms;	/* the operation in hand's end */
	int			 sock_ms;	/* ctx's socket timeout; -1: unset */
	const char		*lapse;		/* why a step failed, when ctx's
						   err does not say */
	char			 errbuf[128];	/* an error reply, for lapse */
	struct breaker		 breaker;
	char			 sha[NSCRIPTS][41];
	unsigned long		 tokens;	/* lease tokens handed out */
	long			 pid;		/* ours, for the tokens: getpid() once */
	unsigned long		 failures;	/* kv_fail calls, ever */
	int			 forced;	/* the operation in hand's */
	int			 not_ready;	/* it gave up: the guard's flush
						   is not over (no failure) */
	/* Sentinels: where ctx is, and whom to ask first next time. */
	struct kv_hostport	 master;
	int			 sentinel_next;
	/* The guard (kv_guard; NULL: none) and ctx's standing with it. */
	const char		*guard_key;
	const char		*guard_match;
	char			 replid[48];	/* ctx's master's; "": unknown */
	int			 verified;	/* ctx may serve reads and fills */
	char			 epoch[48];	/* what tickets carry on ctx */
	char			 cursor[24];	/* the flush's, while !verified */
	unsigned long		 flushed;	/* keys it deleted so far */
	double			 flush_start_ms;
	int			 info_warned;	/* INFO refused: said once */
};

struct kv *
kv_new(const struct kv_url *url, int timeout_ms)
{
	static const struct breaker_config bc = {
		BREAKER_THRESHOLD, HOLD_MS, OPEN_MS, OPEN_MAX_MS, JITTER_PCT
	};
	struct timespec ts;
	struct kv *kv;

	if ((kv = calloc(1, sizeof(*kv))) == NULL)
		return NULL;
	kv->url = url;
	kv->timeout_ms = timeout_ms;
	kv->sock_ms = -1;
	kv->pid = (long)getpid();
	clock_gettime(CLOCK_REALTIME, &ts);
	breaker_init(&kv->breaker, &bc, ((unsigned long long)getpid() << 32) ^
	    (unsigned long long)ts.tv_sec * 1000000000ULL ^
	    (unsigned long long)ts.tv_nsec ^ (uintptr_t)kv);
	return kv;
}

static void
kv_disconnect(struct kv *kv)
{
	if (kv->ctx != NULL)
		redisFree(kv->ctx);
	kv->ctx = NULL;
	kv->verified = 0;
	kv->epoch[0] = '\0';
}

void
kv_guard(struct kv *kv, const char *meta_key, const char *match)
{
	if (kv->guard_key != NULL)
		return;
	kv->guard_key = meta_key;
	kv->guard_match = match;
	/* Its handshake did not check the guard: the next one will. */
	kv_disconnect(kv);
}

void
kv_free(struct kv *kv)
{
	if (kv == NULL)
		return;
	kv_disconnect(kv);
	free(kv);
}

enum breaker_state
kv_breaker_state(const struct kv *kv)
{
	return kv->breaker.state;
}

unsigned long
kv_failures(const struct kv *kv)
{
	return kv->failures;
}

/* Why the last step failed, in words for the log. */
static const char *
kv_reason(const struct kv *kv)
{
	if (kv->ctx != NULL && kv->ctx->err) {
		/* hiredis's word for SO_RCVTIMEO running out (EAGAIN) */
		if (strstr(kv->ctx->errstr, "temporarily unavailable") != NULL)
			return "timed out";
		return kv->ctx->errstr;
	}
	return kv->lapse != NULL ? kv->lapse : "unexpected reply";
}

/* Milliseconds left of the operation's budget, 0 when none. */
static int
kv_left_ms(struct kv *kv)
{
	double left = kv->deadline_ms - clock_ms();

	if (left < 1) {
		kv->lapse = "timed out";
		return 0;
	}
	return left >= kv->timeout_ms ? kv->timeout_ms : (int)left + 1;
}

static struct timeval
ms_timeval(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	return tv;
}

/* Cuts the socket's timeout to what is left of the budget; -1: nothing. */
static int
kv_budget(struct kv *kv)
{
	int ms;

	if ((ms = kv_left_ms(kv)) == 0)
		return -1;
	if (ms != kv->sock_ms) {
		if (redisSetTimeout(kv->ctx, ms_timeval(ms)) != REDIS_OK)
			return -1;
		kv->sock_ms = ms;
	}
	return 0;
}

/* Redis answered: the breaker closes, if it was not. */
static void
kv_answered(struct kv *kv)
{
	if (breaker_success(&kv->breaker) == BREAKER_RECLOSED)
		log_info("redis: circuit closed");
}

/*
 * The operation what failed: says why (unless the connect did already),
 * drops the connection, and tells the breaker, logging what changed.
 * Always KV_DOWN. Called once per failed operation, never more. An
 * operation that only gave up because the guard's flush is not over
 * (not_ready) is no failure: Redis answered, and the connection stays.
 */
static enum kv_status
kv_fail(struct kv *kv, const char *what)
{
	char msg[128];

	if (kv->not_ready) {
		kv->not_ready = 0;
		kv_answered(kv);
		return KV_DOWN;
	}
	kv->failures++;
	if (kv->ctx != NULL)
		log_warn("redis: %s: %s", what, log_safe(msg, sizeof(msg),
		    kv_reason(kv)));
	kv_disconnect(kv);
	if (breaker_failure(&kv->breaker, clock_ms()) == BREAKER_OPENED)
		log_warn("redis: circuit open for %d ms after %d failures",
		    kv->breaker.open_ms, kv->breaker.failures);
	return KV_DOWN;
}

static int
reply_ok(const redisReply *r)
{
	return r != NULL && r->type != REDIS_REPLY_ERROR;
}

/* An error reply's text, kept for the log (the reply is freed first). */
static void
kv_keep_error(struct kv *kv, const redisReply *r)
{
	if (r != NULL && r->type == REDIS_REPLY_ERROR) {
		snprintf(kv->errbuf, sizeof(kv->errbuf), "%s", r->str);
		kv->lapse = kv->errbuf;
	} else
		kv->lapse = "unexpected reply";
}

static int
copy_bulk(char *dst, size_t len, const redisReply *r)
{
	if (r->type != REDIS_REPLY_STRING || r->len >= len)
		return -1;
	memcpy(dst, r->str, r->len);
	dst[r->len] = '\0';
	return 0;
}

/*
 * The value of field name in an INFO reply's text ("name:value\r\n")
 * into out; 0, or -1 when there is none (or it does not fit).
 */
static int
info_field(const char *info, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name), vlen;
	const char *p;

	for (p = info; p != NULL; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, name, nlen) == 0 && p[nlen] == ':') {
			p += nlen + 1;
			vlen = strcspn(p, "\r\n");
			if (vlen >= outlen)
				return -1;
			memcpy(out, p, vlen);
			out[vlen] = '\0';
			return 0;
		}
	}
	return -1;
}

/*
 * The reply to INFO replication: this must be a master (a replica would
 * take no fill and no invalidation, and serve what its master may have
 * deleted since); its replication id into kv->replid. 0, or -1 (lapse
 * says why). A user whose ACL refuses INFO is let through without
 * sentinels (one Redis, whose role nothing changes behind our back) with
 * no replication id, so no guard: said once. With sentinels it is not:
 * the role check is what makes a stale sentinel's answer harmless.
 */
static int
kv_check_role(struct kv *kv, const redisReply *r)
{
	char role[16];

	kv->replid[0] = '\0';
	if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOPERM", 6) == 0 &&
	    kv->url->nsentinels == 0) {
		if (!kv->info_warned++)
			log_warn("redis: INFO is refused to this user: the "
			    "master's role and replication id go unchecked, "
			    "so entries from before a failover or a restart "
			    "with persistence are not dropped (allow it +info "
			    "+scan +unlink)");
		return 0;
	}
	if (r->type != REDIS_REPLY_STRING ||
	    info_field(r->str, "role", role, sizeof(role)) == -1) {
		kv_keep_error(kv, r);
		return -1;
	}
	if (strcmp(role, "master") != 0) {
		snprintf(kv->errbuf, sizeof(kv->errbuf), "not the master "
		    "(role:%s)", role);
		kv->lapse = kv->errbuf;
		return -1;
	}
	(void)info_field(r->str, "master_replid", kv->replid,
	    sizeof(kv->replid));
	return 0;
}

/*
 * After the handshake: whether the new connection may serve at once. It
 * may when there is no guard, when the replication id is unknown (see
 * kv_check_role), or when the guard holds this master's replication id;
 * else the guard's flush starts (kv_settle).
 */
static void
kv_standing(struct kv *kv, const char *guard)
{
	char msg[64], msg2[64];

	kv->epoch[0] = '\0';
	kv->verified = kv->guard_key == NULL || kv->replid[0] == '\0' ||
	    strcmp(guard, kv->replid) == 0;
	if (kv->verified) {
		if (kv->guard_key != NULL)
			memcpy(kv->epoch, kv->replid, sizeof(kv->epoch));
		return;
	}
	memcpy(kv->cursor, "0", 2);
	kv->flushed = 0;
	kv->flush_start_ms = clock_ms();
	/* No guard at all: a new Redis, or one the guard never ran on. */
	log_msg(guard[0] ? LOG_WARN : LOG_INFO, "redis: the cache's "
	    "entries were written under replication id %s, this master's is "
	    "%s (a failover, or a restart): dropping them before serving "
	    "reads",
	    guard[0] ? log_safe(msg, sizeof(msg), guard) : "none",
	    log_safe(msg2, sizeof(msg2), kv->replid));
}

/*
 * AUTH, SELECT, INFO replication, the guard's value and a SCRIPT LOAD per
 * script, sent at once and answered at once: one round trip, whatever the
 * number of scripts.
 */
static int
kv_handshake(struct kv *kv)
{
	const struct kv_url *u = kv->url;
	const char *argv[3];
	char db[8], guard[48] = "";
	redisReply *r;
	int n = 0, info_at, guard_at = -1, scripts_at, i, ok;

	if (u->password[0] != '\0') {
		argv[0] = "AUTH";
		argv[1] = u->user[0] ? u->user : u->password;
		argv[2] = u->password;
		if (redisAppendCommandArgv(kv->ctx, u->user[0] ? 3 : 2, argv,
		    NULL) != REDIS_OK)
			return -1;
		n++;
	}
	if (u->db != 0) {
		snprintf(db, sizeof(db), "%d", u->db);
		argv[0] = "SELECT";
		argv[1] = db;
		if (redisAppendCommandArgv(kv->ctx, 2, argv, NULL) != REDIS_OK)
			return -1;
		n++;
	}
	argv[0] = "INFO";
	argv[1] = "replication";
	if (redisAppendCommandArgv(kv->ctx, 2, argv, NULL) != REDIS_OK)
		return -1;
	info_at = n++;
	if (kv->guard_key != NULL) {
		argv[0] = "GET";
		argv[1] = kv->guard_key;
		if (redisAppendCommandArgv(kv->ctx, 2, argv, NULL) != REDIS_OK)
			return -1;
		guard_at = n++;
	}
	scripts_at = n;
	for (i = 0; i < NSCRIPTS; i++, n++) {
		argv[0] = "SCRIPT";
		argv[1] = "LOAD";
		argv[2] = scripts[i].source;
		if (redisAppendCommandArgv(kv->ctx, 3, argv, NULL) != REDIS_OK)
			return -1;
	}
	for (i = 0; i < n; i++) {
		if (kv_budget(kv) == -1 ||
		    redisGetReply(kv->ctx, (void **)&r) != REDIS_OK)
			return -1;
		if (i < info_at)
			ok = reply_ok(r);
		else if (i == info_at)
			ok = kv_check_role(kv, r) == 0;
		else if (i == guard_at)
			ok = r->type == REDIS_REPLY_NIL ||
			    copy_bulk(guard, sizeof(guard), r) == 0;
		else if ((ok = r->type == REDIS_REPLY_STRING && r->len == 40))
			memcpy(kv->sha[i - scripts_at], r->str, 41);
		if (!ok && kv->lapse == NULL)
			kv_keep_error(kv, r);
		freeReplyObject(r);
		if (!ok)
			return -1;	/* the connection goes: no need to
					   read the rest */
	}
	kv_standing(kv, guard);
	return 0;
}

/*
 * The master's address, from the sentinels (SENTINEL
 * get-master-addr-by-name), asked in turn from the last one that answered,
 * into kv->master: 0, or -1 (lapse says why). Each but the last gets half
 * of what is left of the budget, so one that hangs leaves time for the
 * next and for the master. Sentinels are asked without a password unless
 * REDIS_SENTINEL_PASSWORD gives one: Redis's password is not a sentinel's
 * (Debian's redis-sentinel has none by default), and the answer, an
 * address, is no secret. What they say is checked anyway: the master must
 * say it is one (kv_check_role).
 */
static int
kv_discover(struct kv *kv)
{
	const struct kv_url *u = kv->url;
	const struct kv_hostport *s = NULL;
	const char *argv[3];
	redisContext *c;
	redisReply *r;
	char why[96];
	int i, k, ms, got, nreq, ok;

	snprintf(kv->errbuf, sizeof(kv->errbuf), "timed out");
	for (i = 0; i < u->nsentinels; i++) {
		k = (kv->sentinel_next + i) % u->nsentinels;
		s = &u->sentinels[k];
		if ((ms = kv_left_ms(kv)) == 0)
			break;
		if (i + 1 < u->nsentinels && ms > 1)
			ms /= 2;
		c = redisConnectWithTimeout(s->host, s->port, ms_timeval(ms));
		snprintf(why, sizeof(why), "%.80s", c == NULL ?
		    "out of memory" : c->err ? c->errstr : "unexpected reply");
		ok = 0;
		nreq = 0;
		if (c != NULL && c->err == 0 &&
		    redisSetTimeout(c, ms_timeval(ms)) == REDIS_OK) {
			if (u->sentinel_password[0] != '\0') {
				argv[0] = "AUTH";
				argv[1] = u->sentinel_password;
				redisAppendCommandArgv(c, 2, argv, NULL);
				nreq++;
			}
			argv[0] = "SENTINEL";
			argv[1] = "get-master-addr-by-name";
			argv[2] = u->master_name;
			redisAppendCommandArgv(c, 3, argv, NULL);
			nreq++;
			for (got = 0; got < nreq; got++) {
				if (redisGetReply(c, (void **)&r) != REDIS_OK) {
					snprintf(why, sizeof(why), "%.80s",
					    c->errstr);
					break;
				}
				if (r->type == REDIS_REPLY_ERROR)
					snprintf(why, sizeof(why), "%.80s",
					    r->str);
				else if (got + 1 < nreq)
					ok = 0;	/* AUTH's OK */
				else if (r->type == REDIS_REPLY_NIL)
					snprintf(why, sizeof(why), "knows no "
					    "master %.60s", u->master_name);
				else if (r->type == REDIS_REPLY_ARRAY &&
				    r->elements == 2 &&
				    copy_bulk(kv->master.host,
				    sizeof(kv->master.host), r->element[0]) ==
				    0 && r->element[1]->type ==
				    REDIS_REPLY_STRING && kv_parse_int(
				    r->element[1]->str, r->element[1]->len, 1,
				    65535, &kv->master.port) == 0)
					ok = 1;
				freeReplyObject(r);
			}
		}
		redisFree(c);
		if (ok) {
			kv->sentinel_next = k;
			return 0;
		}
		snprintf(kv->errbuf, sizeof(kv->errbuf), "sentinel %.30s:%d: "
		    "%.70s", s->host, s->port, why);
		log_debug("redis: %s", kv->errbuf);
	}
	kv->lapse = kv->errbuf;
	if (s != NULL)
		kv->sentinel_next = (kv->sentinel_next + 1) % u->nsentinels;
	return -1;
}

/*
 * A new connection, set up, within what is left of the budget: to the
 * master the sentinels name, or to REDIS_URL's address. 0; or -1, logged,
 * with no connection (the caller's kv_fail counts the failure).
 */
static int
kv_connect(struct kv *kv)
{
	const struct kv_url *u = kv->url;
	const char *step = "cannot connect", *why;
	char msg[160], where[512] = "";
	int ms;

	kv->lapse = NULL;
	if (u->nsentinels > 0 && kv_discover(kv) == -1) {
		step = "cannot find the master";
		goto fail;
	}
	if ((ms = kv_left_ms(kv)) == 0)
		goto fail;
	if (u->nsentinels > 0) {
		kv->ctx = redisConnectWithTimeout(kv->master.host,
		    kv->master.port, ms_timeval(ms));
		snprintf(where, sizeof(where), " to master %s at %s:%d",
		    u->master_name, kv->master.host, kv->master.port);
	} else
		kv->ctx = u->unix_socket
		    ? redisConnectUnixWithTimeout(u->path, ms_timeval(ms))
		    : redisConnectWithTimeout(u->host, u->port, ms_timeval(ms));
	kv->sock_ms = -1;	/* hiredis's, for the connect only */
	if (kv->ctx == NULL) {
		kv->lapse = "out of memory";
		goto fail;
	}
	if (kv->ctx->err == 0) {
		step = "cannot set up the connection";
		if (kv_handshake(kv) == 0) {
			log_info("redis: connected%s", where);
			return 0;
		}
	}
fail:
	why = kv->ctx != NULL && kv->ctx->err ? kv_reason(kv) :
	    kv->lapse != NULL ? kv->lapse : "unexpected reply";
	log_warn("redis: %s%s: %s", step, where, log_safe(msg, sizeof(msg),
	    why));
	kv_disconnect(kv);
	return -1;
}

/*
 * The guard's flush on ctx, in steps, within what is left of the budget
 * (kv_guard; cache.c says why). 0: ctx may serve; 1: not yet (the budget
 * is spent, or too little of it is left for the operation itself: no
 * failure, Redis answered); -1: a failure (the caller's kv_fail).
 */
static int
kv_settle(struct kv *kv)
{
	const char *argv[] = { "EVALSHA", kv->sha[SCRIPT_FLUSH], "1",
		kv->guard_key, kv->cursor, kv->guard_match, FLUSH_BATCH,
		kv->replid };
	redisReply *r;
	int ok;

	while (!kv->verified) {
		if (kv_left_ms(kv) < kv->timeout_ms / 2 + 1)
			return 1;
		if (kv_budget(kv) == -1 ||
		    redisAppendCommandArgv(kv->ctx, 8, argv, NULL) != REDIS_OK)
			return -1;
		if (redisGetReply(kv->ctx, (void **)&r) != REDIS_OK)
			return -1;
		ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		    r->element[1]->type == REDIS_REPLY_INTEGER &&
		    copy_bulk(kv->cursor, sizeof(kv->cursor), r->element[0]) ==
		    0;
		if (ok)
			kv->flushed += (unsigned long)r->element[1]->integer;
		else
			kv_keep_error(kv, r);
		freeReplyObject(r);
		if (!ok)
			return -1;
		if (strcmp(kv->cursor, "0") == 0) {
			kv->verified = 1;
			memcpy(kv->epoch, kv->replid, sizeof(kv->epoch));
			log_info("redis: dropped %lu keys of the earlier dataset "
			    "in %.0f ms; serving reads from the cache again",
			    kv->flushed, clock_ms() - kv->flush_start_ms);
		}
	}
	/* The operation itself needs some of the budget too. */
	return kv_left_ms(kv) < kv->timeout_ms / 2 + 1 ? 1 : 0;
}

/*
 * A connection made within an operation: settled, if the operation is to
 * read or fill (not forced). 0, 1 (not ready: not_ready set), -1.
 */
static int
kv_ready(struct kv *kv)
{
	int rc;

	if (kv->forced || kv->verified)
		return 0;
	if ((rc = kv_settle(kv)) == 1)
		kv->not_ready = 1;
	return rc;
}

/*
 * The start of an operation: 0, with a connection and a fresh budget; or
 * -1 (KV_DOWN for the caller): the breaker or the hold-off said no (at
 * once, nothing tried, nothing counted), no connection could be made (a
 * failure, counted), or the guard's flush is not over (not counted).
 * forced: an invalidation, which goes whatever they say (see the top of
 * this file), and needs no flush: it only deletes.
 */
static int
kv_begin(struct kv *kv, int forced)
{
	double now = clock_ms();

	if (!forced && !breaker_allow(&kv->breaker, now))
		return -1;
	if (kv->breaker.state == BREAKER_HALF_OPEN)
		log_debug("redis: circuit half-open, probing");
	kv->deadline_ms = now + kv->timeout_ms;
	kv->lapse = NULL;
	kv->forced = forced;
	kv->not_ready = 0;
	if ((kv->ctx == NULL && kv_connect(kv) == -1) || kv_ready(kv) == -1) {
		kv_fail(kv, kv->ctx == NULL ? "connect" : "flush");
		return -1;
	}
	if (kv->not_ready) {
		kv->not_ready = 0;
		kv_answered(kv);
		return -1;
	}
	return 0;
}

/* Whether the last error was the server closing or resetting the link. */
static int
closed_by_peer(const redisContext *c)
{
	return c->err == REDIS_ERR_EOF || (c->err == REDIS_ERR_IO &&
	    (strstr(c->errstr, "reset") != NULL ||
	    strstr(c->errstr, "pipe") != NULL));
}

/*
 * Whether a reply says this is no longer the master: READONLY (a replica
 * now, a write refused), MASTERDOWN (a replica that lost its master).
 */
static int
not_master(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR &&
	    (strncmp(r->str, "READONLY", 8) == 0 ||
	    strncmp(r->str, "MASTERDOWN", 10) == 0);
}

/* One command of a round trip. */
struct kv_cmd {
	int		 argc;
	const char	**argv;
	const size_t	*lens;
};

/*
 * What redisAppendCommandArgv sends, made here: hiredis 0.14 makes it with
 * an sdscatfmt per argument, which was a quarter of a cache miss's
 * instructions (callgrind).
 */
int
kv_format_command(struct buf *out, int argc, const char *const *argv,
    const size_t *lens)
{
	size_t len, need = FMT_INT_MAX + 3;
	char *p;
	int i;

	if (argc < 0)
		return -1;
	for (i = 0; i < argc; i++) {
		len = lens != NULL ? lens[i] : strlen(argv[i]);
		if (len > ((size_t)-1) / 4 - need)
			return -1;
		need += FMT_INT_MAX + 5 + len;
	}
	buf_reset(out);
	if (buf_reserve(out, need) == -1)
		return -1;
	/* "*<argc>\r\n", then "$<len>\r\n<bytes>\r\n" for each */
	p = out->data;
	*p++ = '*';
	p += fmt_ulong(p, (unsigned)argc);
	*p++ = '\r';
	*p++ = '\n';
	for (i = 0; i < argc; i++) {
		len = lens != NULL ? lens[i] : strlen(argv[i]);
		*p++ = '$';
		p += fmt_ulong(p, len);
		*p++ = '\r';
		*p++ = '\n';
		memcpy(p, argv[i], len);
		p += len;
		*p++ = '\r';
		*p++ = '\n';
	}
	out->len = (size_t)(p - out->data);
	*p = '\0';
	return 0;
}

/*
 * Sends n commands at once and reads their n replies into r: one round
 * trip. -1 (nothing in r) on an I/O error or a timeout; 1 (nothing in r,
 * the first such reply's text in lapse) when a reply says this is not the
 * master.
 */
static int
kv_exchange(struct kv *kv, int n, const struct kv_cmd *c, redisReply **r)
{
	static struct buf cmd = BUF_INIT;	/* kept: one caller at a time */
	int i, got, demoted = -1;

	for (i = 0; i < n; i++)
		if (kv_format_command(&cmd, c[i].argc, c[i].argv,
		    c[i].lens) == -1 || redisAppendFormattedCommand(kv->ctx,
		    cmd.data, cmd.len) != REDIS_OK)
			return -1;
	for (got = 0; got < n; got++)
		if (kv_budget(kv) == -1 ||
		    redisGetReply(kv->ctx, (void **)&r[got]) != REDIS_OK)
			break;
	for (i = 0; i < got && demoted == -1; i++)
		if (not_master(r[i]))
			demoted = i;
	if (got == n && demoted == -1)
		return 0;
	if (demoted != -1)
		kv_keep_error(kv, r[demoted]);
	for (i = 0; i < got; i++)
		freeReplyObject(r[i]);
	return got == n ? 1 : -1;
}

/*
 * Runs n commands in one round trip within the operation's budget; -1
 * (the caller calls kv_fail) on an I/O error, a timeout, or a master
 * that could not be found again.
 *
 * Two things make it connect again at once, within what is left of the
 * budget, and run the commands there: the connection died while idle
 * (Redis restarted, or was killed: the first request after a restart is
 * served from the cache), and a reply saying this is no longer the master
 * (a failover demoted it: the sentinels name the new one).
 */
static int
kv_commands(struct kv *kv, int n, const struct kv_cmd *c, redisReply **r)
{
	char msg[128];
	int rc;

	if (kv_budget(kv) == -1)
		return -1;
	if ((rc = kv_exchange(kv, n, c, r)) != 0) {
		if (rc == -1 && !closed_by_peer(kv->ctx))
			return -1;
		if (rc == -1)
			log_info("redis: connection lost (%s), reconnecting",
			    log_safe(msg, sizeof(msg), kv->ctx->errstr));
		else
			log_warn("redis: no longer the master (%s), looking "
			    "for it again", log_safe(msg, sizeof(msg),
			    kv->lapse));
		kv_disconnect(kv);
		if (kv_connect(kv) == -1 || kv_ready(kv) != 0 ||
		    kv_budget(kv) == -1 || kv_exchange(kv, n, c, r) != 0)
			return -1;
	}
	kv_answered(kv);
	return 0;
}

static redisReply *
kv_command(struct kv *kv, int argc, const char **argv, const size_t *lens)
{
	struct kv_cmd c = { argc, argv, lens };
	redisReply *r;

	return kv_commands(kv, 1, &c, &r) == 0 ? r : NULL;
}

/*
 * Runs script s with nkeys keys and nargs arguments (keys first, then
 * arguments): EVALSHA, and EVAL when Redis lost the script (SCRIPT FLUSH,
 * a restart between our connect and now). On KV_OK *reply is Redis's
 * answer, which the caller frees. forced: see kv_begin.
 */
static enum kv_status
kv_eval(struct kv *kv, enum script s, int forced, int nkeys, int nargs,
    const char *const *items, const size_t *itemlens, redisReply **reply)
{
	const char *argv[MAX_SCRIPT_ITEMS + 3];
	size_t lens[MAX_SCRIPT_ITEMS + 3];
	char numkeys[FMT_INT_MAX];
	redisReply *r;
	int i, argc;

	*reply = NULL;
	if (nkeys + nargs > MAX_SCRIPT_ITEMS || kv_begin(kv, forced) == -1)
		return KV_DOWN;
	fmt_long(numkeys, nkeys);
	argv[0] = "EVALSHA";
	lens[0] = 7;
	argv[1] = kv->sha[s];
	lens[1] = 40;
	argv[2] = numkeys;
	lens[2] = strlen(numkeys);
	for (i = 0, argc = 3; i < nkeys + nargs; i++, argc++) {
		argv[argc] = items[i];
		lens[argc] = itemlens ? itemlens[i] : strlen(items[i]);
	}
	if ((r = kv_command(kv, argc, argv, lens)) == NULL)
		return kv_fail(kv, scripts[s].name);
	if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
		freeReplyObject(r);
		argv[0] = "EVAL";
		lens[0] = 4;
		argv[1] = scripts[s].source;
		lens[1] = strlen(scripts[s].source);
		if ((r = kv_command(kv, argc, argv, lens)) == NULL)
			return kv_fail(kv, scripts[s].name);
	}
	if (r->type == REDIS_REPLY_ERROR) {
		char msg[128];

		log_warn("redis: %s: %s", scripts[s].name, log_safe(msg,
		    sizeof(msg), r->str));
		freeReplyObject(r);
		return KV_DOWN;
	}
	*reply = r;
	return KV_OK;
}

/*
 * A hit's {value, ms to live} from r->element[first..]: the value into out,
 * the ms into *ttl_ms (-1 when the entry has no ttl). KV_OK, or KV_DOWN.
 */
static enum kv_status
take_hit(const redisReply *r, size_t first, struct buf *out,
    long long *ttl_ms)
{
	const redisReply *v, *ms;

	if (r->elements != first + 2 ||
	    (v = r->element[first])->type != REDIS_REPLY_STRING ||
	    (ms = r->element[first + 1])->type != REDIS_REPLY_INTEGER)
		return KV_DOWN;
	*ttl_ms = ms->integer >= 0 ? ms->integer : -1;
	return buf_append(out, v->str, v->len) == 0 ? KV_OK : KV_DOWN;
}

/*
 * GET alone: no script to run, which costs Redis several times a GET's
 * work. A hit's remaining ttl is cache.c's business (its memo).
 */
enum kv_status
kv_get(struct kv *kv, const char *key, struct buf *out)
{
	const char *get[] = { "GET", key };
	const struct kv_cmd c[] = { { 2, get, NULL } };
	redisReply *r;
	enum kv_status st = KV_DOWN;
	char msg[128];

	if (kv_begin(kv, 0) == -1)
		return KV_DOWN;
	if (kv_commands(kv, 1, c, &r) == -1)
		return kv_fail(kv, "get");
	if (r->type == REDIS_REPLY_NIL)
		st = KV_MISS;
	else if (r->type == REDIS_REPLY_STRING) {
		if (buf_append(out, r->str, r->len) == 0)
			st = KV_OK;
	} else {
		kv_keep_error(kv, r);
		log_warn("redis: get: %s", log_safe(msg, sizeof(msg),
		    kv->lapse));
	}
	freeReplyObject(r);
	return st;
}

enum kv_status
kv_lease(struct kv *kv, const char *key, const char *gen_key,
    const char *lock_key, int lock_ms, struct buf *out, struct kv_ticket *t,
    long long *ttl_ms)
{
	const char *items[5];
	char ms[FMT_INT_MAX], tok[2 * FMT_INT_MAX];
	redisReply *r, *e0, *e1;
	enum kv_status st;
	size_t n;

	memset(t, 0, sizeof(*t));
	/* "<pid>.<count>", cut to fit as snprintf would (it always fits) */
	n = fmt_long(tok, kv->pid);
	tok[n++] = '.';
	n += fmt_ulong(tok + n, ++kv->tokens);
	if (n >= sizeof(t->token))
		n = sizeof(t->token) - 1;
	memcpy(t->token, tok, n);
	t->token[n] = '\0';
	fmt_long(ms, lock_ms);
	items[0] = key;
	items[1] = gen_key;
	items[2] = lock_key;
	items[3] = t->token;
	items[4] = ms;
	if ((st = kv_eval(kv, SCRIPT_LEASE, 0, 3, 2, items, NULL, &r)) != KV_OK)
		return st;
	st = KV_DOWN;
	if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER &&
	    r->element[0]->integer == 1)
		st = take_hit(r, 1, out, ttl_ms);
	else if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    (e0 = r->element[0])->type == REDIS_REPLY_INTEGER) {
		e1 = r->element[1];
		if (e0->integer != 1 &&
		    copy_bulk(t->gen, sizeof(t->gen), e1) == 0) {
			/* the connection it ran on: kv_begin's or a new one */
			memcpy(t->epoch, kv->epoch, sizeof(t->epoch));
			t->leased = e0->integer == 2;
			st = t->leased ? KV_LEASED : KV_BUSY;
		}
	}
	freeReplyObject(r);
	return st;
}

enum kv_status
kv_peek(struct kv *kv, const char *key, const char *lock_key, struct buf *out,
    long long *ttl_ms)
{
	const char *items[] = { key, lock_key };
	enum kv_status st;
	redisReply *r;

	if ((st = kv_eval(kv, SCRIPT_PEEK, 0, 2, 0, items, NULL, &r)) != KV_OK)
		return st;
	st = KV_DOWN;
	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
	    r->element[0]->type == REDIS_REPLY_INTEGER) {
		switch (r->element[0]->integer) {
		case 1:
			st = take_hit(r, 1, out, ttl_ms);
			break;
		case 2:
			st = KV_BUSY;
			break;
		case 0:
			st = KV_MISS;
			break;
		}
	}
	freeReplyObject(r);
	return st;
}

enum kv_status
kv_fill(struct kv *kv, const char *key, const char *value, size_t len,
    int ttl, const char *index, const char *gen_key, const char *lock_key,
    const struct kv_ticket *t)
{
	const char *items[10];
	size_t lens[10];
	char ttlbuf[FMT_INT_MAX];
	int nkeys = 0, n, i;
	redisReply *r;
	enum kv_status st;

	fmt_long(ttlbuf, ttl);
	items[nkeys++] = key;
	items[nkeys++] = gen_key;
	items[nkeys++] = lock_key;
	if (t->epoch[0] != '\0') {
		if (kv->guard_key == NULL)
			return KV_STALE;	/* cannot be: a guard stays */
		items[nkeys++] = kv->guard_key;
	}
	if (index != NULL)
		items[nkeys++] = index;
	n = nkeys;
	items[n++] = value;
	items[n++] = ttlbuf;
	items[n++] = t->gen;
	items[n++] = t->token;
	items[n++] = t->epoch;
	for (i = 0; i < n; i++)
		lens[i] = items[i] == value ? len : strlen(items[i]);
	if ((st = kv_eval(kv, SCRIPT_FILL, 0, nkeys, n - nkeys, items, lens,
	    &r)) != KV_OK)
		return st;
	st = r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? KV_OK :
	    KV_STALE;
	freeReplyObject(r);
	return st;
}

enum kv_status
kv_release(struct kv *kv, const char *lock_key, const struct kv_ticket *t)
{
	const char *items[] = { lock_key, t->token };
	redisReply *r;
	enum kv_status st;

	if (!t->leased)
		return KV_OK;
	if ((st = kv_eval(kv, SCRIPT_RELEASE, 0, 1, 1, items, NULL, &r)) == KV_OK)
		freeReplyObject(r);
	return st;
}

enum kv_status
kv_invalidate(struct kv *kv, const char *const *keys, int nkeys,
    const char *const *indexes, int nindexes, const char *const *gens,
    int ngens)
{
	const char *items[MAX_SCRIPT_ITEMS];
	char nplain[16], nidx[16], step[16];
	enum kv_status st;
	redisReply *r;
	int n = 0, i, more, steps = 1;

	if (nkeys < 0 || nindexes < 0 || ngens < 0 ||
	    nkeys + nindexes + ngens + 3 > MAX_SCRIPT_ITEMS)
		return KV_DOWN;
	for (i = 0; i < nkeys; i++)
		items[n++] = keys[i];
	for (i = 0; i < nindexes; i++)
		items[n++] = indexes[i];
	for (i = 0; i < ngens; i++)
		items[n++] = gens[i];
	snprintf(nplain, sizeof(nplain), "%d", nkeys);
	snprintf(nidx, sizeof(nidx), "%d", nindexes);
	snprintf(step, sizeof(step), "%d", INVALIDATE_STEP);
	items[n++] = nplain;
	items[n++] = nidx;
	items[n++] = step;
	/*
	 * Whatever the breaker says (see the top of this file): an entry that
	 * other workers go on serving stale is worse than a slower write.
	 * Each step is an operation of its own, with its own timeout; the
	 * steps after the first delete index members only, fills made since
	 * the first among them (a miss each, no harm), until an index is
	 * empty: a worker that dies in between left its write in flight, and
	 * whoever settles it invalidates again.
	 */
	st = kv_eval(kv, SCRIPT_INVALIDATE, 1, n - 3, 3, items, NULL, &r);
	while (st == KV_OK) {
		more = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
		    r->element[1]->type == REDIS_REPLY_INTEGER &&
		    r->element[1]->integer == 1;
		freeReplyObject(r);
		if (!more || nindexes == 0)
			break;
		if (++steps > INVALIDATE_STEPS_MAX) {
			log_warn("redis: an invalidation still had index members "
			    "to delete after %d steps; counted as failed",
			    INVALIDATE_STEPS_MAX);
			return KV_DOWN;
		}
		n = 0;
		for (i = 0; i < nindexes; i++)
			items[n++] = indexes[i];
		items[n++] = "0";
		items[n++] = nidx;
		items[n++] = step;
		st = kv_eval(kv, SCRIPT_INVALIDATE, 1, nindexes, 3, items,
		    NULL, &r);
	}
	return st;
}

enum kv_status
kv_ping(struct kv *kv)
{
	const char *argv[] = { "PING" };
	redisReply *r;
	int ok;

	if (kv_begin(kv, 0) == -1)
		return KV_DOWN;
	if ((r = kv_command(kv, 1, argv, NULL)) == NULL)
		return kv_fail(kv, "PING");
	ok = r->type == REDIS_REPLY_STATUS;
	freeReplyObject(r);
	return ok ? KV_OK : KV_DOWN;
}


/*
 * The replica's bar (DATABASE_REPLICA_URL, handlers_orders.c): the highest
 * WAL position of the writes whose invalidations were made, as the score
 * of member "w" of the sorted set key. ZADD GT raises it and never lowers
 * it, so writers need no order among themselves; a score is a double,
 * exact for any WAL position below 2^53 bytes (8 PiB). Raised whatever
 * the breaker says, like the invalidation it comes before.
 */
enum kv_status
kv_lsn_raise(struct kv *kv, const char *key, uint64_t lsn)
{
	char score[24];
	const char *argv[] = { "ZADD", key, "GT", score, "w" };
	redisReply *r;
	int ok;

	snprintf(score, sizeof(score), "%llu", (unsigned long long)lsn);
	if (kv_begin(kv, 1) == -1)
		return KV_DOWN;
	if ((r = kv_command(kv, 5, argv, NULL)) == NULL)
		return kv_fail(kv, "ZADD");
	ok = r->type == REDIS_REPLY_INTEGER;
	if (!ok)
		kv_keep_error(kv, r);
	freeReplyObject(r);
	if (!ok)
		return kv_fail(kv, "ZADD");
	kv_answered(kv);
	return KV_OK;
}

enum kv_status
kv_lsn_get(struct kv *kv, const char *key, uint64_t *lsn)
{
	const char *argv[] = { "ZSCORE", key, "w" };
	redisReply *r;
	int ok;

	*lsn = 0;
	if (kv_begin(kv, 0) == -1)
		return KV_DOWN;
	if ((r = kv_command(kv, 3, argv, NULL)) == NULL)
		return kv_fail(kv, "ZSCORE");
	ok = r->type == REDIS_REPLY_NIL || r->type == REDIS_REPLY_STRING;
	if (r->type == REDIS_REPLY_STRING)
		*lsn = strtoull(r->str, NULL, 10);
	if (!ok)
		kv_keep_error(kv, r);
	freeReplyObject(r);
	if (!ok)
		return kv_fail(kv, "ZSCORE");
	kv_answered(kv);
	return KV_OK;
}
