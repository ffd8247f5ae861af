/*
 * floor-redis.c: the bare FastCGI responder of floor.c, plus one Redis GET
 * per request.
 *
 * Every request reads one fixed key, <CACHE_PREFIX>bench:floor, and answers
 * its value (which the benchmark stores: a JSON document) as the body, 200;
 * no value is a 404, a failed GET a 503.  This is the floor of a cache hit:
 * nginx + FastCGI + the pool + one round trip to Redis, nothing else.
 * bench/run-bench.sh runs it as the pool (WORKER_BIN=build/floor-redis
 * ./deploy.sh scale N), so it gets the worker's environment: REDIS_URL
 * (redis://[user:password@]host[:port][/db], or the Unix socket's
 * unix://[user@]/path?password=...&db=N that deploy.sh gives the pool, so
 * that the floor's round trip is the service's; no percent-escapes: the
 * passwords deploy.sh makes are hex) and CACHE_PREFIX (default "orders:",
 * which the service's Redis user is limited to).
 *
 * Build: make bench-build (build/floor-redis)
 *
 * It connects once at start and again only after a failed GET; timeouts of
 * one second.  SIGTERM / SIGUSR1 end it after the request in hand, as
 * floor.c does.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <fcgiapp.h>
#include <hiredis/hiredis.h>

#include "serve.h"

static char host[256], sockpath[108], user[128], password[256];
static int port = 6379, db;
static char key[256];
static redisContext *redis;
static volatile sig_atomic_t stopping;

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
	FCGX_ShutdownPending();
}

static int
install_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: see floor.c */
	if (sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGUSR1, &sa, NULL) == -1)
		return -1;
	return sigaction(SIGINT, &sa, NULL);
}

/* copy [s, e) into dst of size n; -1 when it does not fit */
static int
copy(char *dst, size_t n, const char *s, const char *e)
{
	if ((size_t)(e - s) >= n)
		return -1;
	memcpy(dst, s, (size_t)(e - s));
	dst[e - s] = '\0';
	return 0;
}

/* unix://[user@]/path[?password=...&db=N]: 0, or -1 */
static int
parse_unix_url(const char *p)
{
	const char *at, *q, *seg, *end;

	if (*p != '/') {
		if ((at = strchr(p, '@')) == NULL ||
		    copy(user, sizeof(user), p, at) == -1)
			return -1;
		p = at + 1;
	}
	q = strchr(p, '?');
	if (*p != '/' || copy(sockpath, sizeof(sockpath), p,
	    q ? q : p + strlen(p)) == -1)
		return -1;
	for (seg = q; seg != NULL && *seg != '\0'; seg = end) {
		seg++;
		end = strchr(seg, '&');
		if (end == NULL)
			end = seg + strlen(seg);
		if (strncmp(seg, "password=", 9) == 0) {
			if (copy(password, sizeof(password), seg + 9, end) == -1)
				return -1;
		} else if (strncmp(seg, "db=", 3) == 0)
			db = atoi(seg + 3);
		else
			return -1;
	}
	return 0;
}

/* redis://[user:password@]host[:port][/db] or parse_unix_url's: 0, or -1 */
static int
parse_url(const char *url)
{
	const char *p, *at, *colon, *slash;

	if (strncmp(url, "unix://", 7) == 0)
		return parse_unix_url(url + 7);
	if (strncmp(url, "redis://", 8) != 0)
		return -1;
	p = url + 8;
	slash = strchr(p, '/');
	if (slash == NULL)
		slash = p + strlen(p);
	at = memchr(p, '@', (size_t)(slash - p));
	if (at != NULL) {
		colon = memchr(p, ':', (size_t)(at - p));
		if (colon != NULL) {
			if (copy(user, sizeof(user), p, colon) == -1 ||
			    copy(password, sizeof(password), colon + 1, at) == -1)
				return -1;
		} else if (copy(password, sizeof(password), p, at) == -1)
			return -1;
		p = at + 1;
	}
	colon = memchr(p, ':', (size_t)(slash - p));
	if (copy(host, sizeof(host), p, colon ? colon : slash) == -1 ||
	    host[0] == '\0')
		return -1;
	if (colon != NULL && (port = atoi(colon + 1)) <= 0)
		return -1;
	if (*slash == '/' && slash[1] != '\0')
		db = atoi(slash + 1);
	return 0;
}

/* a reply that is not an error, freed */
static int
ok_reply(redisReply *r)
{
	int ok = r != NULL && r->type != REDIS_REPLY_ERROR;

	if (r != NULL)
		freeReplyObject(r);
	return ok;
}

static int
redis_connect(void)
{
	struct timeval tv = { 1, 0 };

	if (redis != NULL)
		redisFree(redis);
	redis = sockpath[0] ? redisConnectUnixWithTimeout(sockpath, tv) :
	    redisConnectWithTimeout(host, port, tv);
	if (redis == NULL || redis->err) {
		fprintf(stderr, "floor-redis: cannot connect to %s:%d: %s\n",
		    sockpath[0] ? sockpath : host, sockpath[0] ? 0 : port,
		    redis ? redis->errstr : "out of memory");
		goto fail;
	}
	if (redisSetTimeout(redis, tv) != REDIS_OK)
		goto fail;
	if (password[0] != '\0' && !ok_reply(user[0]
	    ? redisCommand(redis, "AUTH %s %s", user, password)
	    : redisCommand(redis, "AUTH %s", password))) {
		fprintf(stderr, "floor-redis: AUTH refused\n");
		goto fail;
	}
	if (db != 0 && !ok_reply(redisCommand(redis, "SELECT %d", db)))
		goto fail;
	return 0;
fail:
	if (redis != NULL)
		redisFree(redis);
	redis = NULL;
	return -1;
}

static void
answer(FCGX_Request *req, const char *status, const char *body, size_t len)
{
	FCGX_FPrintF(req->out, "Status: %s\r\n"
	    "Content-Type: application/json\r\n"
	    "Content-Length: %lu\r\n\r\n", status, (unsigned long)len);
	(void)FCGX_PutStr(body, (int)len, req->out);
}

static void
serve(void *arg, FCGX_Request *req)
{
	static const char down[] = "{\"error\":\"redis\"}";
	static const char none[] = "{\"error\":\"no value\"}";
	redisReply *r = NULL;

	(void)arg;
	if (redis != NULL || redis_connect() == 0) {
		r = redisCommand(redis, "GET %s", key);
		if (r == NULL && redis_connect() == 0)	/* lost: once more */
			r = redisCommand(redis, "GET %s", key);
	}
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		if (r == NULL && redis != NULL) {
			redisFree(redis);	/* unusable after an error */
			redis = NULL;
		}
		answer(req, "503 Service Unavailable", down, sizeof(down) - 1);
	} else if (r->type == REDIS_REPLY_STRING)
		answer(req, "200 OK", r->str, r->len);
	else
		answer(req, "404 Not Found", none, sizeof(none) - 1);
	if (r != NULL)
		freeReplyObject(r);
}

int
main(void)
{
	/* The service's own loop (cgi-src/serve.c): connections kept between
	   requests, closed at once when not (not a floor else). */
	struct serve srv = { 0, serve, NULL, &stopping, 1, 10000 };
	const char *url = getenv("REDIS_URL"), *prefix = getenv("CACHE_PREFIX");

	if (url == NULL || parse_url(url) == -1) {
		fprintf(stderr, "floor-redis: REDIS_URL must be "
		    "redis://[user:password@]host[:port][/db] or "
		    "unix://[user@]/path?password=...&db=N\n");
		return 1;
	}
	snprintf(key, sizeof(key), "%sbench:floor", prefix ? prefix : "orders:");
	if (FCGX_Init() != 0 || install_handler() == -1) {
		fprintf(stderr, "floor-redis: cannot set up FastCGI\n");
		return 1;
	}
	(void)redis_connect();	/* a failure is retried per request */
	fprintf(stderr, "floor-redis: pid %ld ready (key %s)\n",
	    (long)getpid(), key);
	(void)serve_loop(&srv);
	if (redis != NULL)
		redisFree(redis);
	fprintf(stderr, "floor-redis: pid %ld stopping\n", (long)getpid());
	return 0;
}
