#include "kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "log.h"
#include "valid.h"

#define RETRY_AFTER_MS	1000
#define MAX_SCRIPT_KEYS	16

struct kv {
	const struct kv_url	*url;		/* borrowed */
	struct timeval		 timeout;
	redisContext		*ctx;		/* NULL while disconnected */
	long long		 retry_at_ms;	/* no connect attempt before */
	char			 fill_sha[41];
	char			 inval_sha[41];
};

/*
 * KEYS[1] the entry, KEYS[2] (optional) the index; ARGV[1] the value,
 * ARGV[2] the ttl. The index outlives every member: its ttl is renewed to
 * the full ttl by each fill.
 */
static const char FILL_SCRIPT[] =
    "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
    "if KEYS[2] then\n"
    "  redis.call('SADD', KEYS[2], KEYS[1])\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[2])\n"
    "end\n"
    "return 1\n";

/* KEYS: ARGV[1] plain keys, then indexes whose members go too. */
static const char INVALIDATE_SCRIPT[] =
    "local n = tonumber(ARGV[1])\n"
    "local deleted = 0\n"
    "for i = 1, n do deleted = deleted + redis.call('DEL', KEYS[i]) end\n"
    "for i = n + 1, #KEYS do\n"
    "  local members = redis.call('SMEMBERS', KEYS[i])\n"
    "  for j = 1, #members, 500 do\n"
    "    deleted = deleted + redis.call('DEL',\n"
    "      unpack(members, j, math.min(j + 499, #members)))\n"
    "  end\n"
    "  redis.call('DEL', KEYS[i])\n"
    "end\n"
    "return deleted\n";

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
	struct kv *kv;

	if ((kv = calloc(1, sizeof(*kv))) == NULL)
		return NULL;
	kv->url = url;
	kv->timeout.tv_sec = timeout_ms / 1000;
	kv->timeout.tv_usec = (timeout_ms % 1000) * 1000;
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

/* Logs once, drops the connection, and waits a while before the next. */
static enum kv_status
kv_fail(struct kv *kv, const char *what)
{
	char msg[128];

	log_warn("redis: %s: %s", what, log_safe(msg, sizeof(msg),
	    kv->ctx && kv->ctx->err ? kv->ctx->errstr : "unexpected reply"));
	kv_disconnect(kv);
	kv->retry_at_ms = (long long)clock_ms() + RETRY_AFTER_MS;
	return KV_DOWN;
}

/* Runs a command; NULL (connection dropped) on an I/O error or timeout. */
static redisReply *
kv_command(struct kv *kv, int argc, const char **argv, const size_t *lens)
{
	return redisCommandArgv(kv->ctx, argc, argv, lens);
}

static int
reply_ok(const redisReply *r)
{
	return r != NULL && r->type != REDIS_REPLY_ERROR;
}

static int
kv_load_script(struct kv *kv, const char *script, char *sha)
{
	const char *argv[] = { "SCRIPT", "LOAD", script };
	redisReply *r;
	int rc = -1;

	r = kv_command(kv, 3, argv, NULL);
	if (r != NULL && r->type == REDIS_REPLY_STRING && r->len == 40) {
		memcpy(sha, r->str, 41);
		rc = 0;
	}
	freeReplyObject(r);
	return rc;
}

static int
kv_handshake(struct kv *kv)
{
	const struct kv_url *u = kv->url;
	const char *argv[3];
	char db[8];
	redisReply *r;
	int ok;

	if (u->password[0] != '\0') {
		argv[0] = "AUTH";
		argv[1] = u->user[0] ? u->user : u->password;
		argv[2] = u->password;
		r = kv_command(kv, u->user[0] ? 3 : 2, argv, NULL);
		ok = reply_ok(r);
		freeReplyObject(r);
		if (!ok)
			return -1;
	}
	if (u->db != 0) {
		snprintf(db, sizeof(db), "%d", u->db);
		argv[0] = "SELECT";
		argv[1] = db;
		r = kv_command(kv, 2, argv, NULL);
		ok = reply_ok(r);
		freeReplyObject(r);
		if (!ok)
			return -1;
	}
	if (kv_load_script(kv, FILL_SCRIPT, kv->fill_sha) == -1 ||
	    kv_load_script(kv, INVALIDATE_SCRIPT, kv->inval_sha) == -1)
		return -1;
	return 0;
}

/* 0 when connected; -1 (KV_DOWN for the caller) when not, for now. */
static int
kv_ensure(struct kv *kv)
{
	const struct kv_url *u = kv->url;

	if (kv->ctx != NULL)
		return 0;
	if ((long long)clock_ms() < kv->retry_at_ms)
		return -1;
	kv->ctx = u->unix_socket
	    ? redisConnectUnixWithTimeout(u->path, kv->timeout)
	    : redisConnectWithTimeout(u->host, u->port, kv->timeout);
	if (kv->ctx == NULL || kv->ctx->err) {
		kv_fail(kv, "cannot connect");
		return -1;
	}
	if (redisSetTimeout(kv->ctx, kv->timeout) != REDIS_OK ||
	    kv_handshake(kv) == -1) {
		kv_fail(kv, "cannot set up the connection");
		return -1;
	}
	log_info("redis: connected");
	return 0;
}

enum kv_status
kv_get(struct kv *kv, const char *key, struct buf *out)
{
	const char *argv[] = { "GET", key };
	enum kv_status st;
	redisReply *r;

	if (kv_ensure(kv) == -1)
		return KV_DOWN;
	if ((r = kv_command(kv, 2, argv, NULL)) == NULL)
		return kv_fail(kv, "GET");
	if (r->type == REDIS_REPLY_STRING)
		st = buf_append(out, r->str, r->len) == 0 ? KV_OK : KV_DOWN;
	else if (r->type == REDIS_REPLY_NIL)
		st = KV_MISS;
	else
		st = KV_DOWN;	/* an error reply: the entry is unusable */
	freeReplyObject(r);
	return st;
}

/*
 * EVALSHA, and EVAL when Redis lost the script (SCRIPT FLUSH, a restart
 * between our connect and now). argv[0] and argv[1] are filled in here.
 */
static enum kv_status
kv_eval(struct kv *kv, const char *sha, const char *script, int argc,
    const char **argv, size_t *lens, const char *what)
{
	enum kv_status st = KV_OK;
	redisReply *r;

	argv[0] = "EVALSHA";
	argv[1] = sha;
	lens[0] = 7;
	lens[1] = 40;
	if ((r = kv_command(kv, argc, argv, lens)) == NULL)
		return kv_fail(kv, what);
	if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
		freeReplyObject(r);
		argv[0] = "EVAL";
		argv[1] = script;
		lens[0] = 4;
		lens[1] = strlen(script);
		if ((r = kv_command(kv, argc, argv, lens)) == NULL)
			return kv_fail(kv, what);
	}
	if (r->type == REDIS_REPLY_ERROR) {
		char msg[128];

		log_warn("redis: %s: %s", what, log_safe(msg, sizeof(msg),
		    r->str));
		st = KV_DOWN;
	}
	freeReplyObject(r);
	return st;
}

enum kv_status
kv_fill(struct kv *kv, const char *key, const char *value, size_t len,
    int ttl, const char *index)
{
	const char *argv[7];
	size_t lens[7];
	char ttlbuf[16];
	int argc = 0;

	if (kv_ensure(kv) == -1)
		return KV_DOWN;
	snprintf(ttlbuf, sizeof(ttlbuf), "%d", ttl);
	argc = 2;
	argv[argc] = index ? "2" : "1";
	lens[argc++] = 1;
	argv[argc] = key;
	lens[argc++] = strlen(key);
	if (index != NULL) {
		argv[argc] = index;
		lens[argc++] = strlen(index);
	}
	argv[argc] = value;
	lens[argc++] = len;
	argv[argc] = ttlbuf;
	lens[argc++] = strlen(ttlbuf);
	return kv_eval(kv, kv->fill_sha, FILL_SCRIPT, argc, argv, lens,
	    "fill");
}

enum kv_status
kv_invalidate(struct kv *kv, const char *const *keys, int nkeys,
    const char *const *indexes, int nindexes)
{
	const char *argv[MAX_SCRIPT_KEYS + 4];
	size_t lens[MAX_SCRIPT_KEYS + 4];
	char numkeys[16], nplain[16];
	int argc = 2, i;

	enum kv_status st = KV_DOWN;
	int attempt;

	if (nkeys + nindexes > MAX_SCRIPT_KEYS || nkeys < 0 || nindexes < 0)
		return KV_DOWN;
	snprintf(numkeys, sizeof(numkeys), "%d", nkeys + nindexes);
	snprintf(nplain, sizeof(nplain), "%d", nkeys);
	argv[argc] = numkeys;
	lens[argc++] = strlen(numkeys);
	for (i = 0; i < nkeys; i++) {
		argv[argc] = keys[i];
		lens[argc++] = strlen(keys[i]);
	}
	for (i = 0; i < nindexes; i++) {
		argv[argc] = indexes[i];
		lens[argc++] = strlen(indexes[i]);
	}
	argv[argc] = nplain;
	lens[argc++] = strlen(nplain);
	/*
	 * A write's invalidation is worth a second connection attempt, even
	 * inside the pause after a failure: a stale entry is worse than a
	 * slower write.
	 */
	for (attempt = 0; attempt < 2 && st == KV_DOWN; attempt++) {
		if (attempt == 1)
			kv->retry_at_ms = 0;
		if (kv_ensure(kv) == -1)
			continue;
		st = kv_eval(kv, kv->inval_sha, INVALIDATE_SCRIPT, argc, argv,
		    lens, "invalidate");
		if (kv->ctx != NULL)
			break;	/* Redis answered, with an error: no retry */
	}
	return st;
}

enum kv_status
kv_ping(struct kv *kv)
{
	const char *argv[] = { "PING" };
	redisReply *r;
	int ok;

	if (kv_ensure(kv) == -1)
		return KV_DOWN;
	if ((r = kv_command(kv, 1, argv, NULL)) == NULL)
		return kv_fail(kv, "PING");
	ok = r->type == REDIS_REPLY_STATUS;
	freeReplyObject(r);
	return ok ? KV_OK : KV_DOWN;
}
