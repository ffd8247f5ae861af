/*
 * REDIS_SENTINELS and REDIS_MASTER_NAME: what kv_sentinels_parse takes, and
 * that config_load refuses bad input at start-up with a message that says
 * what is wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "kv.h"

static void
test_one_and_many(void **state)
{
	struct kv_url u;
	char err[256];

	memset(&u, 0, sizeof(u));
	assert_int_equal(kv_sentinels_parse("127.0.0.1:26379", "orders", &u,
	    err, sizeof(err)), 0);
	assert_int_equal(u.nsentinels, 1);
	assert_string_equal(u.sentinels[0].host, "127.0.0.1");
	assert_int_equal(u.sentinels[0].port, 26379);
	assert_string_equal(u.master_name, "orders");

	assert_int_equal(kv_sentinels_parse("s1.example:26379,s2-b:1,"
	    "[::1]:26380,10.0.0.3:65535", "my_master.1", &u, err,
	    sizeof(err)), 0);
	assert_int_equal(u.nsentinels, 4);
	assert_string_equal(u.sentinels[0].host, "s1.example");
	assert_string_equal(u.sentinels[1].host, "s2-b");
	assert_int_equal(u.sentinels[1].port, 1);
	assert_string_equal(u.sentinels[2].host, "::1");
	assert_int_equal(u.sentinels[2].port, 26380);
	assert_int_equal(u.sentinels[3].port, 65535);
	assert_string_equal(u.master_name, "my_master.1");
}

static void
test_none(void **state)
{
	struct kv_url u;
	char err[256];

	memset(&u, 0, sizeof(u));
	u.nsentinels = 3;
	assert_int_equal(kv_sentinels_parse(NULL, "orders", &u, err,
	    sizeof(err)), 0);
	assert_int_equal(u.nsentinels, 0);
	assert_int_equal(kv_sentinels_parse("", NULL, &u, err, sizeof(err)), 0);
	assert_int_equal(u.nsentinels, 0);
}

static void
test_bad(void **state)
{
	static const char *bad[] = {
		"127.0.0.1",		/* no port */
		"127.0.0.1:",		/* empty port */
		":26379",		/* no host */
		"127.0.0.1:0",
		"127.0.0.1:65536",
		"127.0.0.1:26379x",
		"127.0.0.1:-1",
		"127.0.0.1:26379,",	/* an empty item */
		",127.0.0.1:26379",
		"a:1,,b:2",
		"a:1 ,b:2",		/* no spaces */
		"host name:1",
		"::1:26379",		/* IPv6 without brackets */
		"[::1]26379",
		"[::1]",
		"[::1:26379",
		"redis://127.0.0.1:26379",
		"a\n:1",
		"a:1:2",
	};
	struct kv_url u;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&u, 0, sizeof(u));
		err[0] = '\0';
		if (kv_sentinels_parse(bad[i], "orders", &u, err,
		    sizeof(err)) != -1)
			fail_msg("accepted REDIS_SENTINELS=\"%s\"", bad[i]);
		assert_non_null(strstr(err, "REDIS_SENTINELS"));
		assert_null(strchr(err, '\n'));
	}
}

static void
test_too_many(void **state)
{
	char list[KV_SENTINELS_MAX * 16 + 32] = "", item[16];
	struct kv_url u;
	char err[256];
	int i;

	for (i = 0; i < KV_SENTINELS_MAX; i++) {
		snprintf(item, sizeof(item), "%sh%d:%d", i ? "," : "", i, i + 1);
		strcat(list, item);
	}
	assert_int_equal(kv_sentinels_parse(list, "orders", &u, err,
	    sizeof(err)), 0);
	assert_int_equal(u.nsentinels, KV_SENTINELS_MAX);
	strcat(list, ",x:1");
	assert_int_equal(kv_sentinels_parse(list, "orders", &u, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "more than"));
}

static void
test_bad_master_name(void **state)
{
	char longname[200];
	struct kv_url u;
	char err[256];

	assert_int_equal(kv_sentinels_parse("a:1", "", &u, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "REDIS_MASTER_NAME"));
	assert_int_equal(kv_sentinels_parse("a:1", "my master", &u, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "REDIS_MASTER_NAME"));
	memset(longname, 'm', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(kv_sentinels_parse("a:1", longname, &u, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "REDIS_MASTER_NAME"));
}

/* Through config_load, as the worker and the invalidator start. */
static void
test_config(void **state)
{
	struct config cfg;
	char err[256];

	setenv("REDIS_URL", "redis://orders:secret@127.0.0.1:6390/2", 1);
	unsetenv("REDIS_SENTINELS");
	unsetenv("REDIS_MASTER_NAME");
	unsetenv("REDIS_SENTINEL_PASSWORD");
	assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.redis.nsentinels, 0);

	setenv("REDIS_SENTINELS", "127.0.0.1:26379,127.0.0.1:26380", 1);
	assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.redis.nsentinels, 2);
	assert_string_equal(cfg.redis.master_name, "orders");	/* default */
	/* REDIS_URL still gives the password and the db */
	assert_string_equal(cfg.redis.user, "orders");
	assert_string_equal(cfg.redis.password, "secret");
	assert_int_equal(cfg.redis.db, 2);
	assert_string_equal(cfg.redis.sentinel_password, "");

	setenv("REDIS_MASTER_NAME", "cache1", 1);
	setenv("REDIS_SENTINEL_PASSWORD", "s3nt", 1);
	assert_int_equal(config_load(&cfg, err, sizeof(err)), 0);
	assert_string_equal(cfg.redis.master_name, "cache1");
	assert_string_equal(cfg.redis.sentinel_password, "s3nt");

	setenv("REDIS_SENTINELS", "127.0.0.1:26379;127.0.0.1:26380", 1);
	assert_int_equal(config_load(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "REDIS_SENTINELS must be host:port"));
	assert_non_null(strstr(err, "127.0.0.1:26379;127.0.0.1:26380"));

	setenv("REDIS_SENTINELS", "127.0.0.1:26379", 1);
	setenv("REDIS_MASTER_NAME", "two words", 1);
	assert_int_equal(config_load(&cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "REDIS_MASTER_NAME"));

	unsetenv("REDIS_SENTINELS");
	unsetenv("REDIS_MASTER_NAME");
	unsetenv("REDIS_SENTINEL_PASSWORD");
	unsetenv("REDIS_URL");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_and_many),
		cmocka_unit_test(test_none),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_too_many),
		cmocka_unit_test(test_bad_master_name),
		cmocka_unit_test(test_config),
	};

	return cmocka_run_group_tests_name("sentinels", tests, NULL, NULL);
}
