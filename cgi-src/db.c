#include "db.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "clock.h"
#include "log.h"

#define CONNECT_TIMEOUT_S	"2"

struct db {
	const char	*conninfo;	/* borrowed from the configuration */
	int		 timeout_ms;
	int		 pooled;	/* behind a transaction pooler */
	PGconn		*conn;		/* NULL while disconnected */
	int		 timed_out;	/* the last statement hit its deadline */
	unsigned	 prepared;	/* bit i: prepared[i] is, on conn */
	int		 sent;		/* the statement in hand went out */
	int		 write_unknown;	/* the last write went out and its
					   outcome never came back */
};

/*
 * A count with any criteria: planned with its values each time (the plan
 * depends on which are given and, for a range of dates alone, on how wide
 * it is: an index or the whole table).
 */
static const char SQL_COUNT[] =
    "SELECT count(*) FROM orders"
    " WHERE ($1::int IS NULL OR customerid = $1::int)"
    "   AND ($2::date IS NULL OR orderdate >= $2::date)"
    "   AND ($3::date IS NULL OR orderdate <= $3::date)"
    "   AND ($4::numeric IS NULL OR totalamount >= $4::numeric)";

/*
 * A count of one customer's orders, one statement for each set of the
 * other criteria (in prepared[] below, from COUNT_FIRST: + 1 with from,
 * + 2 with to, + 4 with min_total), with the same four parameters as
 * SQL_COUNT. Its best plan is always the same (an index-only scan of
 * ix_order_custid_date, which holds every column a criterion names), so
 * these are prepared: parsing and planning were about a quarter of what
 * Postgres spent on such a miss.
 */
#define COUNT_CUST	"SELECT count(*) FROM orders WHERE customerid = $1"
#define AND_FROM	" AND orderdate >= $2"
#define AND_TO		" AND orderdate <= $3"
#define AND_MIN		" AND totalamount >= $4"

#define ORDER_COLUMNS \
    "orderid, orderdate, customerid, netamount, tax, totalamount"

static const char SQL_GET[] =
    "SELECT " ORDER_COLUMNS " FROM orders WHERE orderid = $1::int";

/*
 * The service's writes mark their own transaction (set_config's third
 * argument: local to it), so that sql/triggers.sql does not announce them
 * to the invalidator: the worker invalidates at once after the commit and
 * announces itself only when it cannot (db_announce). An announcing
 * commit would hold NOTIFY's lock from commit to the WAL flush, and the
 * service's writes would wait for each other's fsync one by one. An
 * uncorrelated sub-select is evaluated once per statement, before the rows
 * (EXPLAIN: an InitPlan and a One-Time Filter).
 */
#define SELF_INVALIDATING \
    "(SELECT set_config('orders.self_invalidating', 'on', true)) = 'on'"

static const char SQL_INSERT[] =
    "INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount)"
    " SELECT COALESCE($1::date, current_date), $2::int, $3::numeric,"
    " $4::numeric, $5::numeric WHERE " SELF_INVALIDATING
    " RETURNING " ORDER_COLUMNS;

/*
 * DO NOTHING waits for a concurrent insert of the same key to commit or
 * roll back, then inserts or returns no row: never a unique violation.
 */
static const char SQL_INSERT_KEYED[] =
    "INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount,"
    " idempotency_key)"
    " SELECT COALESCE($1::date, current_date), $2::int, $3::numeric,"
    " $4::numeric, $5::numeric, $6::text WHERE " SELF_INVALIDATING
    " ON CONFLICT (idempotency_key) DO NOTHING RETURNING " ORDER_COLUMNS;

/*
 * Several orders in one statement, so in one transaction and one WAL flush
 * (group.c). unnest keeps the arrays' order; the rows are matched to the
 * orders by what they hold all the same (db_insert_orders).
 */
static const char SQL_INSERT_MANY[] =
    "INSERT INTO orders (orderdate, customerid, netamount, tax, totalamount)"
    " SELECT COALESCE(d, current_date), c, n, t, s"
    " FROM unnest($1::date[], $2::int[], $3::numeric[], $4::numeric[],"
    " $5::numeric[]) WITH ORDINALITY AS u(d, c, n, t, s, i)"
    " WHERE " SELF_INVALIDATING " ORDER BY i"
    " RETURNING " ORDER_COLUMNS;

static const char SQL_GET_BY_KEY[] =
    "SELECT " ORDER_COLUMNS " FROM orders WHERE idempotency_key = $1::text";

#define KEYED_ROUNDS	3	/* an insert and a look-up each */

static const char SQL_DELETE[] =
    "DELETE FROM orders WHERE orderid = $1::int AND " SELF_INVALIDATING;

/* What sql/triggers.sql says of others' writes, said for one of ours. */
static const char SQL_ANNOUNCE[] =
    "SELECT pg_notify('orders_changed', $1::text)";

/*
 * The statements whose plan does not depend on their parameters' values
 * are prepared once per connection and then only bound and run: for a
 * write, parsing and planning were about a fifth of Postgres's work.
 * Parameters a statement does not name are given their type here.
 */
static const Oid COUNT_TYPES[4] = { 23, 1082, 1082, 1700 }; /* int4, date,
							       date, numeric */
static const struct {
	const char	*sql;
	const Oid	*types;		/* NULL: from the statement */
} prepared[] = {
	{ SQL_GET, NULL }, { SQL_INSERT, NULL }, { SQL_INSERT_KEYED, NULL },
	{ SQL_GET_BY_KEY, NULL }, { SQL_DELETE, NULL },
	{ SQL_INSERT_MANY, NULL },
#define COUNT_FIRST	6
	{ COUNT_CUST, COUNT_TYPES },
	{ COUNT_CUST AND_FROM, COUNT_TYPES },
	{ COUNT_CUST AND_TO, COUNT_TYPES },
	{ COUNT_CUST AND_FROM AND_TO, COUNT_TYPES },
	{ COUNT_CUST AND_MIN, COUNT_TYPES },
	{ COUNT_CUST AND_FROM AND_MIN, COUNT_TYPES },
	{ COUNT_CUST AND_TO AND_MIN, COUNT_TYPES },
	{ COUNT_CUST AND_FROM AND_TO AND_MIN, COUNT_TYPES },
};
#define NPREPARED	((int)(sizeof(prepared) / sizeof(prepared[0])))

struct db *
db_new(const char *conninfo, int statement_timeout_ms, int pooled)
{
	struct db *db;

	if ((db = calloc(1, sizeof(*db))) == NULL)
		return NULL;
	db->conninfo = conninfo;
	db->timeout_ms = statement_timeout_ms;
	db->pooled = pooled;
	return db;
}

static void
db_disconnect(struct db *db)
{
	PQfinish(db->conn);
	db->conn = NULL;
}

void
db_free(struct db *db)
{
	if (db == NULL)
		return;
	db_disconnect(db);
	free(db);
}

/*
 * Waits for the result of the statement just sent, at most until deadline
 * (monotonic ms). libpq keeps its socket non-blocking, so poll() and
 * PQconsumeInput() never block; a server that stops answering costs us the
 * connection, never the worker.
 */
static PGresult *
db_wait_result(struct db *db, int64_t deadline)
{
	struct pollfd pfd;
	PGresult *res, *last = NULL;
	int64_t left;
	int flush;

	pfd.fd = PQsocket(db->conn);
	for (;;) {
		flush = PQflush(db->conn);
		if (flush == -1)
			goto lost;
		if (flush == 0 && !PQisBusy(db->conn)) {
			res = PQgetResult(db->conn);
			if (res == NULL)
				return last;
			PQclear(last);
			last = res;
			continue;
		}
		left = deadline - (int64_t)clock_ms();
		if (left <= 0) {
			log_warn("postgres: no answer within %d ms, dropping "
			    "the connection", db->timeout_ms);
			db->timed_out = 1;
			goto lost;
		}
		pfd.events = POLLIN | (flush == 1 ? POLLOUT : 0);
		if (poll(&pfd, 1, (int)left) == -1 && errno != EINTR)
			goto lost;
		if ((pfd.revents & (POLLIN | POLLERR | POLLHUP)) &&
		    PQconsumeInput(db->conn) == 0)
			goto lost;
	}
lost:
	PQclear(last);
	db_disconnect(db);
	return NULL;
}

/* The answer to what was just sent, within statement_timeout and 1 s. */
static PGresult *
db_answer(struct db *db)
{
	return db_wait_result(db, (int64_t)clock_ms() + db->timeout_ms + 1000);
}

static int
db_connect(struct db *db)
{
	const char *const keys[] = { "dbname", "connect_timeout",
	    "application_name", NULL };
	const char *const vals[] = { db->conninfo, CONNECT_TIMEOUT_S,
	    "orders-worker", NULL };
	char msg[256], setting[32];
	const char *param[1];
	PGresult *res;

	/* Later keywords win, so the URL's own settings apply otherwise. */
	db->conn = PQconnectdbParams(keys, vals, 1);
	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK) {
		log_warn("postgres: cannot connect: %s", log_safe(msg,
		    sizeof(msg), db->conn ? PQerrorMessage(db->conn) : "oom"));
		db_disconnect(db);
		return -1;
	}
	if (PQsetnonblocking(db->conn, 1) == -1) {
		db_disconnect(db);
		return -1;
	}
	db->prepared = 0;
	if (db->pooled) {
		/* a session setting would land on someone else's session */
		log_info("postgres: connected, through a transaction pooler");
		return 0;
	}
	snprintf(setting, sizeof(setting), "%d", db->timeout_ms);
	param[0] = setting;
	if (!PQsendQueryParams(db->conn,
	    "SELECT set_config('statement_timeout', $1, false)", 1, NULL,
	    param, NULL, NULL, 0))
		goto fail;
	res = db_answer(db);
	if (res == NULL)
		return -1;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	log_info("postgres: connected");
	return 0;
fail:
	log_warn("postgres: cannot set up the session: %s", log_safe(msg,
	    sizeof(msg), PQerrorMessage(db->conn)));
	db_disconnect(db);
	return -1;
}

/*
 * A connection is usable when libpq still thinks so after reading whatever
 * the server sent while we were idle: after a restart, the server's
 * goodbye (or the socket's EOF) is waiting there, so a dead connection is
 * found before a statement is sent on it, not after.
 */
static int
db_ensure(struct db *db)
{
	if (db->conn != NULL && (PQconsumeInput(db->conn) == 0 ||
	    PQstatus(db->conn) != CONNECTION_OK)) {
		log_warn("postgres: connection lost, reconnecting");
		db_disconnect(db);
	}
	if (db->conn == NULL)
		return db_connect(db);
	return 0;
}

/* The index of sql in prepared[], or -1. */
static int
prepared_index(const char *sql)
{
	int i;

	for (i = 0; i < NPREPARED; i++)
		if (prepared[i].sql == sql)
			return i;
	return -1;
}

/* Sends sql: prepared (first preparing it on this connection) or not. */
static int
db_send(struct db *db, const char *sql, int nparams,
    const char *const *params, PGresult **failed)
{
	int i = prepared_index(sql);
	char name[16];
	PGresult *res;

	/* (behind a transaction pooler, the next statement may run on a
	   server connection where ours was never prepared) */
	if (i == -1 || db->pooled)
		return PQsendQueryParams(db->conn, sql, nparams,
		    i == -1 ? NULL : prepared[i].types, params, NULL, NULL, 0);
	snprintf(name, sizeof(name), "orders_%d", i);
	if (!(db->prepared & (1u << i))) {
		if (!PQsendPrepare(db->conn, name, sql, nparams,
		    prepared[i].types))
			return 0;
		if ((res = db_answer(db)) == NULL)
			return 0;
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			*failed = res;
			return 1;
		}
		PQclear(res);
		db->prepared |= 1u << i;
	}
	return PQsendQueryPrepared(db->conn, name, nparams, params, NULL,
	    NULL, 0);
}

static enum db_status
db_exec_once(struct db *db, const char *sql, int nparams,
    const char *const *params, ExecStatusType want, PGresult **out)
{
	char msg[256];
	PGresult *res = NULL;

	*out = NULL;
	db->timed_out = 0;
	db->sent = 0;
	if (db_ensure(db) == -1)
		return DB_UNAVAILABLE;
	if (!db_send(db, sql, nparams, params, &res)) {
		if (db->conn != NULL) {
			log_warn("postgres: cannot send: %s", log_safe(msg,
			    sizeof(msg), PQerrorMessage(db->conn)));
			db_disconnect(db);
		}
		return DB_UNAVAILABLE;
	}
	if (res == NULL) {	/* else the preparation failed: res says why */
		db->sent = 1;
		res = db_answer(db);
	}
	if (res == NULL)
		return DB_UNAVAILABLE;
	if (PQresultStatus(res) != want) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		log_error("postgres: statement failed: %s", log_safe(msg,
		    sizeof(msg), PQresultErrorMessage(res)));
		PQclear(res);
		/*
		 * Class 08 (connection), 57 (shutdown, cancel by timeout) and
		 * 53 (resources) are the server being unavailable, not us
		 * being wrong.
		 */
		if (PQstatus(db->conn) != CONNECTION_OK || state == NULL ||
		    strncmp(state, "08", 2) == 0 ||
		    strncmp(state, "57", 2) == 0 ||
		    strncmp(state, "53", 2) == 0) {
			if (PQstatus(db->conn) != CONNECTION_OK)
				db_disconnect(db);
			return DB_UNAVAILABLE;
		}
		return DB_ERROR;
	}
	*out = res;
	return DB_OK;
}

enum exec_kind { EXEC_READ, EXEC_WRITE };

/*
 * Runs one parameterized statement. On DB_OK *out holds the result (the
 * caller PQclear()s it). params are text; NULL is SQL NULL.
 *
 * A read that finds its connection gone (Postgres restarted since the last
 * request, a backend terminated) is tried once more on a new connection.
 * A write is not: it may have committed before the connection broke.
 */
static enum db_status
db_exec(struct db *db, enum exec_kind kind, const char *sql, int nparams,
    const char *const *params, ExecStatusType want, PGresult **out)
{
	enum db_status st;
	int was_connected = db->conn != NULL;

	st = db_exec_once(db, sql, nparams, params, want, out);
	if (st == DB_UNAVAILABLE && kind == EXEC_READ && was_connected &&
	    db->conn == NULL && !db->timed_out)
		st = db_exec_once(db, sql, nparams, params, want, out);
	if (kind == EXEC_WRITE)
		db->write_unknown = st == DB_UNAVAILABLE && db->sent;
	return st;
}

static void
copy_text(char *dst, size_t len, const PGresult *res, int row,
    const char *column)
{
	int col = PQfnumber(res, column);

	snprintf(dst, len, "%s", col >= 0 ? PQgetvalue(res, row, col) : "");
}

static int32_t
int_value(const PGresult *res, int row, const char *column)
{
	int col = PQfnumber(res, column);

	return col >= 0 ? (int32_t)strtol(PQgetvalue(res, row, col), NULL, 10)
	    : 0;
}

static void
row_to_order(const PGresult *res, int row, struct order_row *out)
{
	out->orderid = int_value(res, row, "orderid");
	out->customerid = int_value(res, row, "customerid");
	copy_text(out->orderdate, sizeof(out->orderdate), res, row,
	    "orderdate");
	copy_text(out->netamount, sizeof(out->netamount), res, row,
	    "netamount");
	copy_text(out->tax, sizeof(out->tax), res, row, "tax");
	copy_text(out->totalamount, sizeof(out->totalamount), res, row,
	    "totalamount");
}

/*
 * Runs a statement that returns at most one order: DB_OK with out filled,
 * DB_NOTFOUND when it returned none.
 */
static enum db_status
db_one_order(struct db *db, enum exec_kind kind, const char *sql,
    int nparams, const char *const *params, struct order_row *out)
{
	PGresult *res;
	enum db_status st;

	st = db_exec(db, kind, sql, nparams, params, PGRES_TUPLES_OK, &res);
	if (st != DB_OK)
		return st;
	if (PQntuples(res) == 0)
		st = DB_NOTFOUND;
	else
		row_to_order(res, 0, out);
	PQclear(res);
	return st;
}

enum db_status
db_count_orders(struct db *db, const struct criteria *c, int64_t *count)
{
	char cust[FMT_INT_MAX], money[24];
	const char *params[4], *sql;
	PGresult *res;
	enum db_status st;

	fmt_long(cust, c->customerid);
	params[0] = c->has_customerid ? cust : NULL;
	params[1] = c->has_from ? c->from : NULL;
	params[2] = c->has_to ? c->to : NULL;
	params[3] = c->has_min_total ?
	    money_format(c->min_total_cents, money, sizeof(money)) : NULL;
	sql = !c->has_customerid ? SQL_COUNT : prepared[COUNT_FIRST +
	    (c->has_from ? 1 : 0) + (c->has_to ? 2 : 0) +
	    (c->has_min_total ? 4 : 0)].sql;
	st = db_exec(db, EXEC_READ, sql, 4, params, PGRES_TUPLES_OK, &res);
	if (st != DB_OK)
		return st;
	*count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return DB_OK;
}

static enum db_status
db_position(struct db *db, const char *sql, uint64_t *lsn)
{
	PGresult *res;
	enum db_status st;

	st = db_exec(db, EXEC_READ, sql, 0, NULL, PGRES_TUPLES_OK, &res);
	if (st != DB_OK)
		return st;
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
		st = DB_ERROR;
	else
		*lsn = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return st;
}

enum db_status
db_wal_lsn(struct db *db, uint64_t *lsn)
{
	return db_position(db,
	    "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text", lsn);
}

enum db_status
db_replay_lsn(struct db *db, uint64_t *lsn)
{
	return db_position(db,
	    "SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::text", lsn);
}

enum db_status
db_get_order(struct db *db, int32_t orderid, struct order_row *out)
{
	char id[16];
	const char *params[1] = { id };

	snprintf(id, sizeof(id), "%d", (int)orderid);
	return db_one_order(db, EXEC_READ, SQL_GET, 1, params, out);
}

/* The parameters of SQL_INSERT ($1..$5) and SQL_INSERT_KEYED ($1..$6). */
struct insert_params {
	char		 cust[16], net[24], tax[24], total[24];
	const char	*v[6];
};

static void
insert_params(struct insert_params *p, const struct new_order *o,
    const char *key)
{
	snprintf(p->cust, sizeof(p->cust), "%d", (int)o->customerid);
	p->v[0] = o->has_date ? o->orderdate : NULL;
	p->v[1] = p->cust;
	p->v[2] = money_format(o->net_cents, p->net, sizeof(p->net));
	p->v[3] = money_format(o->tax_cents, p->tax, sizeof(p->tax));
	p->v[4] = money_format(o->total_cents, p->total, sizeof(p->total));
	p->v[5] = key;
}

enum db_status
db_insert_order(struct db *db, const struct new_order *o,
    struct order_row *out)
{
	struct insert_params p;
	enum db_status st;

	insert_params(&p, o, NULL);
	st = db_one_order(db, EXEC_WRITE, SQL_INSERT, 5, p.v, out);
	return st == DB_NOTFOUND ? DB_ERROR : st;
}

/*
 * An array literal of n values, NULL for a missing one, into a[0..len).
 * The values are ours (digits, '-', '.'): nothing to quote.
 */
static int
array_literal(char *a, size_t len, const char *const *v, int n)
{
	size_t used = 0;
	int i, w;

	for (i = 0; i < n; i++) {
		w = snprintf(a + used, len - used, "%c%s", i == 0 ? '{' : ',',
		    v[i] != NULL ? v[i] : "NULL");
		if (w < 0 || (size_t)w >= len - used)
			return -1;
		used += (size_t)w;
	}
	if (used + 2 > len)
		return -1;
	memcpy(a + used, "}", 2);
	return 0;
}

/*
 * Which row is which order: rows with the same customer, amounts and date
 * are the same to their clients whichever id each gets, so any such row
 * will do. Orders with a date are matched first: one without takes any
 * date (order_matches), and must not take the row another order's date
 * needs. 0, or -1 when some order has no row.
 */
static int
match_rows(const PGresult *res, const struct new_order *o, int n,
    struct order_row *out)
{
	struct order_row row[DB_BATCH_MAX];
	int used[DB_BATCH_MAX] = { 0 };
	int pass, i, r;

	if (PQntuples(res) != n)
		return -1;
	for (r = 0; r < n; r++)
		row_to_order(res, r, &row[r]);
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < n; i++) {
			if (o[i].has_date != (pass == 0))
				continue;
			for (r = 0; r < n; r++)
				if (!used[r] && order_matches(&o[i], &row[r]))
					break;
			if (r == n)
				return -1;
			used[r] = 1;
			out[i] = row[r];
		}
	return 0;
}

enum db_status
db_insert_orders(struct db *db, const struct new_order *o, int n,
    struct order_row *out)
{
	struct insert_params p[DB_BATCH_MAX];
	const char *col[5][DB_BATCH_MAX], *params[5];
	char arrays[5][DB_BATCH_MAX * 26];
	PGresult *res;
	enum db_status st;
	int i, c;

	if (n == 1)
		return db_insert_order(db, o, out);
	if (n < 1 || n > DB_BATCH_MAX)
		return DB_ERROR;
	for (i = 0; i < n; i++) {
		insert_params(&p[i], &o[i], NULL);
		for (c = 0; c < 5; c++)
			col[c][i] = p[i].v[c];
	}
	for (c = 0; c < 5; c++) {
		if (array_literal(arrays[c], sizeof(arrays[c]), col[c], n) == -1)
			return DB_ERROR;
		params[c] = arrays[c];
	}
	st = db_exec(db, EXEC_WRITE, SQL_INSERT_MANY, 5, params,
	    PGRES_TUPLES_OK, &res);
	if (st != DB_OK)
		return st;
	if (match_rows(res, o, n, out) == -1) {
		/* committed all the same: as good as unknown to the clients */
		log_error("postgres: the rows of a batch of %d orders do not "
		    "match its orders", n);
		db->write_unknown = 1;
		st = DB_UNAVAILABLE;
	}
	PQclear(res);
	return st;
}

/*
 * Each round is two statements. When the insert does nothing, the key's
 * order was committed by someone else, perhaps while the insert waited on
 * it; only a new statement's snapshot is sure to see it (a CTE of the
 * insert would share the insert's snapshot, taken before). Between the
 * two, that order may be deleted: its key is then free again, and the
 * next round inserts.
 */
enum db_status
db_insert_order_keyed(struct db *db, const struct new_order *o,
    const char *key, struct order_row *out, int *created)
{
	struct insert_params p;
	enum db_status st;
	int round;

	insert_params(&p, o, key);
	for (round = 0; round < KEYED_ROUNDS; round++) {
		st = db_one_order(db, EXEC_WRITE, SQL_INSERT_KEYED, 6, p.v, out);
		if (st != DB_NOTFOUND) {
			*created = 1;
			return st;
		}
		st = db_one_order(db, EXEC_READ, SQL_GET_BY_KEY, 1, &key, out);
		if (st != DB_NOTFOUND) {
			*created = 0;
			return st;
		}
	}
	log_warn("postgres: the order of an Idempotency-Key was deleted "
	    "under us %d times in a row", KEYED_ROUNDS);
	return DB_UNAVAILABLE;
}

enum db_status
db_delete_order(struct db *db, int32_t orderid)
{
	char id[16];
	const char *params[1] = { id };
	PGresult *res;
	enum db_status st;

	snprintf(id, sizeof(id), "%d", (int)orderid);
	st = db_exec(db, EXEC_WRITE, SQL_DELETE, 1, params, PGRES_COMMAND_OK, &res);
	if (st != DB_OK)
		return st;
	st = strcmp(PQcmdTuples(res), "0") == 0 ? DB_NOTFOUND : DB_OK;
	PQclear(res);
	return st;
}

/* A statement run for its effect alone: DB_OK, or why not. */
static enum db_status
db_run(struct db *db, const char *sql, int nparams,
    const char *const *params)
{
	PGresult *res;
	enum db_status st;

	st = db_exec(db, EXEC_READ, sql, nparams, params, PGRES_TUPLES_OK,
	    &res);
	if (st == DB_OK)
		PQclear(res);
	return st;
}

/*
 * The session's statement_timeout, for what follows (group.c: a batch
 * whose oldest order has waited gets what is left of that order's). Not
 * behind a transaction pooler, where the session is not ours.
 */
enum db_status
db_statement_timeout(struct db *db, int ms)
{
	char setting[32];
	const char *param[1] = { setting };

	if (db->pooled)
		return DB_OK;
	snprintf(setting, sizeof(setting), "%d", ms > 0 ? ms : 1);
	return db_run(db, "SELECT set_config('statement_timeout', $1, false)",
	    1, param);
}

int
db_write_unknown(const struct db *db)
{
	return db->write_unknown;
}

/* A repeated announcement costs one more invalidation: it may be retried. */
enum db_status
db_announce(struct db *db, const char *payload)
{
	return db_run(db, SQL_ANNOUNCE, 1, &payload);
}

enum db_status
db_ping(struct db *db)
{
	return db_run(db, "SELECT 1", 0, NULL);
}
