/*
 * floor-redis.c: the bare FastCGI responder of floor.c, plus one Redis GET
 * per request.
 *
 * Every request reads one fixed key, <CACHE_PREFIX>bench:floor, and answers
 * its value (which the benchmark stores: a JSON document) as the body, 200;
 * no value is a 404, a failed GET a 503.  This is the floor of a cache hit:
 * nginx + FastCGI + the pool + one round trip to Redis, nothing else.
 * bench/run-bench.sh runs it as the pool (WORKER_BIN=build/floor-redis
 * ./deploy.sh scale N), so it gets the worker's environment: REDIS_URL,
 * read by the service's own kv_url_parse (cgi-src/kv_url.c), so that the
 * floor goes where the pool goes, the Unix socket deploy.sh gives it
 * included, and CACHE_PREFIX (default "orders:",
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

#include "kv.h"
#include "serve.h"

static struct kv_url url;
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
	redis = url.unix_socket ? redisConnectUnixWithTimeout(url.path, tv) :
	    redisConnectWithTimeout(url.host, url.port, tv);
	if (redis == NULL || redis->err) {
		fprintf(stderr, "floor-redis: cannot connect to %s:%d: %s\n",
		    url.unix_socket ? url.path : url.host,
		    url.unix_socket ? 0 : url.port,
		    redis ? redis->errstr : "out of memory");
		goto fail;
	}
	if (redisSetTimeout(redis, tv) != REDIS_OK)
		goto fail;
	if (url.password[0] != '\0' && !ok_reply(url.user[0]
	    ? redisCommand(redis, "AUTH %s %s", url.user, url.password)
	    : redisCommand(redis, "AUTH %s", url.password))) {
		fprintf(stderr, "floor-redis: AUTH refused\n");
		goto fail;
	}
	if (url.db != 0 &&
	    !ok_reply(redisCommand(redis, "SELECT %d", url.db)))
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
	const char *redis_url = getenv("REDIS_URL");
	const char *prefix = getenv("CACHE_PREFIX");
	char err[256];

	if (redis_url == NULL) {
		fprintf(stderr, "floor-redis: no REDIS_URL\n");
		return 1;
	}
	if (kv_url_parse(redis_url, &url, err, sizeof(err)) == -1) {
		fprintf(stderr, "floor-redis: %s\n", err);
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
