/*
 * The circuit breaker's state machine, on a clock the test moves; then the
 * Redis layer's use of it against sockets that refuse or never answer.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "breaker.h"
#include "clock.h"
#include "kv.h"
#include "log.h"

static const struct breaker_config cfg = {
	.threshold = 3, .hold_ms = 200, .base_ms = 1000, .max_ms = 5000,
	.jitter_pct = 25
};

/* Fails b threshold times, each once the hold-off allows; returns when. */
static double
trip(struct breaker *b, double now)
{
	int i;

	for (i = 0; i < cfg.threshold; i++) {
		assert_true(breaker_allow(b, now));
		assert_int_equal(breaker_failure(b, now + 100),
		    i + 1 < cfg.threshold ? BREAKER_SAME : BREAKER_OPENED);
		now += 100 + cfg.hold_ms;
	}
	return now - cfg.hold_ms;
}

static void
assert_jittered(int ms, int base)
{
	assert_in_range(ms, base - base * cfg.jitter_pct / 100,
	    base + base * cfg.jitter_pct / 100);
}

static void
test_closed_counts_failures_in_a_row(void **state)
{
	struct breaker b;

	breaker_init(&b, &cfg, 1);
	assert_int_equal(b.state, BREAKER_CLOSED);
	assert_true(breaker_allow(&b, 0));
	assert_int_equal(breaker_failure(&b, 100), BREAKER_SAME);
	/* the hold-off: nothing goes for hold_ms after a failure */
	assert_false(breaker_allow(&b, 100));
	assert_false(breaker_allow(&b, 299));
	assert_true(breaker_allow(&b, 300));
	assert_int_equal(breaker_failure(&b, 400), BREAKER_SAME);
	/* a success resets the count and the hold-off */
	assert_int_equal(breaker_success(&b), BREAKER_SAME);
	assert_int_equal(b.failures, 0);
	assert_true(breaker_allow(&b, 401));
	assert_int_equal(breaker_failure(&b, 500), BREAKER_SAME);
	assert_true(breaker_allow(&b, 700));
	assert_int_equal(breaker_failure(&b, 800), BREAKER_SAME);
	assert_int_equal(b.state, BREAKER_CLOSED);
	/* the third in a row opens it */
	assert_true(breaker_allow(&b, 1000));
	assert_int_equal(breaker_failure(&b, 1100), BREAKER_OPENED);
	assert_int_equal(b.state, BREAKER_OPEN);
	assert_int_equal(b.failures, 3);
}

static void
test_open_refuses_then_one_probe(void **state)
{
	struct breaker b;
	double t;

	breaker_init(&b, &cfg, 42);
	t = trip(&b, 0);
	assert_jittered(b.open_ms, cfg.base_ms);
	assert_false(breaker_allow(&b, t));
	assert_false(breaker_allow(&b, t + b.open_ms - 1));
	/* the interval is over: exactly one call goes */
	assert_true(breaker_allow(&b, t + b.open_ms));
	assert_int_equal(b.state, BREAKER_HALF_OPEN);
	assert_false(breaker_allow(&b, t + b.open_ms));
	assert_false(breaker_allow(&b, t + b.open_ms + 50));
	/* it answered: closed, count reset, no hold-off */
	assert_int_equal(breaker_success(&b), BREAKER_RECLOSED);
	assert_int_equal(b.state, BREAKER_CLOSED);
	assert_int_equal(b.failures, 0);
	assert_true(breaker_allow(&b, t + b.open_ms + 60));
	/* and it takes threshold failures again to open it */
	assert_int_equal(breaker_failure(&b, t + 2000), BREAKER_SAME);
	assert_int_equal(b.state, BREAKER_CLOSED);
}

static void
test_failed_probes_double_up_to_the_cap(void **state)
{
	struct breaker b;
	int base = cfg.base_ms, i;
	double t;

	breaker_init(&b, &cfg, 7);
	t = trip(&b, 0);
	for (i = 0; i < 6; i++) {
		assert_jittered(b.open_ms, base);
		t += b.open_ms;
		assert_true(breaker_allow(&b, t));
		assert_int_equal(breaker_failure(&b, t + 100), BREAKER_OPENED);
		assert_int_equal(b.failures, cfg.threshold + i + 1);
		t += 100;
		assert_false(breaker_allow(&b, t));
		base = base * 2 > cfg.max_ms ? cfg.max_ms : base * 2;
	}
	assert_int_equal(b.interval_ms, cfg.max_ms);
	assert_jittered(b.open_ms, cfg.max_ms);
	/* a success brings the first interval back */
	t += b.open_ms;
	assert_true(breaker_allow(&b, t));
	assert_int_equal(breaker_success(&b), BREAKER_RECLOSED);
	t = trip(&b, t);
	assert_jittered(b.open_ms, cfg.base_ms);
}

static void
test_calls_made_in_spite_of_it(void **state)
{
	struct breaker b;
	double t, until;

	breaker_init(&b, &cfg, 3);
	t = trip(&b, 0);
	until = b.until_ms;
	/* an invalidation that failed while open: the interval stands */
	assert_int_equal(breaker_failure(&b, t + 10), BREAKER_SAME);
	assert_int_equal(b.state, BREAKER_OPEN);
	assert_true(b.until_ms == until);
	assert_false(breaker_allow(&b, t + 20));
	/* one that got an answer: Redis is back, closed at once */
	assert_int_equal(breaker_success(&b), BREAKER_RECLOSED);
	assert_true(breaker_allow(&b, t + 30));
}

static void
test_jitter_spreads_processes(void **state)
{
	struct breaker b;
	int i, lo = cfg.base_ms * 2, hi = 0;

	for (i = 0; i < 200; i++) {
		breaker_init(&b, &cfg, (unsigned long long)i * 7919 + 1);
		trip(&b, 0);
		assert_jittered(b.open_ms, cfg.base_ms);
		if (b.open_ms < lo)
			lo = b.open_ms;
		if (b.open_ms > hi)
			hi = b.open_ms;
	}
	/* 200 draws from +-250 ms cover most of the range */
	assert_true(lo < cfg.base_ms - 150);
	assert_true(hi > cfg.base_ms + 150);
}

static void
test_unreported_probe_does_not_wedge_it(void **state)
{
	struct breaker b;
	double t;

	breaker_init(&b, &cfg, 9);
	t = trip(&b, 0) + b.open_ms;
	assert_true(breaker_allow(&b, t));
	assert_false(breaker_allow(&b, t + cfg.max_ms - 1));
	assert_true(breaker_allow(&b, t + cfg.max_ms));
	assert_int_equal(b.state, BREAKER_HALF_OPEN);
}

/* ---------------------------------------------------------------- kv */

static struct kv_url url;

/*
 * A loopback TCP socket on a port of its own: listening but never
 * accepting (a hung Redis: connects succeed, nothing answers) or not
 * listening at all (a dead one: connects are refused).
 */
static int
loopback_socket(int listening)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (listening)
		assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	memset(&url, 0, sizeof(url));
	strcpy(url.host, "127.0.0.1");
	url.port = ntohs(sa.sin_port);
	strcpy(url.password, "secret");
	return fd;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A read on kv (kv_peek), with how long it took. */
static enum kv_status
timed_get(struct kv *kv, double *ms)
{
	struct buf out = { 0 };
	enum kv_status st;
	long long ttl_ms;
	double t0 = clock_ms();

	st = kv_peek(kv, "k", "lock:k", &out, &ttl_ms);
	*ms = clock_ms() - t0;
	buf_free(&out);
	return st;
}

static void
test_kv_hung_redis_costs_one_timeout_then_opens(void **state)
{
	int fd = loopback_socket(1), failures = 0, i;
	struct kv *kv = kv_new(&url, 50);
	double ms;

	assert_non_null(kv);
	/* connect succeeds, the handshake waits: one timeout, no more */
	assert_int_equal(timed_get(kv, &ms), KV_DOWN);
	assert_in_range((long)ms, 45, 50 + 150);
	failures++;
	/* at once during the hold-off: the same request's next call */
	assert_int_equal(timed_get(kv, &ms), KV_DOWN);
	assert_true(ms < 5);
	for (i = 0; i < 40 && kv_breaker_state(kv) == BREAKER_CLOSED; i++) {
		sleep_ms(50);
		if (timed_get(kv, &ms) == KV_DOWN && ms >= 45)
			failures++;
		assert_true(ms < 50 + 150);
	}
	assert_int_equal(kv_breaker_state(kv), BREAKER_OPEN);
	assert_int_equal(failures, 3);
	/* open: every call is KV_DOWN at once, a ping (healthz) too */
	for (i = 0; i < 100; i++) {
		assert_int_equal(timed_get(kv, &ms), KV_DOWN);
		assert_true(ms < 5);
	}
	assert_int_equal(kv_ping(kv), KV_DOWN);
	/* past the first interval (1250 ms at most) one call, the probe,
	 * goes and waits its timeout; it fails: open again, at once */
	sleep_ms(1300);
	assert_int_equal(timed_get(kv, &ms), KV_DOWN);
	assert_in_range((long)ms, 45, 50 + 150);
	assert_int_equal(kv_breaker_state(kv), BREAKER_OPEN);
	assert_int_equal(timed_get(kv, &ms), KV_DOWN);
	assert_true(ms < 5);
	kv_free(kv);
	close(fd);
}

static void
test_kv_refused_opens_it_too(void **state)
{
	int fd = loopback_socket(0), i;
	struct kv *kv = kv_new(&url, 50);
	double t0 = clock_ms();

	assert_non_null(kv);
	for (i = 0; i < 100 && kv_breaker_state(kv) == BREAKER_CLOSED; i++) {
		assert_int_equal(kv_ping(kv), KV_DOWN);
		sleep_ms(10);
	}
	assert_int_equal(kv_breaker_state(kv), BREAKER_OPEN);
	/* a refused connect costs no wait, yet the hold-off (100 ms)
	 * spaces them: three failures take two hold-offs */
	assert_true(clock_ms() - t0 >= 2 * 100 - 5);
	kv_free(kv);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_closed_counts_failures_in_a_row),
		cmocka_unit_test(test_open_refuses_then_one_probe),
		cmocka_unit_test(test_failed_probes_double_up_to_the_cap),
		cmocka_unit_test(test_calls_made_in_spite_of_it),
		cmocka_unit_test(test_jitter_spreads_processes),
		cmocka_unit_test(test_unreported_probe_does_not_wedge_it),
		cmocka_unit_test(test_kv_hung_redis_costs_one_timeout_then_opens),
		cmocka_unit_test(test_kv_refused_opens_it_too),
	};

	log_init(LOG_ERROR, "test");
	return cmocka_run_group_tests_name("breaker", tests, NULL, NULL);
}
