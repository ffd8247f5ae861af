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


enum script { SCRIPT_LEASE, SCRIPT_PEEK, SCRIPT_FILL,
	SCRIPT_RELEASE, SCRIPT_INVALIDATE, NSCRIPTS };

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
	 * KEYS: entry, generation, lock, [index]. ARGV: value, ttl, the
	 * generation seen before loading, token. Releases our lock; stores
	 * only if the generation has not moved (1), else nothing (0). The
	 * index has no ttl, so the eviction policy (volatile-*) never drops
	 * it while members live; two random members are checked per fill and
	 * removed once expired, which keeps it near the live set's size.
	 */
	[SCRIPT_FILL] = { "fill",
	    "if redis.call('GET', KEYS[3]) == ARGV[4] then\n"
	    "  redis.call('DEL', KEYS[3])\n"
	    "end\n"
	    "if (redis.call('GET', KEYS[2]) or '') ~= ARGV[3] then return 0 end\n"
	    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
	    "if KEYS[4] then\n"
	    "  for _, m in ipairs(redis.call('SRANDMEMBER', KEYS[4], 2)) do\n"
	    "    if redis.call('EXISTS', m) == 0 then\n"
	    "      redis.call('SREM', KEYS[4], m)\n"
	    "    end\n"
	    "  end\n"
	    "  redis.call('SADD', KEYS[4], KEYS[1])\n"
	    "end\n"
	    "return 1\n" },
	/* KEYS: lock. ARGV: token. */
	[SCRIPT_RELEASE] = { "release",
	    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
	    "  return redis.call('DEL', KEYS[1])\n"
	    "end\n"
	    "return 0\n" },
	/*
	 * KEYS: ARGV[1] plain keys, ARGV[2] indexes, then generations.
	 * Moves every generation first, so no fill that loaded before this
	 * can store afterwards, then deletes the keys and every member of the
	 * indexes.
	 */
	[SCRIPT_INVALIDATE] = { "invalidate",
	    "local n, m = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
	    "for i = n + m + 1, #KEYS do redis.call('INCR', KEYS[i]) end\n"
	    "local deleted = 0\n"
	    "for i = 1, n do deleted = deleted + redis.call('DEL', KEYS[i]) end\n"
	    "for i = n + 1, n + m do\n"
	    "  local members = redis.call('SMEMBERS', KEYS[i])\n"
	    "  for j = 1, #members, 500 do\n"
	    "    deleted = deleted + redis.call('DEL',\n"
	    "      unpack(members, j, math.min(j + 499, #members)))\n"
	    "  end\n"
	    "  redis.call('DEL', KEYS[i])\n"
	    "end\n"
	    "return deleted\n" },
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
	unsigned long		 failures;	/* kv_fail calls, ever */
};

static int
parse_int(const char *s, size_t len, int lo, int hi, int *out)
{
	long v = 0;
	size_t i;

	if (len == 0 || len > 9)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

/* "password=...&db=N" of a unix:// URL */
static int
parse_unix_query(const char *q, struct kv_url *u)
{
	const char *seg, *end, *eq;

	for (seg = q; *seg != '\0'; seg = *end ? end + 1 : end) {
		end = strchr(seg, '&');
		if (end == NULL)
			end = seg + strlen(seg);
		eq = memchr(seg, '=', (size_t)(end - seg));
		if (eq == NULL)
			return -1;
		if ((size_t)(eq - seg) == 8 && strncmp(seg, "password", 8) == 0) {
			if (pct_decode(eq + 1, (size_t)(end - eq - 1),
			    u->password, sizeof(u->password), 0) < 0)
				return -1;
		} else if ((size_t)(eq - seg) == 2 && strncmp(seg, "db", 2) == 0) {
			if (parse_int(eq + 1, (size_t)(end - eq - 1), 0, 15,
			    &u->db) == -1)
				return -1;
		} else
			return -1;
	}
	return 0;
}

static int
parse_tcp(const char *p, struct kv_url *u)
{
	const char *at, *colon, *host, *slash, *hostend, *portstart;

	slash = strchr(p, '/');
	if (slash == NULL)
		slash = p + strlen(p);
	at = memchr(p, '@', (size_t)(slash - p));
	host = p;
	if (at != NULL) {
		colon = memchr(p, ':', (size_t)(at - p));
		if (colon != NULL) {
			if (pct_decode(p, (size_t)(colon - p), u->user,
			    sizeof(u->user), 0) < 0 ||
			    pct_decode(colon + 1, (size_t)(at - colon - 1),
			    u->password, sizeof(u->password), 0) < 0)
				return -1;
		} else if (pct_decode(p, (size_t)(at - p), u->password,
		    sizeof(u->password), 0) < 0)
			return -1;	/* redis://password@host */
		host = at + 1;
	}
	if (*host == '[') {	/* [::1]:6379 */
		hostend = memchr(host, ']', (size_t)(slash - host));
		if (hostend == NULL)
			return -1;
		host++;
		portstart = hostend + 1;
	} else {
		hostend = memchr(host, ':', (size_t)(slash - host));
		if (hostend == NULL)
			hostend = slash;
		portstart = hostend;
	}
	if (hostend == host || (size_t)(hostend - host) >= sizeof(u->host))
		return -1;
	memcpy(u->host, host, (size_t)(hostend - host));
	u->host[hostend - host] = '\0';
	u->port = 6379;
	if (portstart < slash) {
		if (*portstart != ':' || parse_int(portstart + 1,
		    (size_t)(slash - portstart - 1), 1, 65535, &u->port) == -1)
			return -1;
	}
	if (*slash == '/' && slash[1] != '\0' &&
	    parse_int(slash + 1, strlen(slash + 1), 0, 15, &u->db) == -1)
		return -1;
	return 0;
}

int
kv_url_parse(const char *url, struct kv_url *u, char *err, size_t errlen)
{
	const char *q;
	size_t plen;

	memset(u, 0, sizeof(*u));
	if (strncmp(url, "rediss://", 9) == 0) {
		snprintf(err, errlen, "rediss:// (TLS) is not supported by this "
		    "build: run a TLS tunnel and use redis:// to it");
		return -1;
	}
	if (strncmp(url, "redis://", 8) == 0) {
		if (parse_tcp(url + 8, u) == -1)
			goto bad;
		return 0;
	}
	if (strncmp(url, "unix://", 7) == 0) {
		u->unix_socket = 1;
		q = strchr(url + 7, '?');
		plen = q ? (size_t)(q - url - 7) : strlen(url + 7);
		if (plen == 0 || plen >= sizeof(u->path) || url[7] != '/')
			goto bad;
		memcpy(u->path, url + 7, plen);
		u->path[plen] = '\0';
		if (q != NULL && parse_unix_query(q + 1, u) == -1)
			goto bad;
		return 0;
	}
bad:
	snprintf(err, errlen, "REDIS_URL must look like "
	    "redis://[user:password@]host[:port][/db] or "
	    "unix:///path?password=...&db=N");
	return -1;
}

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

/*
 * The operation what failed: says why (unless the connect did already),
 * drops the connection, and tells the breaker, logging what changed.
 * Always KV_DOWN. Called once per failed operation, never more.
 */
static enum kv_status
kv_fail(struct kv *kv, const char *what)
{
	char msg[128];

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

/* Redis answered: the breaker closes, if it was not. */
static void
kv_answered(struct kv *kv)
{
	if (breaker_success(&kv->breaker) == BREAKER_RECLOSED)
		log_info("redis: circuit closed");
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

/*
 * AUTH, SELECT and a SCRIPT LOAD per script, sent at once and answered at
 * once: one round trip, whatever the number of scripts.
 */
static int
kv_handshake(struct kv *kv)
{
	const struct kv_url *u = kv->url;
	const char *argv[3];
	char db[8];
	redisReply *r;
	int n = 0, nsetup, i, ok;

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
	nsetup = n;
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
		if (i < nsetup)
			ok = reply_ok(r);
		else if ((ok = r->type == REDIS_REPLY_STRING && r->len == 40))
			memcpy(kv->sha[i - nsetup], r->str, 41);
		if (!ok)
			kv_keep_error(kv, r);
		freeReplyObject(r);
		if (!ok)
			return -1;	/* the connection goes: no need to
					   read the rest */
	}
	return 0;
}

/*
 * A new connection, set up, within what is left of the budget. 0; or -1,
 * logged, with no connection (the caller's kv_fail counts the failure).
 */
static int
kv_connect(struct kv *kv)
{
	const struct kv_url *u = kv->url;
	const char *step = "cannot connect";
	char msg[128];
	int ms;

	if ((ms = kv_left_ms(kv)) > 0) {
		kv->ctx = u->unix_socket
		    ? redisConnectUnixWithTimeout(u->path, ms_timeval(ms))
		    : redisConnectWithTimeout(u->host, u->port, ms_timeval(ms));
		kv->sock_ms = -1;	/* hiredis's, for the connect only */
		if (kv->ctx != NULL && kv->ctx->err == 0) {
			step = "cannot set up the connection";
			if (kv_handshake(kv) == 0) {
				log_info("redis: connected");
				return 0;
			}
		}
	}
	log_warn("redis: %s: %s", step, log_safe(msg, sizeof(msg),
	    ms > 0 && kv->ctx == NULL ? "out of memory" : kv_reason(kv)));
	kv_disconnect(kv);
	return -1;
}

/*
 * The start of an operation: 0, with a connection and a fresh budget; or
 * -1 (KV_DOWN for the caller): the breaker or the hold-off said no (at
 * once, nothing tried, nothing counted), or no connection could be made (a
 * failure, counted). forced: an invalidation, which goes whatever they
 * say (see the top of this file).
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
	if (kv->ctx == NULL && kv_connect(kv) == -1) {
		kv_fail(kv, "connect");
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

/* One command of a round trip. */
struct kv_cmd {
	int		 argc;
	const char	**argv;
	const size_t	*lens;
};

/*
 * Sends n commands at once and reads their n replies into r: one round
 * trip. -1 (nothing in r) on an I/O error or a timeout.
 */
static int
kv_exchange(struct kv *kv, int n, const struct kv_cmd *c, redisReply **r)
{
	int i, got;

	for (i = 0; i < n; i++)
		if (redisAppendCommandArgv(kv->ctx, c[i].argc, c[i].argv,
		    c[i].lens) != REDIS_OK)
			return -1;
	for (got = 0; got < n; got++)
		if (kv_budget(kv) == -1 ||
		    redisGetReply(kv->ctx, (void **)&r[got]) != REDIS_OK)
			break;
	if (got == n)
		return 0;
	for (i = 0; i < got; i++)
		freeReplyObject(r[i]);
	return -1;
}

/*
 * Runs n commands in one round trip within the operation's budget; -1
 * (the caller calls kv_fail) on an I/O error or a timeout.
 */
static int
kv_commands(struct kv *kv, int n, const struct kv_cmd *c, redisReply **r)
{
	char msg[128];

	if (kv_budget(kv) == -1)
		return -1;
	if (kv_exchange(kv, n, c, r) == -1) {
		if (!closed_by_peer(kv->ctx))
			return -1;
		/*
		 * The connection died while idle (Redis restarted): one new
		 * connection at once, in what is left of the budget, so the
		 * first request after a restart is served from the cache.
		 */
		log_info("redis: connection lost (%s), reconnecting",
		    log_safe(msg, sizeof(msg), kv->ctx->errstr));
		kv_disconnect(kv);
		if (kv_connect(kv) == -1 || kv_budget(kv) == -1 ||
		    kv_exchange(kv, n, c, r) == -1)
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
	char numkeys[16];
	redisReply *r;
	int i, argc;

	*reply = NULL;
	if (nkeys + nargs > MAX_SCRIPT_ITEMS || kv_begin(kv, forced) == -1)
		return KV_DOWN;
	snprintf(numkeys, sizeof(numkeys), "%d", nkeys);
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
 * GET and PTTL, pipelined: a hit's value and remaining ttl in one round
 * trip, and no script to run, which costs Redis several times a GET's
 * work. Not atomic, and need not be: an entry deleted or expired between
 * the two has PTTL -2, and its hit then gets max-age 0.
 */
enum kv_status
kv_get(struct kv *kv, const char *key, struct buf *out, long long *ttl_ms)
{
	const char *get[] = { "GET", key }, *pttl[] = { "PTTL", key };
	const struct kv_cmd c[] = { { 2, get, NULL }, { 2, pttl, NULL } };
	redisReply *r[2];
	enum kv_status st = KV_DOWN;
	char msg[128];

	if (kv_begin(kv, 0) == -1)
		return KV_DOWN;
	if (kv_commands(kv, 2, c, r) == -1)
		return kv_fail(kv, "get");
	if (r[0]->type == REDIS_REPLY_NIL)
		st = KV_MISS;
	else if (r[0]->type == REDIS_REPLY_STRING &&
	    r[1]->type == REDIS_REPLY_INTEGER) {
		*ttl_ms = r[1]->integer >= 0 ? r[1]->integer :
		    r[1]->integer == -1 ? -1 : 0;
		if (buf_append(out, r[0]->str, r[0]->len) == 0)
			st = KV_OK;
	} else {
		kv_keep_error(kv, r[0]->type == REDIS_REPLY_ERROR ? r[0] : r[1]);
		log_warn("redis: get: %s", log_safe(msg, sizeof(msg),
		    kv->lapse));
	}
	freeReplyObject(r[0]);
	freeReplyObject(r[1]);
	return st;
}

enum kv_status
kv_lease(struct kv *kv, const char *key, const char *gen_key,
    const char *lock_key, int lock_ms, struct buf *out, struct kv_ticket *t,
    long long *ttl_ms)
{
	const char *items[5];
	char ms[16];
	redisReply *r, *e0, *e1;
	enum kv_status st;

	memset(t, 0, sizeof(*t));
	snprintf(t->token, sizeof(t->token), "%ld.%lu", (long)getpid(),
	    ++kv->tokens);
	snprintf(ms, sizeof(ms), "%d", lock_ms);
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
	const char *items[8];
	size_t lens[8];
	char ttlbuf[16];
	int nkeys = 0, n, i;
	redisReply *r;
	enum kv_status st;

	snprintf(ttlbuf, sizeof(ttlbuf), "%d", ttl);
	items[nkeys++] = key;
	items[nkeys++] = gen_key;
	items[nkeys++] = lock_key;
	if (index != NULL)
		items[nkeys++] = index;
	n = nkeys;
	items[n++] = value;
	items[n++] = ttlbuf;
	items[n++] = t->gen;
	items[n++] = t->token;
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
	char nplain[16], nidx[16];
	enum kv_status st;
	redisReply *r;
	int n = 0, i;

	if (nkeys < 0 || nindexes < 0 || ngens < 0 ||
	    nkeys + nindexes + ngens + 2 > MAX_SCRIPT_ITEMS)
		return KV_DOWN;
	for (i = 0; i < nkeys; i++)
		items[n++] = keys[i];
	for (i = 0; i < nindexes; i++)
		items[n++] = indexes[i];
	for (i = 0; i < ngens; i++)
		items[n++] = gens[i];
	snprintf(nplain, sizeof(nplain), "%d", nkeys);
	snprintf(nidx, sizeof(nidx), "%d", nindexes);
	items[n++] = nplain;
	items[n++] = nidx;
	/*
	 * Whatever the breaker says (see the top of this file): an entry that
	 * other workers go on serving stale is worse than a slower write. One
	 * operation, so one timeout at most.
	 */
	st = kv_eval(kv, SCRIPT_INVALIDATE, 1, n - 2, 2, items, NULL, &r);
	if (st == KV_OK)
		freeReplyObject(r);
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

