/* The body of POST /orders: what is accepted, and the status of what is not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "order.h"

static int
parse(const char *body, struct new_order *o)
{
	char err[160];

	err[0] = '\0';
	int rc = order_parse(body, strlen(body), o, err, sizeof(err));
	if (rc != 0)
		assert_true(err[0] != '\0');
	return rc;
}

static void
test_tutorial_body(void **state)
{
	struct new_order o;

	assert_int_equal(parse("{\"customerid\": 42, \"netamount\": 12.5, "
	    "\"tax\": 1.03}", &o), 0);
	assert_int_equal(o.customerid, 42);
	assert_int_equal(o.net_cents, 1250);
	assert_int_equal(o.tax_cents, 103);
	assert_int_equal(o.total_cents, 1353);
	assert_false(o.has_date);
}

static void
test_optional_date_and_integers(void **state)
{
	struct new_order o;

	assert_int_equal(parse("{\"orderdate\":\"2004-02-29\",\"tax\":0,"
	    "\"netamount\":7,\"customerid\":1}", &o), 0);
	assert_true(o.has_date);
	assert_string_equal(o.orderdate, "2004-02-29");
	assert_int_equal(o.net_cents, 700);
	assert_int_equal(o.total_cents, 700);
	/* "-0" is zero, not negative */
	assert_int_equal(parse("{\"customerid\":1,\"netamount\":-0,"
	    "\"tax\":-0.0}", &o), 0);
	assert_int_equal(o.total_cents, 0);
	/* escaped member names are the same names */
	assert_int_equal(parse("{\"cust\\u006fmerid\":3,\"netamount\":1,"
	    "\"tax\":1}", &o), 0);
	assert_int_equal(o.customerid, 3);
}

static void
test_malformed_is_400(void **state)
{
	static const char *const bad[] = {
		"", "{", "{\"customerid\": 4", "nope", "{\"customerid\":1,}",
		"{\"customerid\":1} x", "{'customerid':1}",
		"{\"customerid\":1,\"customerid\":2,\"netamount\":1,\"tax\":0}",
		"{\"customerid\":1,\"netamount\":1,\"tax\":0,\"cust\\u006fmerid\":2}",
		"{\"customerid\":1,\"netamount\":NaN,\"tax\":0}",
		"{\"customerid\":1,\"netamount\":Infinity,\"tax\":0}",
		"{\"customerid\":1,\"netamount\":-Infinity,\"tax\":0}",
		"{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
		"{\"customerid\":1,\"netamount\":1,\"tax\":0,\"x\":\"\xff\"}",
	};
	struct new_order o;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse(bad[i], &o) != 400)
			fail_msg("not 400: %s", bad[i]);
}

static void
test_broken_rules_are_422(void **state)
{
	static const char *const bad[] = {
		"[1,2]", "42", "\"str\"",
		"{\"netamount\":1,\"tax\":0}",			/* missing */
		"{\"customerid\":1,\"tax\":0}",
		"{\"customerid\":1,\"netamount\":1}",
		"{\"customerid\":1,\"netamount\":1,\"tax\":0,\"extra\":1}",
		"{\"customerid\":1,\"netamount\":-1,\"tax\":0}",
		"{\"customerid\":1,\"netamount\":1,\"tax\":-0.01}",
		"{\"customerid\":1,\"netamount\":12.345,\"tax\":0}",
		"{\"customerid\":1,\"netamount\":12.500,\"tax\":0}",
		"{\"customerid\":1,\"netamount\":1e2,\"tax\":0}",
		"{\"customerid\":1,\"netamount\":\"12\",\"tax\":0}",
		"{\"customerid\":1,\"netamount\":null,\"tax\":0}",
		"{\"customerid\":1,\"netamount\":99999999999999999999999,\"tax\":0}",
		"{\"customerid\":1,\"netamount\":10000000000,\"tax\":0}",
		"{\"customerid\":1,\"netamount\":9999999999.99,\"tax\":0.01}",
		"{\"customerid\":\"42\",\"netamount\":1,\"tax\":0}",
		"{\"customerid\":42.0,\"netamount\":1,\"tax\":0}",
		"{\"customerid\":0,\"netamount\":1,\"tax\":0}",
		"{\"customerid\":-5,\"netamount\":1,\"tax\":0}",
		"{\"customerid\":2147483648,\"netamount\":1,\"tax\":0}",
		"{\"customerid\":true,\"netamount\":1,\"tax\":0}",
		"{\"customerid\":1,\"netamount\":1,\"tax\":0,\"orderdate\":\"2004-02-30\"}",
		"{\"customerid\":1,\"netamount\":1,\"tax\":0,\"orderdate\":\"2004-2-3\"}",
		"{\"customerid\":1,\"netamount\":1,\"tax\":0,\"orderdate\":20040203}",
	};
	struct new_order o;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse(bad[i], &o) != 422)
			fail_msg("not 422: %s", bad[i]);
}

static void
test_largest_amount(void **state)
{
	struct new_order o;

	assert_int_equal(parse("{\"customerid\":2147483647,"
	    "\"netamount\":9999999999.98,\"tax\":0.01}", &o), 0);
	assert_int_equal(o.total_cents, 999999999999LL);
}

static void
test_duplicate_scan(void **state)
{
	const char *s;

	s = "{\"a\":{\"a\":1,\"b\":[\"a\",\"a\"]},\"b\":\"a\\\"\"}";
	assert_int_equal(json_check_members(s, strlen(s)), JSON_MEMBERS_OK);
	s = "{\"a\":1,\"b\":{\"c\":2},\"a\":3}";
	assert_int_equal(json_check_members(s, strlen(s)),
	    JSON_MEMBERS_DUPLICATE);
	s = "{\"a\":{'b':1}}";
	assert_int_equal(json_check_members(s, strlen(s)), JSON_MEMBERS_NOT_JSON);
	s = "{\"a\":\"it's\"}";
	assert_int_equal(json_check_members(s, strlen(s)), JSON_MEMBERS_OK);
}

static void
test_rendering(void **state)
{
	struct order_row r = { 17, "2004-01-05", 42, "12.50", "1.03", "13.53" };
	struct buf b = BUF_INIT;

	assert_int_equal(order_to_json(&r, &b), 0);
	assert_string_equal(buf_str(&b), "{\"orderid\":17,\"orderdate\":"
	    "\"2004-01-05\",\"customerid\":42,\"netamount\":12.50,\"tax\":1.03,"
	    "\"totalamount\":13.53}");
	buf_reset(&b);
	assert_int_equal(order_count_to_json(12000, &b), 0);
	assert_string_equal(buf_str(&b), "{\"count\":12000}");
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tutorial_body),
		cmocka_unit_test(test_optional_date_and_integers),
		cmocka_unit_test(test_malformed_is_400),
		cmocka_unit_test(test_broken_rules_are_422),
		cmocka_unit_test(test_largest_amount),
		cmocka_unit_test(test_duplicate_scan),
		cmocka_unit_test(test_rendering),
	};

	return cmocka_run_group_tests_name("order", tests, NULL, NULL);
}
