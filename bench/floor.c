/*
 * floor.c: the cheapest possible FastCGI responder.
 *
 * It answers every request with 200 {"ok":true} and touches neither Redis
 * nor Postgres, so a benchmark run against it measures nginx + FastCGI +
 * the pool alone: the floor under which the real worker cannot go.  It is
 * also what deploy.sh is tested with before the real worker exists
 * (WORKER_BIN=$PWD/build/floor ./deploy.sh).
 *
 * Build: make bench-build (build/floor, with cgi-src/serve.c and log.c)
 *
 * Like the real worker it expects the listening socket on fd 0 (spawn-fcgi
 * puts it there) and ends cleanly on SIGTERM (and SIGUSR1, multiwatch's
 * "graceful" signal): the request in hand is finished, then the accept loop
 * stops.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "serve.h"

static volatile sig_atomic_t stopping;

static const char response[] =
	"Status: 200 OK\r\n"
	"Content-Type: application/json\r\n"
	"Content-Length: 11\r\n"
	"\r\n"
	"{\"ok\":true}";

/*
 * Only async-signal-safe work here: FCGX_ShutdownPending() just sets a flag.
 * The handler is installed without SA_RESTART so that a worker blocked in
 * accept() gets EINTR, sees the flag and returns from FCGX_Accept_r instead
 * of sleeping until the next connection.
 */
static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
	FCGX_ShutdownPending();
}

static int
install_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* deliberately no SA_RESTART, see on_term */
	/*
	 * SIGUSR1 is what multiwatch sends first (libfcgi would install the
	 * same behaviour for it; say it here).  SIGTERM comes from a second
	 * SIGTERM to multiwatch, or from anyone running us by hand.
	 */
	if (sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGUSR1, &sa, NULL) == -1)
		return -1;
	return sigaction(SIGINT, &sa, NULL);
}

/* A client that went away makes this fail; nothing to do but go on. */
static void
serve(void *arg, FCGX_Request *req)
{
	(void)arg;
	(void)FCGX_PutStr(response, (int)sizeof(response) - 1, req->out);
}

int
main(void)
{
	/* fd 0 is the listening socket handed over by spawn-fcgi. The
	   service's own loop (cgi-src/serve.c): connections kept between
	   requests, closed at once when not (not a floor else). */
	struct serve srv = { 0, serve, NULL, &stopping, 1, 10000 };

	if (FCGX_Init() != 0) {
		fprintf(stderr, "floor: FCGX_Init failed\n");
		return 1;
	}
	if (install_handler() == -1) {
		perror("floor: sigaction");
		return 1;
	}
	fprintf(stderr, "floor: pid %ld ready\n", (long)getpid());
	(void)serve_loop(&srv);
	fprintf(stderr, "floor: pid %ld stopping\n", (long)getpid());
	return 0;
}
