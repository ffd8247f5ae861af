/* Criteria of GET /orders/count: parsing, refusal, canonical keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "query.h"

static const char *
key_of(const char *qs)
{
	static char key[CRITERIA_KEY_MAX];
	struct criteria c;
	char err[128];

	if (criteria_parse(qs, &c, err, sizeof(err)) == -1)
		return "ERROR";
	assert_true(criteria_key(&c, key, sizeof(key)) > 0);
	return key;
}

static void
test_no_criteria_is_all(void **state)
{
	assert_string_equal(key_of(NULL), "all");
	assert_string_equal(key_of(""), "all");
	assert_string_equal(key_of("&"), "all");
}

static void
test_order_does_not_matter(void **state)
{
	const char *want = "customerid=42&from=2004-01-01&to=2004-06-30";

	assert_string_equal(key_of("customerid=42&from=2004-01-01&to=2004-06-30"),
	    want);
	assert_string_equal(key_of("to=2004-06-30&from=2004-01-01&customerid=42"),
	    want);
	assert_string_equal(key_of("from=2004-01-01&to=2004-06-30&customerid=42"),
	    want);
}

static void
test_values_are_normalised(void **state)
{
	assert_string_equal(key_of("customerid=042"), "customerid=42");
	assert_string_equal(key_of("min_total=12.5"), "min_total=12.50");
	assert_string_equal(key_of("min_total=3"), "min_total=3.00");
	assert_string_equal(key_of("min_total=0.05"), "min_total=0.05");
	assert_string_equal(key_of("customerid=%34%32"), "customerid=42");
	assert_string_equal(key_of("min_total=1&customerid=7&to=2004-12-31"),
	    "customerid=7&min_total=1.00&to=2004-12-31");
}

static void
test_refused(void **state)
{
	static const char *const bad[] = {
		"foo=1",			/* unknown */
		"customerid=1&customerid=2",	/* repeated */
		"customerid=abc", "customerid=", "customerid=-1",
		"customerid=0", "customerid=2147483648", "customerid=1.0",
		"customerid= 1", "customerid=1%00",
		"from=2004-13-01", "from=2004-02-30", "from=2003-02-29",
		"from=04-01-01", "from=2004-1-01", "to=2004-01-01T00:00",
		"min_total=1.234", "min_total=-1", "min_total=1e3",
		"min_total=abc", "min_total=.5", "min_total=5.",
		"customerid", "=1", "%ZZ=1", "customerid=%4", "CUSTOMERID=1",
		"customerid=1;DROP TABLE orders",
	};
	struct criteria c;
	char err[128];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (criteria_parse(bad[i], &c, err, sizeof(err)) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_true(err[0] != '\0');
	}
}

static void
test_leap_day_and_values(void **state)
{
	struct criteria c;
	char err[128];

	assert_int_equal(criteria_parse("from=2004-02-29&min_total=10.25",
	    &c, err, sizeof(err)), 0);
	assert_true(c.has_from && !c.has_to && !c.has_customerid);
	assert_string_equal(c.from, "2004-02-29");
	assert_true(c.has_min_total);
	assert_int_equal(c.min_total_cents, 1025);
}

static void
test_overlong_query(void **state)
{
	char qs[QUERY_MAX + 10];
	struct criteria c;
	char err[128];

	memset(qs, 'a', sizeof(qs) - 1);
	qs[sizeof(qs) - 1] = '\0';
	assert_int_equal(criteria_parse(qs, &c, err, sizeof(err)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_criteria_is_all),
		cmocka_unit_test(test_order_does_not_matter),
		cmocka_unit_test(test_values_are_normalised),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_leap_day_and_values),
		cmocka_unit_test(test_overlong_query),
	};

	return cmocka_run_group_tests_name("query", tests, NULL, NULL);
}
