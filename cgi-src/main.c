/*
 * orders-worker: one FastCGI worker process of the pool. spawn-fcgi hands
 * it the listening socket as fd 0 and multiwatch keeps WORKERS of them
 * alive. Each serves one request at a time, from any of the connections
 * nginx keeps to it (serve.c); SIGTERM (or SIGUSR1) lets the request in
 * hand finish, then those connections, until nginx closes them.
 *
 *   orders-worker           serve
 *   orders-worker --check   validate the configuration and exit
 */
#include <sys/socket.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <fastcgi.h>
#include <fcgiapp.h>

#include "app.h"
#include "config.h"
#include "handlers.h"
#include "log.h"
#include "metrics.h"
#include "serve.h"

/* A retired pool has this long to finish: deploy.sh gives it 15 s. */
#define DRAIN_MS	10000
#define MAX_ORPHANS	METRICS_SLOTS	/* one write per dead worker's slot */

static volatile sig_atomic_t stopping;

static void
on_stop(int sig)
{
	(void)sig;
	stopping = 1;
	/* Makes the accept in progress give up instead of retrying. */
	FCGX_ShutdownPending();
}

static void
install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocked accept() must return EINTR. */
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/*
 * At the end of each request libfcgi closes the connection gracefully: a
 * shutdown, then a wait (up to 2 s) until nginx has closed its side, then
 * the close. That keeps a TCP peer from a reset that could cost it the
 * answer, but on a Unix socket there is no such reset (the answer stays
 * readable after our close), and the wait holds the worker for a round of
 * the scheduler per request. libfcgi 2.4's FCGX_Free closes a detached
 * request's socket at once, and reads its detached flag nowhere else: so
 * on a Unix socket, each request is marked detached before it is finished.
 */
static int
listens_on_unix_socket(void)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	return getsockname(FCGI_LISTENSOCK_FILENO, (struct sockaddr *)&ss,
	    &len) == 0 && ss.ss_family == AF_UNIX;
}

/*
 * The writes that workers died in the middle of (metrics.h: writes in
 * flight), settled before this one takes its first request: they may have
 * committed, and nothing else would invalidate them.
 */
static void
settle_orphans(struct app *app, const int32_t *orphans, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		log_warn("settling a write a dead worker left in flight (%s %d)",
		    orphans[i] > 0 ? "order" : "insert", (int)orphans[i]);
		(void)orders_settle_write(app, orphans[i]);
	}
}

static void
handle(void *arg, FCGX_Request *req)
{
	app_handle(arg, req);
}

int
main(int argc, char **argv)
{
	static struct config cfg;
	static struct app app;
	struct serve srv;
	char err[256];
	int32_t orphans[MAX_ORPHANS];
	int norphans;

	if (argc > 1 && strcmp(argv[1], "--metrics-layout") == 0) {
		printf("%s\n", metrics_layout());
		return 0;
	}
	if (config_load(&cfg, err, sizeof(err)) == -1) {
		fprintf(stderr, "orders-worker: configuration: %s\n", err);
		return 1;
	}
	if (argc > 1 && strcmp(argv[1], "--check") == 0) {
		printf("configuration ok\n");
		return 0;
	}
	log_init(cfg.log_level, "worker");
	install_signals();
	/* logged; not fatal */
	(void)metrics_init(cfg.metrics_file, orphans, MAX_ORPHANS, &norphans);
	if (FCGX_Init() != 0 ||
	    app_init(&app, &cfg) == -1) {
		log_error("cannot start");
		return 1;
	}
	log_info("started");
	/* Connect now, not on the first request; a failure here is retried
	 * by the first request that needs the store. */
	(void)db_ping(app.db);
	(void)kv_ping(app.kv);
	settle_orphans(&app, orphans, norphans);
	srv.listen_fd = FCGI_LISTENSOCK_FILENO;
	srv.handle = handle;
	srv.arg = &app;
	srv.stopping = &stopping;
	srv.quick_close = listens_on_unix_socket();
	srv.drain_ms = DRAIN_MS;
	(void)serve_loop(&srv);
	log_info("stopping");
	app_free(&app);
	return 0;
}
