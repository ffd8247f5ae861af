/*
 * The orders resource. Reads go through the cache (cache_read with a
 * loader); writes go to Postgres and then tell the cache what they made
 * stale, themselves (sql/triggers.sql leaves the service's writes to it),
 * with the write marked in flight in the worker's slot meanwhile, so that
 * if the worker dies in between, the next one settles it (main.c); a write
 * Redis did not take stays owed, and reads go past the cache until it is
 * made (orders_settle_owed). Redis and Postgres are reached through their
 * modules only (cache.h, kv.h, db.h): no command or SQL is written here.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "group.h"
#include "handlers.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"

static const char *const cache_status_names[] = { "HIT", "MISS", "BYPASS" };
static const enum metrics_counter cache_status_metrics[] = {
	MC_CACHE_HIT, MC_CACHE_MISS, MC_CACHE_BYPASS
};

struct count_job {
	struct app	*app;
	struct criteria	 criteria;
};

struct order_job {
	struct app	*app;
	int32_t		 orderid;
};

/* After a replica fails, misses leave it alone this long. */
#define REPLICA_HOLDOFF_MS	5000.0

/*
 * Where a miss reads (DATABASE_REPLICA_URL): a replica's answer may be
 * stored only if the replica has replayed every write that the cache has
 * already been told of. Each write raises the bar (the highest WAL
 * position of the writes invalidated, app->lsn_key in Redis) before its
 * invalidation, so a miss that reads the bar after its lease (cache_read
 * takes the lease, then calls the loader) sees every write whose
 * invalidation came before its lease; a write whose invalidation comes
 * after it makes the fill store nothing (the generation). And every commit
 * up to the replica's replayed position is visible to a statement that
 * starts after reading it. So: the bar, then the replica's position, then
 * the statement; the primary when the replica is behind, unusable, or the
 * bar cannot be read (Redis down: the answer is not stored, but its reader
 * may have just written, and must see that).
 */
static struct db *
read_source(struct app *app)
{
	uint64_t bar, replayed;
	double now;

	if (app->replica == NULL)
		return app->db;
	now = clock_ms();
	if (now < app->replica_retry_ms)
		return app->db;
	if (kv_lsn_get(app->kv, app->lsn_key, &bar) != KV_OK)
		return app->db;
	if (bar == 0) {
		/*
		 * No bar (a new Redis, or one the guard emptied): the
		 * primary's position now stands in for every write before.
		 */
		if (db_wal_lsn(app->db, &bar) != DB_OK ||
		    kv_lsn_raise(app->kv, app->lsn_key, bar) != KV_OK)
			return app->db;
	}
	if (db_replay_lsn(app->replica, &replayed) != DB_OK) {
		app->replica_retry_ms = now + REPLICA_HOLDOFF_MS;
		log_warn("postgres replica: unusable; misses read the primary "
		    "for %d s", (int)(REPLICA_HOLDOFF_MS / 1000));
		return app->db;
	}
	if (replayed < bar) {
		metrics_count(MC_REPLICA_BEHIND, 1);
		return app->db;
	}
	metrics_count(MC_REPLICA_READ, 1);
	return app->replica;
}

/*
 * The loaders read where read_source says; a replica that fails there
 * (st) sends this read (1: read the primary), and the next ones for a
 * while, to the primary.
 */
static int
replica_failed(struct app *app, enum db_status st)
{
	if (st != DB_UNAVAILABLE)
		return 0;
	app->replica_retry_ms = clock_ms() + REPLICA_HOLDOFF_MS;
	log_warn("postgres replica: a read failed; misses read the primary "
	    "for %d s", (int)(REPLICA_HOLDOFF_MS / 1000));
	return 1;
}

/* A write's part of the bar (read_source): keys.h, orders_raise_bar. */
static void
raise_bar(struct app *app)
{
	uint64_t lsn;

	if (app->replica != NULL)
		(void)orders_raise_bar(app->kv, app->lsn_key,
		    db_wal_lsn(app->db, &lsn) == DB_OK ? &lsn : NULL);
}

static enum cache_load
from_db_status(enum db_status st)
{
	if (st == DB_UNAVAILABLE || st == DB_ERROR)
		metrics_count(MC_PG_ERROR, 1);
	switch (st) {
	case DB_OK:
		return LOAD_OK;
	case DB_NOTFOUND:
		return LOAD_NOTFOUND;
	case DB_UNAVAILABLE:
		return LOAD_UNAVAILABLE;
	case DB_ERROR:
		break;
	}
	return LOAD_ERROR;
}

static enum cache_load
load_count(void *arg, struct buf *body)
{
	struct count_job *job = arg;
	struct db *db = read_source(job->app);
	enum db_status st;
	int64_t n;

	st = db_count_orders(db, &job->criteria, &n);
	if (db != job->app->db && replica_failed(job->app, st))
		st = db_count_orders(job->app->db, &job->criteria, &n);
	if (st == DB_OK && order_count_to_json(n, body) == -1)
		return LOAD_ERROR;
	return from_db_status(st);
}

static enum cache_load
load_order(void *arg, struct buf *body)
{
	struct order_job *job = arg;
	struct db *db = read_source(job->app);
	struct order_row row;
	enum db_status st;

	st = db_get_order(db, job->orderid, &row);
	if (db != job->app->db && replica_failed(job->app, st))
		st = db_get_order(job->app->db, job->orderid, &row);
	if (st == DB_OK && order_to_json(&row, body) == -1)
		return LOAD_ERROR;
	return from_db_status(st);
}

/* Answers a failed load or a failed write the same way everywhere. */
static void
answer_failure(struct exchange *x, enum cache_load lr)
{
	switch (lr) {
	case LOAD_NOTFOUND:
		http_error(x->resp, 404, "no such order");
		break;
	case LOAD_UNAVAILABLE:
		http_error(x->resp, 503, "database unavailable, try again "
		    "shortly");
		break;
	default:
		http_error(x->resp, 500, "internal error");
		break;
	}
}

/* The decorator's other half: a cached read's answer and headers. */
static void
answer_cached(struct exchange *x, const struct cache_ns *ns, const char *id,
    cache_loader load, void *arg)
{
	struct cache_result res;
	enum cache_load lr;

	if (orders_settle_owed(x->app) == 0) {
		lr = cache_read(&x->app->cache, ns, id, load, arg,
		    &x->resp->body, &res);
	} else {
		memset(&res, 0, sizeof(res));	/* not hashed */
		res.status = CACHE_BYPASS;
		res.load_ms = clock_ms();
		lr = load(arg, &x->resp->body);
		res.load_ms = clock_ms() - res.load_ms;
	}
	if (lr == LOAD_OK)
		http_cached_json(x->resp, x->req, res.max_age,
		    res.hashed ? &res.hash : NULL);
	else
		answer_failure(x, lr);
	http_header(x->resp, "X-Cache", cache_status_names[res.status]);
	metrics_count(cache_status_metrics[res.status], 1);
	metrics_count(MC_CACHE_FILL, (unsigned long)res.stored);
	metrics_count(MC_CACHE_FILL_WAIT, (unsigned long)res.waited);
	x->resp->cache_ms += res.cache_ms;
	x->resp->db_ms += res.load_ms;
}

/* The bar, then the entries: what a write made stale, in Redis. 0, or -1. */
static int
invalidate_write(struct app *app, int32_t write)
{
	int rc;

	raise_bar(app);
	rc = write > 0 ? orders_invalidate_order(&app->cache, write) :
	    orders_invalidate_all(&app->cache);
	metrics_count(rc == 0 ? MC_INVALIDATION : MC_INVALIDATION_FAILED, 1);
	return rc;
}

/*
 * The write's client may be answered 2xx whatever Redis did, and the
 * invalidator may be slower to make the invalidation than Redis to come
 * back (it retries each second), or not hear of it at all (Postgres gone
 * too, as on a host cut off). Until one of the host's workers has made it,
 * their reads go past the cache: one atomic load per read while nothing
 * is owed.
 */
int
orders_settle_owed(struct app *app)
{
	int32_t w = inflight_owed();

	if (w == INFLIGHT_NONE)
		return 0;
	/* A call the breaker allows (the probe, when it is half-open). */
	if (kv_ping(app->kv) != KV_OK || invalidate_write(app, w) != 0)
		return -1;
	inflight_paid(w);
	log_info("redis: made the invalidation owed since Redis failed it "
	    "(%s %d); reads use the cache again", w > 0 ? "order" : "insert",
	    (int)w);
	return 0;
}

int
orders_settle_write(struct app *app, int32_t write)
{
	char payload[16];

	if (invalidate_write(app, write) == 0)
		return 0;
	inflight_owe(write);
	if (write > 0)
		snprintf(payload, sizeof(payload), "%d", (int)write);
	else
		snprintf(payload, sizeof(payload), "*");
	if (db_announce(app->db, payload) == DB_OK) {
		log_warn("redis: a write's invalidation (%s) is owed: this "
		    "host's reads go past the cache until Redis takes it; "
		    "handed to the invalidator too", payload);
		return -1;
	}
	log_error("a write's invalidation (%s) failed, and so did its "
	    "announcement: this host's reads go past the cache until Redis "
	    "takes it; other hosts may serve its entries until their ttl",
	    payload);
	return -1;
}

/*
 * Tests only (ORDERS_TEST_HOOKS=1, "X-Test-Die-After-Commit"): the worker
 * dies as a SIGKILL would kill it, between the commit and the
 * invalidation, leaving the write in flight in its slot.
 */
static void
test_die(const struct exchange *x)
{
	if (x->app->die_after_commit)
		raise(SIGKILL);
}

/*
 * After a write that may have committed: see orders_settle_write. wrote:
 * this request's statement changed something (or may have), not a replay
 * or a 404 settling an earlier one; the test hook dies after those only.
 */
static void
settle_write(struct exchange *x, int32_t write, int wrote)
{
	double t0 = clock_ms();

	if (wrote)
		test_die(x);
	(void)orders_settle_write(x->app, write);
	x->resp->cache_ms += clock_ms() - t0;
}

void
handle_count_orders(struct exchange *x)
{
	struct count_job job = { x->app, { 0 } };
	char err[128], key[CRITERIA_KEY_MAX];

	if (criteria_parse(x->req->query, &job.criteria, err,
	    sizeof(err)) == -1) {
		http_error(x->resp, 400, err);
		return;
	}
	if (criteria_key(&job.criteria, key, sizeof(key)) == -1) {
		http_error(x->resp, 400, "criteria too long");
		return;
	}
	answer_cached(x, &orders_ns_count, key, load_count, &job);
}

void
handle_get_order(struct exchange *x)
{
	struct order_job job = { x->app, x->id };
	char id[16];

	snprintf(id, sizeof(id), "%d", (int)x->id);
	answer_cached(x, &orders_ns_order, id, load_order, &job);
}

/*
 * The body of POST /orders, read and checked. 0, or the status already
 * answered.
 */
static int
read_new_order(struct exchange *x, struct new_order *order)
{
	char err[160];
	int status;

	if (!http_is_json(x->req) && x->req->content_length > 0) {
		http_error(x->resp, 415, "the body must be JSON "
		    "(Content-Type: application/json)");
		return 415;
	}
	status = http_read_body(x->in, x->req, &x->app->body, err,
	    sizeof(err));
	if (status == 0 && !http_is_json(x->req)) {
		status = 415;
		snprintf(err, sizeof(err), "the body must be JSON "
		    "(Content-Type: application/json)");
	}
	if (status == 0)
		status = order_parse(x->app->body.data, x->app->body.len,
		    order, err, sizeof(err));
	if (status != 0)
		http_error(x->resp, status, err);
	return status;
}

/*
 * The request's Idempotency-Key: 0 with *key NULL (none) or the checked
 * key, or the status already answered.
 */
static int
read_key(struct exchange *x, const char **key)
{
	char err[160];
	int status;

	*key = x->req->idempotency_key;
	if (*key == NULL)
		return 0;
	if (x->req->idempotency_keys > 1) {
		http_error(x->resp, 400, "Idempotency-Key must be sent once");
		return 400;
	}
	if ((status = order_key_check(*key, err, sizeof(err))) != 0)
		http_error(x->resp, status, err);
	return status;
}

/* 201 with the order and its Location. 0, or -1 (answered 500). */
static int
answer_created(struct exchange *x, const struct order_row *row)
{
	if (order_to_json(row, &x->resp->body) == -1) {
		http_error(x->resp, 500, "internal error");
		return -1;
	}
	http_json(x->resp, 201);
	http_headerf(x->resp, "Location", "/orders/%d", (int)row->orderid);
	return 0;
}

/* group.c's leader settles so an order whose worker died waiting. */
static void
settle_orphan(void *app, int32_t write)
{
	(void)orders_settle_write(app, write);
}

/*
 * An order without a key shares its transaction with what the host's
 * other workers insert meanwhile (group.c); a keyed one, whose insert may
 * have to look its key up, goes alone. *unknown: DB_UNAVAILABLE after the
 * statement may have committed.
 */
static enum db_status
insert_order(struct exchange *x, const struct new_order *order,
    const char *key, struct order_row *row, int *created, int *unknown)
{
	const struct group_ctx g = { x->app->db,
	    x->app->cfg->statement_timeout_ms, settle_orphan, x->app,
	    x->app->lead_delay_ms, x->app->die_leading };
	enum db_status st;

	if (key != NULL)
		st = db_insert_order_keyed(x->app->db, order, key, row,
		    created);
	else if (group_insert(&g, order, row, &st, unknown))
		return st;
	else
		st = db_insert_order(x->app->db, order, row);
	*unknown = st == DB_UNAVAILABLE && db_write_unknown(x->app->db);
	return st;
}

/*
 * With an Idempotency-Key, a retry of a request that created an order gets
 * that order again, as it is stored; nothing is inserted. The retry settles
 * the order again all the same: it is this order's acknowledgement, and the
 * first attempt's invalidation may never have been made (its worker cut off
 * from Redis and Postgres after the commit: the reason its client retries).
 * The same key with another order is the client's mistake.
 */
void
handle_create_order(struct exchange *x)
{
	struct new_order order;
	struct order_row row;
	enum db_status st;
	const char *key;
	int created = 1, unknown;
	double t0;

	if (read_key(x, &key) != 0 || read_new_order(x, &order) != 0)
		return;
	t0 = clock_ms();
	inflight_begin(INFLIGHT_INSERT);
	st = insert_order(x, &order, key, &row, &created, &unknown);
	x->resp->db_ms += clock_ms() - t0;
	if (st == DB_OK)
		settle_write(x, row.orderid, created);
	else if (unknown)
		settle_write(x, INFLIGHT_INSERT, 1);	/* it may have committed */
	inflight_end();
	if (st != DB_OK) {
		answer_failure(x, from_db_status(st));
		return;
	}
	if (!created && !order_matches(&order, &row)) {
		http_error(x->resp, 422, "this Idempotency-Key was already "
		    "used for a different order");
		return;
	}
	if (answer_created(x, &row) == 0 && !created)
		http_header(x->resp, "Idempotent-Replayed", "true");
}

void
handle_delete_order(struct exchange *x)
{
	enum db_status st;
	double t0 = clock_ms();

	inflight_begin(x->id);
	st = db_delete_order(x->app->db, x->id);
	x->resp->db_ms += clock_ms() - t0;
	/*
	 * A 404 settles too: it may answer the retry of a DELETE that did
	 * commit, on a worker then cut off before its invalidation (see
	 * handle_create_order), and a client takes the 404 as "gone".
	 */
	if (st == DB_OK || st == DB_NOTFOUND || (st == DB_UNAVAILABLE &&
	    db_write_unknown(x->app->db)))	/* the latter: it may have */
		settle_write(x, x->id, st != DB_NOTFOUND);
	inflight_end();
	if (st != DB_OK) {
		answer_failure(x, from_db_status(st));
		return;
	}
	x->resp->status = 204;
}
