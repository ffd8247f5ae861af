/*
 * orders-invalidator: keeps the cache true to writes the service did not
 * make (psql, a batch job). The triggers of sql/triggers.sql NOTIFY
 * orders_changed when a write to orders commits; this program LISTENs and
 * drops what the write made stale, with the same calls a worker makes after
 * its own writes (keys.h). multiwatch keeps one running beside the pool.
 *
 * It never lets a stale entry survive by accident. A notification sent
 * while it was not listening is gone for good, so every (re)connect is
 * followed by a full invalidation. An invalidation Redis could not take
 * becomes a full invalidation owed, tried again every second until Redis
 * takes it.
 *
 *   orders-invalidator           run until SIGTERM, SIGINT or SIGUSR1
 *   orders-invalidator --check   validate the configuration and exit
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cache.h"
#include "clock.h"
#include "config.h"
#include "db_notify.h"
#include "keys.h"
#include "kv.h"
#include "log.h"

#define WAIT_MS		1000	/* longest wait for a notification */
#define RETRY_MS	1000	/* a full invalidation owed: next attempt */
#define BACKOFF_MIN_MS	200	/* a failed connect: the first pause, */
#define BACKOFF_MAX_MS	5000	/* doubling up to this */

struct invalidator {
	struct cache		 cache;
	struct db_notify	*pg;
	const char		*owed;		/* why a full invalidation is
						   owed; NULL: none */
	int			 attempts;	/* failed tries of it so far */
	double			 retry_at_ms;	/* its next try */
	int			 backoff_ms;	/* pause before the next connect */
	int			 replica;	/* DATABASE_REPLICA_URL is set */
	char			 lsn_key[CACHE_KEY_MAX];
};

static volatile sig_atomic_t stopping;

static void
on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a wait in poll() must end with EINTR. */
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);	/* multiwatch's "stop gracefully" */
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);	/* a Redis that went away */
}

/* Sleeps ms, or less when a signal comes. */
static void
pause_ms(int ms)
{
	if (!stopping)
		(void)poll(NULL, 0, ms);
}

/* From now on the whole cache is suspect, for the reason why. */
static void
owe_all(struct invalidator *inv, const char *why)
{
	if (inv->owed == NULL) {
		inv->owed = why;
		inv->attempts = 0;
	}
	inv->retry_at_ms = 0;	/* at once */
}

/*
 * With a replica (DATABASE_REPLICA_URL), the bar that misses read against
 * (handlers_orders.c, read_source) goes up to the primary's position now,
 * past the commit of every write announced so far, before the entries
 * those writes made stale are dropped. When that position cannot be had
 * the bar goes, and the next miss sets it from the primary's position
 * then. 0, or -1: Redis did not take either (the invalidation would fail
 * too).
 */
static int
raise_bar(struct invalidator *inv)
{
	uint64_t lsn;

	if (!inv->replica)
		return 0;
	return orders_raise_bar(inv->cache.kv, inv->lsn_key,
	    db_notify_wal_lsn(inv->pg, &lsn) == 0 ? &lsn : NULL);
}

/* Tries the full invalidation owed, when one is and its time has come. */
static void
settle(struct invalidator *inv)
{
	if (inv->owed == NULL || clock_ms() < inv->retry_at_ms)
		return;
	if (raise_bar(inv) == 0 && orders_invalidate_all(&inv->cache) == 0) {
		log_info("full invalidation done (%s)%s", inv->owed,
		    inv->attempts > 0 ? " after redis came back" : "");
		inv->owed = NULL;
		return;
	}
	if (inv->attempts++ == 0)
		log_warn("full invalidation owed (%s): redis unavailable, "
		    "trying again every %d ms", inv->owed, RETRY_MS);
	inv->retry_at_ms = clock_ms() + RETRY_MS;
}

/* One notification: the orders it names, or everything. */
static void
apply(struct invalidator *inv, const struct db_notify_change *ch)
{
	int i;

	/* The full invalidation owed comes after this write: it covers it. */
	if (inv->owed != NULL)
		return;
	if (ch->all) {
		owe_all(inv, "notification *: over 100 orders written, "
		    "or TRUNCATE");
		settle(inv);
		return;
	}
	if (raise_bar(inv) == -1) {
		owe_all(inv, "the replica's bar could not be raised");
		settle(inv);
		return;
	}
	for (i = 0; i < ch->nids; i++) {
		if (orders_invalidate_order(&inv->cache, ch->ids[i]) == -1) {
			owe_all(inv, "an invalidation of one order failed");
			settle(inv);
			return;
		}
		log_debug("invalidated order %d and every count",
		    (int)ch->ids[i]);
	}
}

/*
 * Not listening: connect again, after a pause that grows while Postgres
 * stays away. Whatever was written meanwhile was announced to nobody.
 */
static void
reconnect(struct invalidator *inv)
{
	if (db_notify_connect(inv->pg) == 0) {
		inv->backoff_ms = 0;
		owe_all(inv, "now listening: writes before went unseen");
		settle(inv);
		return;
	}
	inv->backoff_ms = inv->backoff_ms == 0 ? BACKOFF_MIN_MS :
	    inv->backoff_ms * 2;
	if (inv->backoff_ms > BACKOFF_MAX_MS)
		inv->backoff_ms = BACKOFF_MAX_MS;
	pause_ms(inv->backoff_ms);
}

/* How long to wait for a notification: less when a retry falls due. */
static int
wait_ms(const struct invalidator *inv)
{
	double left;

	if (inv->owed == NULL)
		return WAIT_MS;
	left = inv->retry_at_ms - clock_ms();
	return left <= 0 ? 0 : left < WAIT_MS ? (int)left + 1 : WAIT_MS;
}

static void
run(struct invalidator *inv)
{
	struct db_notify_change ch;

	while (!stopping) {
		settle(inv);
		switch (db_notify_next(inv->pg, wait_ms(inv), &ch)) {
		case DB_NOTIFY_CHANGE:
			apply(inv, &ch);
			break;
		case DB_NOTIFY_IDLE:
			break;
		case DB_NOTIFY_LOST:
			if (!stopping)
				reconnect(inv);
			break;
		}
	}
}

int
main(int argc, char **argv)
{
	static struct config cfg;
	static struct invalidator inv;
	char err[256];
	int rc = 1;

	if (config_load(&cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "orders-invalidator: configuration: %s\n", err);
		return 1;
	}
	if (argc > 1 && strcmp(argv[1], "--check") == 0) {
		printf("configuration ok\n");
		return 0;
	}
	log_init(cfg.log_level, "invalidator");
	install_signals();
	/* The same Redis layer and caching module as a worker's. */
	inv.cache.kv = kv_new(&cfg.redis, cfg.redis_timeout_ms);
	inv.cache.prefix = cfg.cache_prefix;
	inv.cache.ttl = cfg.cache_ttl;
	inv.replica = cfg.database_replica_url != NULL;
	if (orders_bar_key(inv.lsn_key, cfg.cache_prefix) == -1) {
		log_error("cannot start: CACHE_PREFIX too long");
		goto out;
	}
	inv.pg = db_notify_new(cfg.database_url, cfg.statement_timeout_ms);
	if (inv.cache.kv == NULL || inv.pg == NULL) {
		log_error("cannot start: out of memory");
		goto out;
	}
	log_info("started");
	run(&inv);
	log_info("stopping");
	rc = 0;
out:
	db_notify_free(inv.pg);
	kv_free(inv.cache.kv);
	return rc;
}
