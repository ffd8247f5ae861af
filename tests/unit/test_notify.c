/* Payloads of orders_changed (sql/triggers.sql), as the invalidator reads them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "db_notify.h"

static void
test_ids(void **state)
{
	struct db_notify_change ch;

	assert_int_equal(db_notify_parse("17", &ch), 0);
	assert_int_equal(ch.all, 0);
	assert_int_equal(ch.nids, 1);
	assert_int_equal(ch.ids[0], 17);

	assert_int_equal(db_notify_parse("1,42,2147483647", &ch), 0);
	assert_int_equal(ch.all, 0);
	assert_int_equal(ch.nids, 3);
	assert_int_equal(ch.ids[0], 1);
	assert_int_equal(ch.ids[1], 42);
	assert_int_equal(ch.ids[2], INT32_MAX);
}

static void
test_star(void **state)
{
	struct db_notify_change ch;

	assert_int_equal(db_notify_parse("*", &ch), 0);
	assert_int_equal(ch.all, 1);
	assert_int_equal(ch.nids, 0);
}

/* Anything else is everything: the safe reading of what we do not know. */
static void
test_malformed_is_all(void **state)
{
	static const char *const bad[] = {
		"", ",", "1,", ",1", "1,,2", " 1", "1 ", "1;2", "-1", "+1",
		"0", "1,0", "2147483648", "99999999999999999999", "1,*", "**",
		"abc", "12a", "1.5", "0x10",
	};
	struct db_notify_change ch;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ch.all = 0;
		ch.nids = 5;
		assert_int_equal(db_notify_parse(bad[i], &ch), -1);
		assert_int_equal(ch.all, 1);
		assert_int_equal(ch.nids, 0);
	}
	assert_int_equal(db_notify_parse(NULL, &ch), -1);
	assert_int_equal(ch.all, 1);
}

/* The triggers name at most DB_NOTIFY_MAX_IDS; more is not ours to trust. */
static void
test_at_most_max_ids(void **state)
{
	char payload[(DB_NOTIFY_MAX_IDS + 1) * 12];
	struct db_notify_change ch;
	size_t len = 0;
	int i;

	for (i = 1; i <= DB_NOTIFY_MAX_IDS; i++)
		len += (size_t)snprintf(payload + len, sizeof(payload) - len,
		    "%s%d", i > 1 ? "," : "", 1000000 + i);
	assert_int_equal(db_notify_parse(payload, &ch), 0);
	assert_int_equal(ch.all, 0);
	assert_int_equal(ch.nids, DB_NOTIFY_MAX_IDS);
	assert_int_equal(ch.ids[DB_NOTIFY_MAX_IDS - 1],
	    1000000 + DB_NOTIFY_MAX_IDS);

	snprintf(payload + len, sizeof(payload) - len, ",7");
	assert_int_equal(db_notify_parse(payload, &ch), -1);
	assert_int_equal(ch.all, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_star),
		cmocka_unit_test(test_malformed_is_all),
		cmocka_unit_test(test_at_most_max_ids),
	};

	return cmocka_run_group_tests_name("notify", tests, NULL, NULL);
}
