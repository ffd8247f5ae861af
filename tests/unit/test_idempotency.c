/*
 * Idempotency-Key on POST /orders: which keys are accepted, and when a
 * stored order is the one a retry asks for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "order.h"

static int
check(const char *key)
{
	char err[160];
	int rc;

	err[0] = '\0';
	rc = order_key_check(key, err, sizeof(err));
	if (rc != 0)
		assert_true(err[0] != '\0');
	else
		assert_true(err[0] == '\0');
	return rc;
}

static void
test_good_keys(void **state)
{
	char key[ORDER_KEY_MAX + 1];
	char all[0x7e - 0x21 + 2];
	int c;

	assert_int_equal(check("a"), 0);
	assert_int_equal(check("550e8400-e29b-41d4-a716-446655440000"), 0);
	for (c = 0x21; c <= 0x7e; c++)
		all[c - 0x21] = (char)c;
	all[sizeof(all) - 1] = '\0';
	assert_int_equal(check(all), 0);	/* every visible ASCII byte */
	memset(key, 'k', ORDER_KEY_MAX);
	key[ORDER_KEY_MAX] = '\0';
	assert_int_equal(check(key), 0);	/* 255 bytes */
}

static void
test_bad_keys_are_400(void **state)
{
	static const char *const bad[] = {
		"",			/* empty */
		"a b",			/* a space */
		" a",
		"a\t",			/* a tab, any control character */
		"\x01",
		"a\x1f",
		"a\x7f",		/* DEL */
		"caf\xc3\xa9",		/* not ASCII (UTF-8) */
		"\x80",
		"\xff",
	};
	char key[ORDER_KEY_MAX + 2];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (check(bad[i]) != 400)
			fail_msg("not 400: key %zu", i);
	memset(key, 'k', ORDER_KEY_MAX + 1);
	key[ORDER_KEY_MAX + 1] = '\0';
	assert_int_equal(check(key), 400);	/* 256 bytes */
}

static void
test_error_never_quotes_the_key(void **state)
{
	char err[160];

	assert_int_equal(order_key_check("secret\x01", err, sizeof(err)), 400);
	assert_null(strstr(err, "secret"));
}

/* The row stored for {"customerid":42,"netamount":12.5,"tax":1.03}. */
static struct order_row
stored(void)
{
	struct order_row r = { 7, "2004-02-29", 42, "12.50", "1.03", "13.53" };

	return r;
}

static void
test_matches(void **state)
{
	struct new_order o = { 42, 1250, 103, 1353, 0, "" };
	struct order_row r = stored();

	assert_true(order_matches(&o, &r));
	o.has_date = 1;		/* a retry that names the stored date */
	memcpy(o.orderdate, "2004-02-29", DATE_LEN + 1);
	assert_true(order_matches(&o, &r));
	/* amounts are compared in cents, not as text: "0.10" is 10 */
	o = (struct new_order){ 1, 10, 0, 10, 0, "" };
	r = (struct order_row){ 8, "2004-01-01", 1, "0.10", "0.00", "0.10" };
	assert_true(order_matches(&o, &r));
}

static void
test_differences(void **state)
{
	const struct new_order same = { 42, 1250, 103, 1353, 0, "" };
	struct order_row r = stored();
	struct new_order o;

	o = same;
	o.customerid = 43;
	assert_false(order_matches(&o, &r));
	o = same;
	o.net_cents = 1251;	/* one cent */
	o.total_cents = 1354;
	assert_false(order_matches(&o, &r));
	o = same;
	o.tax_cents = 102;
	o.total_cents = 1352;
	assert_false(order_matches(&o, &r));
	o = same;
	o.has_date = 1;
	memcpy(o.orderdate, "2004-03-01", DATE_LEN + 1);
	assert_false(order_matches(&o, &r));
	/* a row whose amount is not a number Postgres would print */
	o = same;
	memcpy(r.netamount, "x", 2);
	assert_false(order_matches(&o, &r));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_keys),
		cmocka_unit_test(test_bad_keys_are_400),
		cmocka_unit_test(test_error_never_quotes_the_key),
		cmocka_unit_test(test_matches),
		cmocka_unit_test(test_differences),
	};

	return cmocka_run_group_tests_name("idempotency", tests, NULL,
	    NULL);
}
