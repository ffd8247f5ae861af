/*
 * One worker's state (configuration, its two store connections, the cache)
 * and the exchange a handler works on: the request in hand and the
 * response it builds.
 */
#ifndef ORDERS_APP_H
#define ORDERS_APP_H

#include <stdint.h>

#include <fcgiapp.h>

#include "cache.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "kv.h"

struct app {
	const struct config	*cfg;
	struct db		*db;
	struct db		*replica;	/* NULL: no DATABASE_REPLICA_URL */
	double			 replica_retry_ms; /* unusable until then */
	char			 lsn_key[CACHE_KEY_MAX];
	struct kv		*kv;
	struct cache		 cache;
	struct buf		 body;	/* request body, reused */
	unsigned long		 kv_failures;	/* counted into metrics */
	int			 die_after_commit; /* tests only */
	int			 lead_delay_ms;	/* tests only */
	int			 die_leading;	/* tests only */
};

struct exchange {
	struct app		*app;
	const struct request	*req;
	struct response		*resp;
	FCGX_Stream		*in;
	int32_t			 id;	/* the {id} of the path, if any */
};

/* 0, or -1 (out of memory). The configuration is borrowed. */
int  app_init(struct app *app, const struct config *cfg);
void app_free(struct app *app);

/* Answers one request: validation, routing, the handler. */
void app_handle(struct app *app, FCGX_Request *fr);

#endif
