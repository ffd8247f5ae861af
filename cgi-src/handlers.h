/* The handlers of the routing table: HTTP and the domain, nothing else. */
#ifndef ORDERS_HANDLERS_H
#define ORDERS_HANDLERS_H

#include "app.h"

void handle_count_orders(struct exchange *x);
void handle_get_order(struct exchange *x);
void handle_create_order(struct exchange *x);
void handle_delete_order(struct exchange *x);
void handle_health(struct exchange *x);
void handle_metrics(struct exchange *x);

/*
 * Invalidates what a write that may have committed made stale: write is
 * the orderid (its entry and every count) or INFLIGHT_INSERT (every
 * entry). When Redis does not take it, the write is owed (metrics.h:
 * inflight_owe): the host's workers read past the cache until one of them
 * has made it (orders_settle_owed); and it is announced to the
 * invalidator (db_announce), which retries until Redis takes it. 0, or -1
 * when not done here.
 */
int orders_settle_write(struct app *app, int32_t write);

/*
 * Makes the invalidation the host's workers owe, if any, when Redis is
 * there to take it (the breaker allows a call). 0: nothing is owed (any
 * more); -1: it still is, and the caller must not read the cache.
 */
int orders_settle_owed(struct app *app);

#endif
