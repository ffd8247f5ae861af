/*
 * The shared metrics file: a worker that died leaves its counts in the sum,
 * a live one is counted as a worker, and the text is Prometheus's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "metrics.h"

static char path[] = "/tmp/test_metrics.XXXXXX";
static char path2[] = "/tmp/test_metrics.XXXXXX";

static const char *
sample(const struct buf *b, const char *name)
{
	static char line[256];
	const char *p = buf_str(b);
	size_t n = strlen(name);

	for (; (p = strstr(p, name)) != NULL; p += n)
		if ((p == buf_str(b) || p[-1] == '\n') && p[n] == ' ') {
			snprintf(line, sizeof(line), "%.*s",
			    (int)strcspn(p + n + 1, "\n"), p + n + 1);
			return line;
		}
	return "absent";
}

static void
test_sum_over_workers_dead_and_alive(void **state)
{
	struct buf b = BUF_INIT;
	pid_t child;
	int st, fd, norphans;
	int32_t orphans[4];

	(void)state;
	assert_true((fd = mkstemp(path)) != -1);
	close(fd);
	if ((child = fork()) == 0) {	/* a worker that counts, then dies */
		if (metrics_init(path, orphans, 4, &norphans) != 0 ||
		    norphans != 0)
			_exit(1);
		metrics_request(MR_COUNT, 200, 3);
		metrics_request(MR_COUNT, 200, 30000);
		metrics_request(MR_OTHER, 404, 1);
		metrics_count(MC_CACHE_HIT, 2);
		inflight_begin(INFLIGHT_INSERT);	/* a write settled */
		inflight_end();
		inflight_begin(42);			/* and one not */
		_exit(0);
	}
	assert_true(child > 0);
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	/* The write the dead worker left in flight is handed over. */
	assert_int_equal(metrics_init(path, orphans, 4, &norphans), 0);
	assert_int_equal(norphans, 1);
	assert_int_equal(orphans[0], 42);
	/* Adopted once only: a later worker finds none. */
	if ((child = fork()) == 0)
		_exit(metrics_init(path, orphans, 4, &norphans) != 0 ?
		    99 : norphans);
	assert_true(child > 0);
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	metrics_request(MR_COUNT, 200, 0.2);
	metrics_request(MR_ORDER_GET, 999, 0.2);
	metrics_count(MC_CACHE_HIT, 1);
	metrics_pg(7);
	assert_int_equal(metrics_render(&b), 0);
	assert_string_equal(sample(&b,
	    "orders_http_requests_total{route=\"count\",status=\"200\"}"), "3");
	assert_string_equal(sample(&b,
	    "orders_http_requests_total{route=\"other\",status=\"404\"}"), "1");
	assert_string_equal(sample(&b,
	    "orders_http_requests_total{route=\"order_get\",status=\"other\"}"),
	    "1");
	assert_string_equal(sample(&b, "orders_cache_hits_total"), "3");
	assert_string_equal(sample(&b, "orders_cache_misses_total"), "0");
	assert_string_equal(sample(&b, "orders_workers"), "1");
	assert_string_equal(sample(&b,
	    "orders_http_request_duration_seconds_count"), "5");
	assert_string_equal(sample(&b,
	    "orders_http_request_duration_seconds_bucket{le=\"0.0005\"}"), "2");
	assert_string_equal(sample(&b,
	    "orders_http_request_duration_seconds_bucket{le=\"0.005\"}"), "4");
	assert_string_equal(sample(&b,
	    "orders_http_request_duration_seconds_bucket{le=\"5\"}"), "4");
	assert_string_equal(sample(&b,
	    "orders_http_request_duration_seconds_bucket{le=\"+Inf\"}"), "5");
	assert_string_equal(sample(&b,
	    "orders_postgres_query_duration_seconds_count"), "1");
	assert_string_equal(sample(&b,
	    "orders_postgres_query_duration_seconds_sum"), "0.007000");
	assert_string_equal(sample(&b,
	    "orders_redis_breaker{state=\"closed\"}"), "1");
	assert_non_null(strstr(buf_str(&b),
	    "# TYPE orders_http_requests_total counter\n"));
	buf_free(&b);
	unlink(path);
}

/*
 * A write owed its invalidation is seen by every worker of the file, and
 * stays owed until what is owed is paid: two different writes become
 * "everything", and paying an older one clears nothing newer.
 */
static void
test_owed_is_shared_and_merged(void **state)
{
	pid_t child;
	int st, fd, norphans;
	int32_t orphans[4];

	(void)state;
	assert_true((fd = mkstemp(path2)) != -1);
	close(fd);
	assert_int_equal(metrics_init(path2, orphans, 4, &norphans), 0);
	assert_int_equal(inflight_owed(), INFLIGHT_NONE);
	if ((child = fork()) == 0) {	/* another worker owes order 7 */
		if (metrics_init(path2, orphans, 4, &norphans) != 0)
			_exit(1);
		inflight_owe(7);
		inflight_owe(7);
		_exit(0);
	}
	assert_true(child > 0);
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(inflight_owed(), 7);
	inflight_paid(8);			/* not what is owed */
	assert_int_equal(inflight_owed(), 7);
	inflight_owe(9);			/* two orders: everything */
	assert_int_equal(inflight_owed(), INFLIGHT_INSERT);
	inflight_paid(7);			/* paid before 9 came */
	assert_int_equal(inflight_owed(), INFLIGHT_INSERT);
	inflight_paid(INFLIGHT_INSERT);
	assert_int_equal(inflight_owed(), INFLIGHT_NONE);
	unlink(path2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sum_over_workers_dead_and_alive),
		cmocka_unit_test(test_owed_is_shared_and_merged),
	};

	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
