/*
 * The validators of a cached read: the tag of a body (FNV-1a 64, quoted
 * hex, the published test vectors) and If-None-Match's weak comparison.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "etag.h"

static void
tag(const char *s, char out[ETAG_MAX])
{
	etag_of(s, strlen(s), out);
}

static void
test_tag_is_fnv1a_64_quoted_hex(void **state)
{
	char t[ETAG_MAX];

	(void)state;
	tag("", t);
	assert_string_equal(t, "\"cbf29ce484222325\"");
	tag("a", t);
	assert_string_equal(t, "\"af63dc4c8601ec8c\"");
	tag("foobar", t);
	assert_string_equal(t, "\"85944171f73967e8\"");
	etag_of(NULL, 0, t);
	assert_string_equal(t, "\"cbf29ce484222325\"");
}

static void
test_tag_depends_on_every_byte(void **state)
{
	char a[ETAG_MAX], b[ETAG_MAX], c[ETAG_MAX];

	(void)state;
	tag("{\"count\":1}", a);
	tag("{\"count\":2}", b);
	etag_of("{\"count\":1}\0", 12, c);
	assert_string_not_equal(a, b);
	assert_string_not_equal(a, c);
	tag("{\"count\":1}", b);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), ETAG_MAX - 1);
}

/* the cache hashes a hit's body once; the tag made from that number */
static void
test_format_of_hash_is_the_tag(void **state)
{
	static const char *const bodies[] = { "", "a", "{\"count\":7}",
	    "{\"orderid\":4242,\"customerid\":17,\"netamount\":\"10.00\"}" };
	char a[ETAG_MAX], b[ETAG_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		tag(bodies[i], a);
		etag_format(etag_hash(bodies[i], strlen(bodies[i])), b);
		assert_string_equal(a, b);
	}
	etag_format(0, b);
	assert_string_equal(b, "\"0000000000000000\"");
	etag_format(UINT64_MAX, b);
	assert_string_equal(b, "\"ffffffffffffffff\"");
}

static void
test_none_match_lists(void **state)
{
	const char *e = "\"0123456789abcdef\"";

	(void)state;
	assert_true(etag_none_match("\"0123456789abcdef\"", e));
	assert_true(etag_none_match("  \"0123456789abcdef\"  ", e));
	assert_true(etag_none_match("\"x\", \"0123456789abcdef\"", e));
	assert_true(etag_none_match("\"x\",\"0123456789abcdef\",\"y\"", e));
	assert_true(etag_none_match(", ,\"0123456789abcdef\",", e));
	assert_false(etag_none_match("\"x\", \"y\"", e));
	assert_false(etag_none_match("\"0123456789abcde\"", e));
	assert_false(etag_none_match("\"0123456789abcdef0\"", e));
	assert_false(etag_none_match("", e));
	assert_false(etag_none_match(NULL, e));
}

static void
test_none_match_is_weak(void **state)
{
	const char *e = "\"0123456789abcdef\"";

	(void)state;
	assert_true(etag_none_match("W/\"0123456789abcdef\"", e));
	assert_true(etag_none_match("\"a\", W/\"0123456789abcdef\"", e));
	assert_false(etag_none_match("w/\"0123456789abcdef\"", e));
	assert_false(etag_none_match("W/ \"0123456789abcdef\"", e));
}

static void
test_none_match_star(void **state)
{
	const char *e = "\"0123456789abcdef\"";

	(void)state;
	assert_true(etag_none_match("*", e));
	assert_true(etag_none_match(" * ", e));
	assert_false(etag_none_match("*, \"x\"", e));
	assert_false(etag_none_match("**", e));
}

/* Malformed lists match nothing: the full answer, never a wrong 304. */
static void
test_none_match_malformed(void **state)
{
	const char *e = "\"0123456789abcdef\"";

	(void)state;
	assert_false(etag_none_match("0123456789abcdef", e));
	assert_false(etag_none_match("\"0123456789abcdef", e));
	assert_false(etag_none_match("\"0123456789abcdef\" junk", e));
	assert_false(etag_none_match("\"0123456789abcdef\"\"x\"", e));
	assert_false(etag_none_match("\"0123456789abcdef\", junk", e));
	assert_false(etag_none_match("\"a b\", \"0123456789abcdef\"", e));
	assert_false(etag_none_match("\"0123456789abcdef\"", "nope"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tag_is_fnv1a_64_quoted_hex),
		cmocka_unit_test(test_tag_depends_on_every_byte),
		cmocka_unit_test(test_format_of_hash_is_the_tag),
		cmocka_unit_test(test_none_match_lists),
		cmocka_unit_test(test_none_match_is_weak),
		cmocka_unit_test(test_none_match_star),
		cmocka_unit_test(test_none_match_malformed),
	};

	return cmocka_run_group_tests_name("etag", tests, NULL, NULL);
}
