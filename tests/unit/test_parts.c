/* Routing, Redis URLs, cache keys, amounts of money. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "cache.h"
#include "http.h"
#include "kv.h"
#include "route.h"
#include "valid.h"

static void h_count(struct exchange *x) { (void)x; }
static void h_get(struct exchange *x) { (void)x; }
static void h_del(struct exchange *x) { (void)x; }
static void h_post(struct exchange *x) { (void)x; }

static const struct route table[] = {
	{ "/orders/count", HTTP_GET, h_count },
	{ "/orders/{id}", HTTP_GET, h_get },
	{ "/orders/{id}", HTTP_DELETE, h_del },
	{ "/orders", HTTP_POST, h_post },
};
#define NROUTES (sizeof(table) / sizeof(table[0]))

static enum route_result
match(const char *path, unsigned method, route_handler *h, int32_t *id,
    unsigned *allowed)
{
	const struct route *r;
	enum route_result rr;

	rr = route_match(table, NROUTES, path, method, &r, id, allowed);
	*h = rr == ROUTE_OK ? r->handler : NULL;
	return rr;
}

static void
test_routes(void **state)
{
	route_handler h;
	unsigned allowed;
	int32_t id;
	char allow[64];

	assert_int_equal(match("/orders/count", HTTP_GET, &h, &id, &allowed),
	    ROUTE_OK);
	assert_ptr_equal(h, h_count);
	assert_int_equal(match("/orders/count", HTTP_HEAD, &h, &id, &allowed),
	    ROUTE_OK);
	assert_int_equal(match("/orders/17", HTTP_GET, &h, &id, &allowed),
	    ROUTE_OK);
	assert_ptr_equal(h, h_get);
	assert_int_equal(id, 17);
	assert_int_equal(match("/orders/017", HTTP_DELETE, &h, &id, &allowed),
	    ROUTE_OK);
	assert_ptr_equal(h, h_del);
	assert_int_equal(id, 17);
	assert_int_equal(match("/orders/17", HTTP_POST, &h, &id, &allowed),
	    ROUTE_BAD_METHOD);
	assert_string_equal(route_allow(allowed, allow, sizeof(allow)),
	    "GET, HEAD, DELETE");
	assert_int_equal(match("/orders", HTTP_GET, &h, &id, &allowed),
	    ROUTE_BAD_METHOD);
	assert_string_equal(route_allow(allowed, allow, sizeof(allow)), "POST");
	assert_int_equal(match("/orders/count", HTTP_OTHER, &h, &id, &allowed),
	    ROUTE_BAD_METHOD);
}

static void
test_routes_not_found(void **state)
{
	static const char *const paths[] = {
		"/", "", "/orders/", "/orders/abc", "/orders/0", "/orders/-1",
		"/orders/2147483648", "/orders/1/", "/orders/1/x",
		"//orders/1", "/orders//1", "/orders/%31", "/orders%2F1",
		"/orders/../orders/1", "/orders/count/", "/ORDERS/count",
		"/orders/1.0", "/orders/ 1",
	};
	route_handler h;
	unsigned allowed;
	int32_t id;
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (match(paths[i], HTTP_GET, &h, &id, &allowed) !=
		    ROUTE_NOT_FOUND)
			fail_msg("matched: '%s'", paths[i]);
}

static void
test_redis_urls(void **state)
{
	struct kv_url u;
	char err[256];

	assert_int_equal(kv_url_parse("redis://default:s%40cret@127.0.0.1:6390/2",
	    &u, err, sizeof(err)), 0);
	assert_false(u.unix_socket);
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 6390);
	assert_string_equal(u.user, "default");
	assert_string_equal(u.password, "s@cret");
	assert_int_equal(u.db, 2);

	assert_int_equal(kv_url_parse("redis://localhost", &u, err,
	    sizeof(err)), 0);
	assert_string_equal(u.host, "localhost");
	assert_int_equal(u.port, 6379);
	assert_string_equal(u.password, "");
	assert_int_equal(u.db, 0);

	assert_int_equal(kv_url_parse("redis://:pw@[::1]:7000/", &u, err,
	    sizeof(err)), 0);
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 7000);
	assert_string_equal(u.user, "");
	assert_string_equal(u.password, "pw");

	assert_int_equal(kv_url_parse("unix:///run/redis.sock?password=x&db=3",
	    &u, err, sizeof(err)), 0);
	assert_true(u.unix_socket);
	assert_string_equal(u.path, "/run/redis.sock");
	assert_string_equal(u.password, "x");
	assert_int_equal(u.db, 3);

	assert_string_equal(u.user, "");

	/* redis-py's user before the path: deploy.sh's URL for the pool */
	assert_int_equal(kv_url_parse("unix://orders@/run/o/redis.sock?"
	    "password=p%26q&db=0", &u, err, sizeof(err)), 0);
	assert_true(u.unix_socket);
	assert_string_equal(u.path, "/run/o/redis.sock");
	assert_string_equal(u.user, "orders");
	assert_string_equal(u.password, "p&q");
	assert_int_equal(u.db, 0);
	assert_int_equal(kv_url_parse("unix://u%40x:pw@/s", &u, err,
	    sizeof(err)), 0);
	assert_string_equal(u.path, "/s");
	assert_string_equal(u.user, "u@x");
	assert_string_equal(u.password, "pw");

	assert_int_equal(kv_url_parse("unix://orders@run/redis.sock", &u, err,
	    sizeof(err)), -1);
	assert_int_equal(kv_url_parse("unix://orders/run/redis.sock", &u, err,
	    sizeof(err)), -1);
	assert_int_equal(kv_url_parse("unix://orders@", &u, err,
	    sizeof(err)), -1);
	assert_int_equal(kv_url_parse("rediss://h:6380", &u, err,
	    sizeof(err)), -1);
	assert_int_equal(kv_url_parse("http://h", &u, err, sizeof(err)), -1);
	assert_int_equal(kv_url_parse("redis://h:99999", &u, err,
	    sizeof(err)), -1);
	assert_int_equal(kv_url_parse("redis://h:6379/16", &u, err,
	    sizeof(err)), -1);
	assert_int_equal(kv_url_parse("redis://", &u, err, sizeof(err)), -1);
	assert_int_equal(kv_url_parse("unix://?db=1", &u, err, sizeof(err)),
	    -1);
}

static void
test_cache_keys(void **state)
{
	static const struct cache_ns counts = { "count", 1 };
	static const struct cache_ns ids = { "id", 0 };
	char key[CACHE_KEY_MAX], small[8];

	assert_int_equal(cache_key(key, sizeof(key), "orders:", &counts,
	    "customerid=42&from=2004-01-01"), 42);
	assert_string_equal(key, "orders:count:customerid=42&from=2004-01-01");
	cache_key(key, sizeof(key), "orders:", &ids, "17");
	assert_string_equal(key, "orders:id:17");
	cache_index_key(key, sizeof(key), "app1:", &counts);
	assert_string_equal(key, "app1:index:count");
	assert_int_equal(cache_key(small, sizeof(small), "orders:", &ids,
	    "17"), -1);
	cache_gen_key(key, sizeof(key), "orders:", &ids);
	assert_string_equal(key, "orders:gen:id");
	/* "orders:id:17" is 12 bytes: 13 hold it and its NUL, 12 do not */
	assert_int_equal(cache_key(key, 13, "orders:", &ids, "17"), 12);
	assert_string_equal(key, "orders:id:17");
	assert_int_equal(cache_key(key, 12, "orders:", &ids, "17"), -1);
	assert_int_equal(cache_index_key(key, 0, "", &ids), -1);
}

/* Decimal numbers without printf, at their edges. */
static void
test_fmt_numbers(void **state)
{
	char num[FMT_INT_MAX], want[FMT_INT_MAX];
	const long long v[] = { 0, 7, -7, 9, 10, -10, 99, 100, 2147483647LL,
	    -2147483647LL - 1, 9223372036854775807LL,
	    -9223372036854775807LL - 1 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		snprintf(want, sizeof(want), "%lld", v[i]);
		assert_int_equal(fmt_long(num, v[i]), strlen(want));
		assert_string_equal(num, want);
	}
	assert_int_equal(fmt_ulong(num, 18446744073709551615ULL), 20);
	assert_string_equal(num, "18446744073709551615");
}

/* Our RESP is hiredis's, byte for byte: empty, binary, long arguments. */
static void
test_resp_format(void **state)
{
	static char big[70000];
	const char *argv[] = { "EVALSHA", "", "a\r\nb", big, "x" };
	size_t lens[] = { 7, 0, 4, sizeof(big), 1 };
	struct buf out = BUF_INIT;
	char *want;
	int n, argc;

	(void)state;
	memset(big, 'v', sizeof(big));
	big[100] = '\0';	/* a NUL inside: lengths, not strlen */
	for (argc = 0; argc <= 5; argc++) {
		n = redisFormatCommandArgv(&want, argc, argv, lens);
		assert_true(n > 0);
		assert_int_equal(kv_format_command(&out, argc, argv, lens), 0);
		assert_int_equal(out.len, (size_t)n);
		assert_memory_equal(out.data, want, (size_t)n);
		redisFreeCommand(want);
	}
	/* lens NULL: each argument's strlen */
	n = redisFormatCommandArgv(&want, 3, argv, NULL);
	assert_int_equal(kv_format_command(&out, 3, argv, NULL), 0);
	assert_int_equal(out.len, (size_t)n);
	assert_memory_equal(out.data, want, (size_t)n);
	redisFreeCommand(want);
	buf_free(&out);
}

/* What a request is made of: the first of each name; "" as none. */
static void
test_request_parse(void **state)
{
	char *env[] = {
		"REQUEST_URI", "REQUEST_I=/no", "REQUEST_URIS=/no",
		"HTTP_HOST=localhost", "REQUEST_METHOD=POST",
		"REQUEST_URI=/orders/7?x=1", "QUERY_STRING=x=1",
		"REQUEST_ID=", "HTTP_IDEMPOTENCY_KEY=", "CONTENT_TYPEX=no",
		"CONTENT_TYPE=application/json", "HTTP_IDEMPOTENCY_KEY=k2",
		"HTTP_IF_NONE_MATCH=\"a\"", "HTTP_IF_NONE_MATCH=\"b\"",
		"REQUEST_METHOD=GET", "CONTENT_LENGTH=12", "RE", "", NULL
	};
	char *bad_len[] = { "REQUEST_METHOD=GET", "CONTENT_LENGTH=1x", NULL };
	char *none[] = { NULL };
	char long_uri[HTTP_PATH_MAX + 32] = "REQUEST_URI=/";
	char *too_long[] = { long_uri, NULL };
	struct request r;
	char err[64];

	(void)state;
	assert_int_equal(http_request_parse(env, &r, err, sizeof(err)), 0);
	assert_int_equal(r.method, HTTP_POST);
	assert_string_equal(r.path, "/orders/7");
	assert_string_equal(r.query, "x=1");
	assert_null(r.request_id);
	assert_string_equal(r.content_type, "application/json");
	assert_int_equal(r.content_length, 12);
	/* an empty key is still a key, and two came */
	assert_string_equal(r.idempotency_key, "");
	assert_int_equal(r.idempotency_keys, 2);
	assert_string_equal(r.if_none_match, "\"a\"");

	assert_int_equal(http_request_parse(none, &r, err, sizeof(err)), 0);
	assert_int_equal(r.method, HTTP_OTHER);
	assert_string_equal(r.path, "/");
	assert_null(r.query);
	assert_null(r.idempotency_key);
	assert_int_equal(r.idempotency_keys, 0);
	assert_int_equal(r.content_length, -1);

	assert_int_equal(http_request_parse(bad_len, &r, err, sizeof(err)),
	    400);
	memset(long_uri + strlen(long_uri), 'a', HTTP_PATH_MAX);
	long_uri[sizeof(long_uri) - 1] = '\0';
	assert_int_equal(http_request_parse(too_long, &r, err, sizeof(err)),
	    414);
}

/* The FastCGI head: status line, headers, length, timings, blank line. */
static void
test_http_head(void **state)
{
	struct response resp;
	struct buf head = BUF_INIT;

	(void)state;
	memset(&resp, 0, sizeof(resp));
	http_response_reset(&resp);
	resp.status = 200;
	http_header(&resp, "X-Cache", "HIT");
	http_header(&resp, "X-Evil", "a\r\nSet-Cookie: b");
	http_headerf(&resp, "Location", "/orders/%d", 7);
	buf_puts(&resp.body, "{\"count\":50}");
	resp.cache_ms = 1.234;
	resp.db_ms = 0;
	assert_int_equal(http_head(&head, &resp, 12.999), 0);
	assert_string_equal(head.data, "Status: 200 OK\r\n"
	    "X-Cache: HIT\r\nX-Evil: a\r\nLocation: /orders/7\r\n"
	    "Content-Length: 12\r\n"
	    "Server-Timing: cache;dur=1.23, db;dur=0.00, total;dur=13.00"
	    "\r\n\r\n");

	/* 304 and 204: no Content-Length; odd times are 0 */
	buf_reset(&resp.headers);
	resp.status = 304;
	resp.cache_ms = -3;
	resp.db_ms = 0.005;
	assert_int_equal(http_head(&head, &resp, 1234567.891), 0);
	assert_string_equal(head.data, "Status: 304 Not Modified\r\n"
	    "Server-Timing: cache;dur=0.00, db;dur=0.01, total;dur=1234567.89"
	    "\r\n\r\n");
	resp.status = 204;
	assert_int_equal(http_head(&head, &resp, 0), 0);
	assert_null(strstr(head.data, "Content-Length"));
	assert_non_null(strstr(head.data, "Status: 204 No Content\r\n"));

	http_response_free(&resp);
	buf_free(&head);
}

static void
test_money(void **state)
{
	int64_t c;
	char buf[24];

	assert_int_equal(valid_money("0", 1, &c), MONEY_OK);
	assert_int_equal(c, 0);
	assert_int_equal(valid_money("12.5", 4, &c), MONEY_OK);
	assert_int_equal(c, 1250);
	assert_int_equal(valid_money("12.05", 5, &c), MONEY_OK);
	assert_int_equal(c, 1205);
	assert_int_equal(valid_money("1.234", 5, &c), MONEY_PRECISION);
	assert_int_equal(valid_money("-1", 2, &c), MONEY_NEGATIVE);
	assert_int_equal(valid_money("1e3", 3, &c), MONEY_MALFORMED);
	assert_int_equal(valid_money("+1", 2, &c), MONEY_MALFORMED);
	assert_int_equal(valid_money("10000000000", 11, &c), MONEY_TOO_LARGE);
	assert_int_equal(valid_money("99999999999999999999999", 23, &c),
	    MONEY_TOO_LARGE);
	assert_string_equal(money_format(1205, buf, sizeof(buf)), "12.05");
	assert_string_equal(money_format(7, buf, sizeof(buf)), "0.07");
}

static void
test_dates(void **state)
{
	assert_int_equal(valid_date("2000-02-29", 10), 0);
	assert_int_equal(valid_date("1900-02-29", 10), -1);
	assert_int_equal(valid_date("2004-04-31", 10), -1);
	assert_int_equal(valid_date("2004-12-31", 10), 0);
	assert_int_equal(valid_date("0999-01-01", 10), -1);
	assert_int_equal(valid_date("2004-00-10", 10), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_routes_not_found),
		cmocka_unit_test(test_redis_urls),
		cmocka_unit_test(test_cache_keys),
		cmocka_unit_test(test_fmt_numbers),
		cmocka_unit_test(test_resp_format),
		cmocka_unit_test(test_request_parse),
		cmocka_unit_test(test_http_head),
		cmocka_unit_test(test_money),
		cmocka_unit_test(test_dates),
	};

	return cmocka_run_group_tests_name("parts", tests, NULL, NULL);
}
