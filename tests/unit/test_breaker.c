/* The circuit breaker's state machine, on a clock the test moves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "breaker.h"

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
	};

	return cmocka_run_group_tests_name("breaker", tests, NULL, NULL);
}
