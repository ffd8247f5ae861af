/*
 * The Postgres layer's listening side: a connection of its own that
 * LISTENs on orders_changed and hands back, one at a time, what the
 * triggers of sql/triggers.sql announce: which orders a committed write
 * touched. Knows nothing of Redis or of the cache.
 *
 * A notification sent while we are not connected is lost for good: after
 * every (re)connect, the caller must assume anything may have changed.
 */
#ifndef ORDERS_DB_NOTIFY_H
#define ORDERS_DB_NOTIFY_H

#include <stdint.h>

/* The triggers name at most this many orders, else say "*". */
#define DB_NOTIFY_MAX_IDS	100

/* What one notification says. */
struct db_notify_change {
	int	 all;		/* 1: anything may have changed; ids unused */
	int	 nids;
	int32_t	 ids[DB_NOTIFY_MAX_IDS];
};

enum db_notify_status {
	DB_NOTIFY_CHANGE,	/* one notification, in *out */
	DB_NOTIFY_IDLE,		/* none within the wait; still connected */
	DB_NOTIFY_LOST		/* not connected (any more): call connect */
};

struct db_notify;

/*
 * conninfo: a libpq connection string or URI (not copied: must outlive the
 * handle). timeout_ms bounds each statement we send (LISTEN, the liveness
 * check). Does not connect yet. Free with db_notify_free().
 */
struct db_notify *db_notify_new(const char *conninfo, int timeout_ms);
void db_notify_free(struct db_notify *n);	/* NULL-safe */

/*
 * Drops any connection, connects (application_name orders-invalidator,
 * connect_timeout 2 s) and LISTENs. 0 once listening, or -1 (logged), not
 * connected.
 */
int db_notify_connect(struct db_notify *n);

/*
 * The next notification: one already received, else waits for one at most
 * wait_ms (never longer; a signal ends the wait early, as IDLE). While idle
 * it makes sure the connection still works: the socket's state on each
 * call, and a SELECT 1 with a deadline when the server has said nothing for
 * a while, so that a dead peer is found even when nobody writes.
 */
enum db_notify_status db_notify_next(struct db_notify *n, int wait_ms,
    struct db_notify_change *out);

/*
 * A payload as the triggers write it: "*", or orderids 1..INT32_MAX
 * separated by single commas, at most DB_NOTIFY_MAX_IDS. Anything else (a
 * NOTIFY sent by hand, a format we do not know) is read as "*": the safe
 * answer. 0, or -1 when it was read as "*" because it was malformed.
 */
int db_notify_parse(const char *payload, struct db_notify_change *out);

/*
 * The primary's WAL position now, in bytes (pg_current_wal_lsn): past the
 * commit of every write announced so far. 0, or -1 (the connection is
 * then dropped, as after any failure here).
 */
int db_notify_wal_lsn(struct db_notify *n, uint64_t *lsn);

#endif
