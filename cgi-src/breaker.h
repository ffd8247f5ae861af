/*
 * A circuit breaker: whether to call a dependency that has been failing,
 * from the outcomes of the last calls. Pure: no clock, no I/O, no logging;
 * the caller passes the time (milliseconds, any monotonic origin) and logs
 * the changes it is handed back. One per process and dependency (kv.c's
 * Redis connection).
 *
 *   closed     calls go. A failure holds calls off for hold_ms; threshold
 *              failures in a row open the breaker; a success resets the
 *              count.
 *   open       no call goes, for an interval: base_ms at first, doubled by
 *              each failed probe up to max_ms, each time jittered by
 *              +-jitter_pct % so that processes opened by the same outage
 *              do not probe in step.
 *   half-open  the interval is over: exactly the next call goes (the
 *              probe). Its success closes the breaker, its failure opens
 *              it again.
 *
 * Every call breaker_allow() lets through must be followed by exactly one
 * breaker_success() or breaker_failure(). A caller may also make a call
 * the breaker did not allow (kv.c's invalidations) and report it: a
 * success closes the breaker, a failure while open changes nothing.
 */
#ifndef ORDERS_BREAKER_H
#define ORDERS_BREAKER_H

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

/* What a report did to the breaker, for the caller's log. */
enum breaker_change {
	BREAKER_SAME,
	BREAKER_OPENED,		/* closed or half-open -> open */
	BREAKER_RECLOSED	/* open or half-open -> closed */
};

struct breaker_config {
	int	threshold;	/* failures in a row that open it */
	int	hold_ms;	/* closed: no call this long after a failure */
	int	base_ms;	/* the first open interval */
	int	max_ms;		/* the longest, before jitter */
	int	jitter_pct;	/* each interval +- this much, uniformly */
};

struct breaker {
	struct breaker_config	 cfg;
	enum breaker_state	 state;
	int			 failures;	/* in a row, probes included */
	int			 interval_ms;	/* the next open interval,
						   before jitter */
	int			 open_ms;	/* the last one, jittered */
	double			 until_ms;	/* closed: hold-off end; open:
						   the interval's end;
						   half-open: see breaker.c */
	unsigned long long	 rng;		/* the jitter's state */
};

/* seed: anything that differs between processes, e.g. getpid() ^ time. */
void breaker_init(struct breaker *b, const struct breaker_config *cfg,
    unsigned long long seed);

/* 1: make the call (in half-open: it is the probe); 0: do without. */
int breaker_allow(struct breaker *b, double now_ms);

enum breaker_change breaker_success(struct breaker *b);
enum breaker_change breaker_failure(struct breaker *b, double now_ms);

#endif
