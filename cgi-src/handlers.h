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
 * entry). When Redis does not take it, announces it to the invalidator
 * (db_announce), which retries until Redis does; when that fails too,
 * logs that entries may be stale until their ttl. 0, or -1 when not done
 * here.
 */
int orders_settle_write(struct app *app, int32_t write);

#endif
