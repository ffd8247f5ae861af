/*
 * The pool's metrics, in a small file every worker maps (METRICS_FILE):
 * one slot per worker, claimed at start, in which the worker counts with
 * relaxed atomic adds (no system call, no lock, no Redis). GET /metrics
 * sums every slot, so whichever worker answers, the figures are the pool's,
 * of every generation a scale or a restart started (one file per
 * deployment). A slot whose worker died is reclaimed by a later worker,
 * which goes on adding to its counters: a counter never goes down.
 */
#ifndef ORDERS_METRICS_H
#define ORDERS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define METRICS_SLOTS	256	/* the most workers at once */

/* What the pool counts requests by: the routes of app.c, and the rest. */
enum metrics_route {
	MR_COUNT, MR_ORDER_GET, MR_ORDER_CREATE, MR_ORDER_DELETE, MR_HEALTH,
	MR_METRICS, MR_OTHER, MR_NROUTES
};

enum metrics_counter {
	MC_CACHE_HIT, MC_CACHE_MISS, MC_CACHE_BYPASS, MC_CACHE_FILL,
	MC_CACHE_FILL_WAIT, MC_INVALIDATION, MC_INVALIDATION_FAILED,
	MC_REDIS_ERROR, MC_PG_ERROR, MC_REPLICA_READ, MC_REPLICA_BEHIND,
	MC_NCOUNTERS
};

/*
 * Maps path (created if missing, to its size) and claims a slot for this
 * process; path NULL or "": a private slot (this process's figures only).
 * 0, or -1 (logged): metrics then count nothing and /metrics says so.
 * The writes that dead workers left in flight (below) are handed to this
 * one: up to max of them in orphans, their number in *norphans.
 */
int  metrics_init(const char *path, int32_t *orphans, int max,
    int *norphans);

/* One request answered: its route, its status, how long it took (ms). */
void metrics_request(enum metrics_route route, int status, double ms);
void metrics_count(enum metrics_counter c, unsigned long n);
/* One Postgres query (or a request's queries), in ms. */
void metrics_pg(double ms);
/* This worker's Redis circuit breaker: 0 closed, 1 open, 2 half-open. */
void metrics_breaker(int state);

/*
 * The file's layout, as stamped in it ("orders05"): deploy.sh names the
 * file after it (orders-worker --metrics-layout), so that a build whose
 * layout changed starts a file of its own instead of counting privately.
 */
const char *metrics_layout(void);

/*
 * The same file lends group.c (group commit) METRICS_GROUP_SIZE bytes,
 * zero in a new file, shared by every worker of the host; NULL with a
 * private slot. What group.c keeps there is part of the layout: change
 * the stamp with it.
 */
#define METRICS_GROUP_SIZE	4096
void *metrics_group_area(void);

/* The Prometheus text exposition of the whole pool into out. 0, or -1. */
int  metrics_render(struct buf *out);

/*
 * Writes in flight, kept in the worker's slot of the same file: from just
 * before a write is sent until what it made stale is invalidated. A worker
 * that dies in between (after the commit, before the invalidation) leaves
 * it there, and the next worker to start adopts it (metrics_init). write
 * is the orderid, or INFLIGHT_INSERT for an insert (its id unknown until
 * it returns: every count is stale, no order's entry). With a private
 * slot, nobody adopts anything.
 */
#define INFLIGHT_NONE	0
#define INFLIGHT_INSERT	(-1)
void inflight_begin(int32_t write);
void inflight_end(void);

/*
 * Writes owed their invalidation: committed, but Redis did not take the
 * invalidation (handlers_orders.c). One word in the same file, for every
 * worker of the host (with a private slot, for this process only): the
 * write, or INFLIGHT_INSERT ("every count and order") once two differ.
 * inflight_owe adds a write; inflight_owed says what is owed (one atomic
 * load: every read asks); inflight_paid(w) clears it if w is still what
 * is owed (a write owed meanwhile keeps it owed).
 */
void    inflight_owe(int32_t write);
int32_t inflight_owed(void);
void    inflight_paid(int32_t write);

#endif
