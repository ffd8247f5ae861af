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

#endif
