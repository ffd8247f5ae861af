/*
 * Group commit: the inserts of a host's workers share transactions. A
 * durable commit waits for its WAL flush; one flush for several orders
 * costs Postgres (and the kernel) about what one costs, so POST /orders
 * scales with how many workers insert at once instead of paying a commit
 * each.
 */
#ifndef ORDERS_GROUP_H
#define ORDERS_GROUP_H

#include <stdint.h>

#include "db.h"
#include "order.h"

/*
 * The invalidation a caller makes after its insert (orders_settle_write),
 * which the batch's leader makes instead for a caller that died waiting:
 * write is the orderid, or INFLIGHT_INSERT when the batch may have
 * committed but nobody can tell.
 */
typedef void (*group_settle_fn)(void *arg, int32_t write);

struct group_ctx {
	struct db	*db;		/* the calling worker's connection */
	int		 timeout_ms;	/* statement_timeout */
	group_settle_fn	 settle;
	void		*arg;
	int		 lead_delay_ms;	/* tests: see app.c */
	int		 die_leading;	/* tests: see app.c */
};

/*
 * Inserts o together with whatever other workers of the host are
 * inserting now: either this worker leads the batch (on its own
 * connection) or another worker does and this one waits, at most
 * statement_timeout and 2 s. The caller invalidates as after
 * db_insert_order.
 *
 * 1: *st says how it went (as db_insert_order; *unknown: DB_UNAVAILABLE
 * after the statement may have committed); 0: no shared file, or every
 * place taken: nothing was sent, insert it alone.
 */
int group_insert(const struct group_ctx *g, const struct new_order *o,
    struct order_row *out, enum db_status *st, int *unknown);

/* Tests: the shared area at p (zeroed, METRICS_GROUP_SIZE) instead. */
void group_use_area(void *p);

#endif
