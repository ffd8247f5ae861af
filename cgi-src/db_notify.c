#include "db_notify.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "clock.h"
#include "log.h"

#define CONNECT_TIMEOUT_S	"2"
/* A server that has said nothing for this long is asked a SELECT 1. */
#define CHECK_AFTER_MS		10000

/* The channel sql/triggers.sql notifies. LISTEN takes no $1: a constant. */
static const char CHANNEL[] = "orders_changed";
static const char SQL_LISTEN[] = "LISTEN orders_changed";

struct db_notify {
	const char	*conninfo;	/* borrowed from the configuration */
	int		 timeout_ms;
	PGconn		*conn;		/* NULL while disconnected */
	double		 heard_ms;	/* when the server last proved alive */
};

struct db_notify *
db_notify_new(const char *conninfo, int timeout_ms)
{
	struct db_notify *n;

	if ((n = calloc(1, sizeof(*n))) == NULL)
		return NULL;
	n->conninfo = conninfo;
	n->timeout_ms = timeout_ms;
	return n;
}

static void
disconnect(struct db_notify *n)
{
	PQfinish(n->conn);
	n->conn = NULL;
}

void
db_notify_free(struct db_notify *n)
{
	if (n == NULL)
		return;
	disconnect(n);
	free(n);
}

/*
 * A message of libpq or the server as one log field: its lines joined with
 * spaces, and what a log line must not hold replaced.
 */
static const char *
one_line(const char *src, char *out, size_t outlen)
{
	char raw[256];
	size_t i = 0;

	for (; *src != '\0' && i + 1 < sizeof(raw); src++) {
		if (*src == '\n' || *src == '\t' || *src == ' ') {
			if (i > 0 && raw[i - 1] != ' ')
				raw[i++] = ' ';
		} else
			raw[i++] = *src;
	}
	while (i > 0 && raw[i - 1] == ' ')
		i--;
	raw[i] = '\0';
	return log_safe(out, outlen, raw);
}

/*
 * Drops the connection, saying once why: what we were doing, and what
 * libpq knows (pq_error 0: nothing current, e.g. after our own deadline).
 * Returns DB_NOTIFY_LOST.
 */
static enum db_notify_status
lost(struct db_notify *n, const char *doing, int pq_error)
{
	char msg[256];

	one_line(pq_error && n->conn != NULL ? PQerrorMessage(n->conn) : "",
	    msg, sizeof(msg));
	log_warn("postgres: connection lost (%s%s%s); notifications are "
	    "missed until we listen again", doing, msg[0] ? ": " : "", msg);
	disconnect(n);
	return DB_NOTIFY_LOST;
}

/*
 * libpq prints what the server says outside a statement (a FATAL before a
 * terminated backend closes its socket, say) on stderr by default: make it
 * one of our log lines instead.
 */
static void
on_notice(void *arg, const char *message)
{
	char msg[256];

	(void)arg;
	log_info("postgres says: %s", one_line(message, msg, sizeof(msg)));
}

/*
 * Sends sql and reads its results until deadline: 0 when the last one has
 * status want, else -1 with the connection dropped. libpq's socket is
 * non-blocking, so nothing here waits past the deadline. val (vallen
 * bytes, or NULL): the last result's first value, "" when it has none.
 */
static int
run(struct db_notify *n, const char *sql, ExecStatusType want, char *val,
    size_t vallen)
{
	struct pollfd pfd;
	PGresult *res;
	ExecStatusType got = PGRES_FATAL_ERROR;
	double deadline = clock_ms() + n->timeout_ms;
	char what[128];
	int flush, left;

	if (!PQsendQuery(n->conn, sql)) {
		lost(n, "cannot send", 1);
		return -1;
	}
	pfd.fd = PQsocket(n->conn);
	for (;;) {
		if ((flush = PQflush(n->conn)) == -1) {
			lost(n, "cannot send", 1);
			return -1;
		}
		if (flush == 0 && !PQisBusy(n->conn)) {
			if ((res = PQgetResult(n->conn)) == NULL)
				break;
			got = PQresultStatus(res);
			if (val != NULL)
				snprintf(val, vallen, "%s", PQntuples(res) > 0 &&
				    PQnfields(res) > 0 ? PQgetvalue(res, 0, 0) :
				    "");
			PQclear(res);
			continue;
		}
		if ((left = (int)(deadline - clock_ms())) <= 0) {
			snprintf(what, sizeof(what), "no answer to %s within "
			    "%d ms", sql, n->timeout_ms);
			lost(n, what, 0);
			return -1;
		}
		pfd.events = POLLIN | (flush == 1 ? POLLOUT : 0);
		pfd.revents = 0;
		if (poll(&pfd, 1, left) == -1 && errno != EINTR) {
			lost(n, "poll", 0);
			return -1;
		}
		if ((pfd.revents & (POLLIN | POLLERR | POLLHUP)) &&
		    PQconsumeInput(n->conn) == 0) {
			lost(n, "cannot read", 1);
			return -1;
		}
	}
	if (got != want || PQstatus(n->conn) != CONNECTION_OK) {
		lost(n, sql, 1);
		return -1;
	}
	n->heard_ms = clock_ms();
	return 0;
}

int
db_notify_connect(struct db_notify *n)
{
	/* Later keywords win, so the URL's own settings apply otherwise. */
	const char *const keys[] = { "dbname", "connect_timeout",
	    "application_name", NULL };
	const char *const vals[] = { n->conninfo, CONNECT_TIMEOUT_S,
	    "orders-invalidator", NULL };
	char msg[256];

	disconnect(n);
	n->conn = PQconnectdbParams(keys, vals, 1);
	if (n->conn == NULL || PQstatus(n->conn) != CONNECTION_OK) {
		log_warn("postgres: cannot connect: %s", one_line(n->conn !=
		    NULL ? PQerrorMessage(n->conn) : "out of memory", msg,
		    sizeof(msg)));
		disconnect(n);
		return -1;
	}
	PQsetNoticeProcessor(n->conn, on_notice, NULL);
	if (PQsetnonblocking(n->conn, 1) == -1) {
		lost(n, "cannot set non-blocking", 1);
		return -1;
	}
	if (run(n, SQL_LISTEN, PGRES_COMMAND_OK, NULL, 0) == -1)
		return -1;
	log_info("postgres: connected, listening on %s", CHANNEL);
	return 0;
}

/* A notification libpq already holds, into out: 1, or 0 when none. */
static int
take(struct db_notify *n, struct db_notify_change *out)
{
	PGnotify *nf;
	char msg[128];

	while ((nf = PQnotifies(n->conn)) != NULL) {
		/* We LISTEN on one channel; anything else is not for us. */
		if (strcmp(nf->relname, CHANNEL) != 0) {
			PQfreemem(nf);
			continue;
		}
		if (db_notify_parse(nf->extra, out) == -1)
			log_warn("postgres: malformed %s payload, read as *: %s",
			    CHANNEL, log_safe(msg, sizeof(msg), nf->extra));
		PQfreemem(nf);
		return 1;
	}
	return 0;
}

enum db_notify_status
db_notify_next(struct db_notify *n, int wait_ms,
    struct db_notify_change *out)
{
	struct pollfd pfd;
	int rc;

	if (n->conn == NULL)
		return DB_NOTIFY_LOST;
	if (take(n, out))
		return DB_NOTIFY_CHANGE;
	pfd.fd = PQsocket(n->conn);
	pfd.events = POLLIN;
	pfd.revents = 0;
	/* A signal (EINTR) ends the wait: the caller looks at its flags. */
	if ((rc = poll(&pfd, 1, wait_ms > 0 ? wait_ms : 0)) == -1 &&
	    errno != EINTR)
		return lost(n, "poll", 0);
	/*
	 * Reading also finds a dead connection: a terminated backend's EOF,
	 * a reset. PQconsumeInput never blocks on our non-blocking socket.
	 */
	if (PQconsumeInput(n->conn) == 0 || PQstatus(n->conn) != CONNECTION_OK)
		return lost(n, "read", 1);
	if (rc > 0)
		n->heard_ms = clock_ms();
	if (take(n, out))
		return DB_NOTIFY_CHANGE;
	/*
	 * A peer that vanished without a word (a host down, a network cut)
	 * leaves the socket quiet forever: ask it something, with a deadline.
	 */
	if (clock_ms() - n->heard_ms >= CHECK_AFTER_MS &&
	    run(n, "SELECT 1", PGRES_TUPLES_OK, NULL, 0) == -1)
		return DB_NOTIFY_LOST;
	return DB_NOTIFY_IDLE;
}

int
db_notify_parse(const char *payload, struct db_notify_change *out)
{
	const char *p = payload;
	int64_t v;

	out->all = 0;
	out->nids = 0;
	if (p != NULL && strcmp(p, "*") == 0) {
		out->all = 1;
		return 0;
	}
	if (p == NULL)
		goto malformed;
	for (;;) {
		if (*p < '0' || *p > '9')	/* an empty field, a sign */
			goto malformed;
		for (v = 0; *p >= '0' && *p <= '9'; p++)
			if ((v = v * 10 + (*p - '0')) > INT32_MAX)
				goto malformed;
		if (v < 1 || out->nids == DB_NOTIFY_MAX_IDS)
			goto malformed;
		out->ids[out->nids++] = (int32_t)v;
		if (*p == '\0')
			return 0;
		if (*p++ != ',')
			goto malformed;
	}
malformed:
	out->all = 1;
	out->nids = 0;
	return -1;
}

int
db_notify_wal_lsn(struct db_notify *n, uint64_t *lsn)
{
	char val[32];

	if (n->conn == NULL || run(n, "SELECT (pg_current_wal_lsn() - "
	    "'0/0'::pg_lsn)::text", PGRES_TUPLES_OK, val, sizeof(val)) == -1 ||
	    val[0] == '\0')
		return -1;
	*lsn = strtoull(val, NULL, 10);
	return 0;
}
