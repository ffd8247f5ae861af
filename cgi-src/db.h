/*
 * The Postgres layer: one connection per worker, opened on first use and
 * opened again after it is lost; every statement parameterized ($1...) and
 * bounded by a deadline. Knows nothing of Redis, HTTP or JSON.
 */
#ifndef ORDERS_DB_H
#define ORDERS_DB_H

#include <stdint.h>

#include "order.h"
#include "query.h"

enum db_status {
	DB_OK,
	DB_NOTFOUND,	/* no such row */
	DB_UNAVAILABLE,	/* cannot reach Postgres, or it did not answer in time */
	DB_ERROR	/* Postgres refused the statement: logged, a bug or a rule */
};

struct db;

/*
 * conninfo: a libpq connection string or URI (not copied: must outlive the
 * handle). statement_timeout_ms bounds each statement on the server, and
 * the wait for it here. pooled: conninfo names a pooler in transaction
 * mode (PgBouncer's pool_mode = transaction), where consecutive statements
 * may run on different server connections: no session state and no named
 * prepared statements; statement_timeout is then the role's (ALTER ROLE
 * ... SET statement_timeout), and the wait here still ends at
 * statement_timeout_ms. Does not connect yet. Free with db_free().
 */
struct db *db_new(const char *conninfo, int statement_timeout_ms,
    int pooled);
void db_free(struct db *db);	/* NULL-safe */

/*
 * WAL positions, in bytes from 0/0: the primary's now (pg_current_wal_lsn,
 * at or past the commit of every write acknowledged to it), and a
 * replica's replayed one (pg_last_wal_replay_lsn: every commit up to it is
 * visible to a statement that starts afterwards). DB_ERROR from a server
 * that is not a replica, for the latter.
 */
enum db_status db_wal_lsn(struct db *db, uint64_t *lsn);
enum db_status db_replay_lsn(struct db *db, uint64_t *lsn);

enum db_status db_count_orders(struct db *db, const struct criteria *c,
    int64_t *count);
enum db_status db_get_order(struct db *db, int32_t orderid,
    struct order_row *out);
enum db_status db_insert_order(struct db *db, const struct new_order *o,
    struct order_row *out);
/*
 * n orders (1..DB_BATCH_MAX) in one statement: all or none. out[i] is
 * o[i]'s row. DB_ERROR: Postgres refused the statement (one order may be
 * to blame: the caller may try them one by one).
 */
#define DB_BATCH_MAX	16
enum db_status db_insert_orders(struct db *db, const struct new_order *o,
    int n, struct order_row *out);
/*
 * Inserts o under an Idempotency-Key (checked already) unless an order
 * holds that key: then *created is 0 and out is that order, as stored;
 * else *created is 1 and out is the new one. Of any number of concurrent
 * calls with one key, at most one inserts. DB_UNAVAILABLE also when the
 * order holding the key was deleted under us three times in a row.
 */
enum db_status db_insert_order_keyed(struct db *db, const struct new_order *o,
    const char *key, struct order_row *out, int *created);
enum db_status db_delete_order(struct db *db, int32_t orderid);
/* The session's statement_timeout from now on (not behind a pooler). */
enum db_status db_statement_timeout(struct db *db, int ms);
/*
 * Whether the last write that answered DB_UNAVAILABLE had gone out: then
 * it may have committed. One that never reached Postgres (no connection)
 * did not.
 */
int db_write_unknown(const struct db *db);

/*
 * Announces a write of ours to the invalidator, as sql/triggers.sql does
 * for others' writes: payload is an orderid, or "*" (anything).
 */
enum db_status db_announce(struct db *db, const char *payload);
enum db_status db_ping(struct db *db);

#endif
