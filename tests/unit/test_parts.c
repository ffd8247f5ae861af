/* Routing, Redis URLs, cache keys, amounts of money. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

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
		cmocka_unit_test(test_money),
		cmocka_unit_test(test_dates),
	};

	return cmocka_run_group_tests_name("parts", tests, NULL, NULL);
}
