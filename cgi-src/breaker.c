#include "breaker.h"

#include <string.h>

/* splitmix64: tiny, and good enough to spread probes apart. */
static unsigned long long
next_random(struct breaker *b)
{
	unsigned long long z = (b->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* ms +- jitter_pct %, uniformly, never below 1. */
static int
jittered(struct breaker *b, int ms)
{
	long long span = (long long)ms * b->cfg.jitter_pct / 100;
	long long v = ms;

	if (span > 0)
		v += (long long)(next_random(b) %
		    (unsigned long long)(2 * span + 1)) - span;
	return v < 1 ? 1 : (int)v;
}

static enum breaker_change
trip(struct breaker *b, double now_ms)
{
	b->state = BREAKER_OPEN;
	b->open_ms = jittered(b, b->interval_ms);
	b->until_ms = now_ms + b->open_ms;
	return BREAKER_OPENED;
}

void
breaker_init(struct breaker *b, const struct breaker_config *cfg,
    unsigned long long seed)
{
	memset(b, 0, sizeof(*b));
	b->cfg = *cfg;
	b->state = BREAKER_CLOSED;
	b->interval_ms = cfg->base_ms;
	b->rng = seed;
}

int
breaker_allow(struct breaker *b, double now_ms)
{
	switch (b->state) {
	case BREAKER_CLOSED:
		return now_ms >= b->until_ms;
	case BREAKER_OPEN:
		if (now_ms < b->until_ms)
			return 0;
		b->state = BREAKER_HALF_OPEN;
		/*
		 * The probe's outcome is due before any other call in a
		 * single-threaded caller. Should a caller fail to report
		 * it, another probe goes after max_ms rather than never.
		 */
		b->until_ms = now_ms + b->cfg.max_ms;
		return 1;
	case BREAKER_HALF_OPEN:
		if (now_ms < b->until_ms)
			return 0;
		b->until_ms = now_ms + b->cfg.max_ms;
		return 1;
	}
	return 0;
}

enum breaker_change
breaker_success(struct breaker *b)
{
	enum breaker_state was = b->state;

	b->state = BREAKER_CLOSED;
	b->failures = 0;
	b->interval_ms = b->cfg.base_ms;
	b->until_ms = 0;
	return was == BREAKER_CLOSED ? BREAKER_SAME : BREAKER_RECLOSED;
}

enum breaker_change
breaker_failure(struct breaker *b, double now_ms)
{
	b->failures++;
	switch (b->state) {
	case BREAKER_CLOSED:
		if (b->failures >= b->cfg.threshold)
			return trip(b, now_ms);
		b->until_ms = now_ms + b->cfg.hold_ms;
		return BREAKER_SAME;
	case BREAKER_HALF_OPEN:
		b->interval_ms = b->interval_ms > b->cfg.max_ms / 2 ?
		    b->cfg.max_ms : b->interval_ms * 2;
		return trip(b, now_ms);
	case BREAKER_OPEN:
		/* A call made in spite of the breaker: the interval stands. */
		return BREAKER_SAME;
	}
	return BREAKER_SAME;
}
