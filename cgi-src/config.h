/*
 * The configuration: read once from the environment at start-up into one
 * struct that nothing changes afterwards.
 */
#ifndef ORDERS_CONFIG_H
#define ORDERS_CONFIG_H

#include <stddef.h>

#include "kv.h"
#include "log.h"

#define CACHE_PREFIX_MAX	64

struct config {
	const char	*database_url;	/* from the environment, not copied */
	/*
	 * DATABASE_POOL_MODE=transaction: DATABASE_URL is a pooler in
	 * transaction mode (PgBouncer): no session state, no named prepared
	 * statements (db.h). "session" (the default): a server connection.
	 */
	int		 database_pooled;
	/*
	 * DATABASE_REPLICA_URL, or NULL: a streaming replica that misses may
	 * read from once it has replayed the writes they must reflect
	 * (handlers_orders.c). DATABASE_POOL_MODE applies to it too.
	 */
	const char	*database_replica_url;
	/*
	 * REDIS_URL; with REDIS_SENTINELS, REDIS_MASTER_NAME (default
	 * "orders") and REDIS_SENTINEL_PASSWORD, the master is the one the
	 * sentinels name, and REDIS_URL gives only the password and the db.
	 */
	struct kv_url	 redis;
	int		 cache_ttl;		/* seconds */
	const char	*cache_prefix;
	int		 redis_timeout_ms;	/* connect and each command */
	int		 statement_timeout_ms;
	int		 cache_wait_ms;		/* single flight: longest wait */
	const char	*metrics_file;	/* METRICS_FILE, or NULL */
	int		 test_hooks;	/* ORDERS_TEST_HOOKS=1: tests only */
	enum log_level	 log_level;
};

/* 0, or -1 with the reason in err. */
int config_load(struct config *cfg, char *err, size_t errlen);

#endif
