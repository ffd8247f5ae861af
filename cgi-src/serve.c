/*
 * The accept loop, with connections kept between requests.
 *
 * nginx keeps its connections to the pool open between requests
 * (fastcgi_keep_conn, keepalive in the upstream block): a request then
 * costs neither side a connect, an accept nor a close. libfcgi's own loop
 * cannot take that: a worker that keeps a connection waits on it alone,
 * while nginx opens others that no worker accepts (they wait in the
 * listen queue until nginx gives up on them). So each process here holds
 * every connection it accepted and polls them all with the listening
 * socket, serving one request at a time, from whichever connection has one.
 *
 * - New connections are accepted by libfcgi (FCGX_Accept_r on a request
 *   without a socket), one per round, when poll finds one waiting. The
 *   listening socket is made non-blocking, so that a process that lost the
 *   race to a sibling goes back to poll. (All the processes of a pool
 *   share it, and all run this loop.)
 * - A kept connection is read only once poll says it is readable: libfcgi
 *   then reads one request off it (FCGX_Accept_r skips its accept when the
 *   request has a socket). When nginx has closed it, that read sees the
 *   end, libfcgi closes it and tries an accept on the listening socket,
 *   which fails with EAGAIN or hands us a new connection in its place.
 * - A request's body is read to its end before the next request is read
 *   off the same connection, whether the handler wanted it or not.
 * - Only nginx closes a kept connection, with one exception below. A worker
 *   that closed one nginx still holds would make nginx's next request on it
 *   fail, and nginx does not send a POST again once it was written.
 * - On SIGTERM (a scale, a restart) a process stops accepting and serves
 *   its connections until nginx has closed them all: nginx closes each
 *   after keepalive_requests or keepalive_timeout (nginx/orders.conf.in),
 *   so that takes a second when idle, and about a hundred requests per
 *   connection under load. Past drain_ms the process closes what is left
 *   and ends (the exception; deploy.sh waits longer than that for it).
 */
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

#define MAX_CONNS	256	/* connections one process holds; past this
				   it stops accepting until one closes */

/*
 * One request off c: the next on its connection, which poll found
 * readable, or for a new c (no connection yet) libfcgi's own accept, with
 * its checks (FCGI_WEB_SERVER_ADDRS on TCP; on a Unix socket, that the
 * connection brings a request within 2 s). 0 while c's connection stays
 * open, -1 when it closed: nginx closed it, or did not ask to keep it, or
 * (a new c) another process took the connection first.
 */
static int
serve_one(struct serve *s, FCGX_Request *c)
{
	char rest[4096];

	/* a close on a Unix socket is at once (main.c); libfcgi clears it */
	c->detached = s->quick_close;
	if (FCGX_Accept_r(c) < 0) {
		FCGX_Free(c, 1);
		return -1;
	}
	s->handle(s->arg, c);
	/* What the handler left of the body (a 405 reads none, say) would
	   come before the next request on a kept connection, which libfcgi
	   takes for a protocol error and closes. */
	if (c->keepConnection)
		while (FCGX_GetStr(rest, sizeof(rest), c->in) > 0)
			continue;
	c->detached = s->quick_close;
	FCGX_Finish_r(c);
	return c->ipcFd < 0 ? -1 : 0;
}

/*
 * A new connection, and its first request. One per round of poll: a
 * process that took every waiting connection at once would queue their
 * requests behind each other while its siblings idle.
 */
static void
accept_one(struct serve *s, FCGX_Request **conns, int *nconns)
{
	FCGX_Request *c;

	if ((c = malloc(sizeof(*c))) == NULL)
		return;
	FCGX_InitRequest(c, s->listen_fd, 0);
	if (serve_one(s, c) == 0)
		conns[(*nconns)++] = c;
	else
		free(c);
}

int
serve_loop(struct serve *s)
{
	static FCGX_Request *conns[MAX_CONNS];
	static struct pollfd pfd[MAX_CONNS + 1];
	int nconns = 0, npfd, i, j, n, timeout;
	int flags = fcntl(s->listen_fd, F_GETFL);
	double deadline = 0;

	if (flags == -1 ||
	    fcntl(s->listen_fd, F_SETFL, flags | O_NONBLOCK) == -1) {
		log_error("listening socket: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		/* (a SIGTERM just before poll would otherwise wait for the
		   next connection) */
		timeout = 1000;
		if (*s->stopping) {
			if (nconns == 0)
				break;
			if (deadline == 0)
				deadline = clock_ms() + s->drain_ms;
			if ((n = (int)(deadline - clock_ms())) <= 0)
				break;
			if (n < timeout)
				timeout = n;
		}
		npfd = 0;
		for (i = 0; i < nconns; i++)
			pfd[npfd++] = (struct pollfd){ conns[i]->ipcFd,
			    POLLIN, 0 };
		if (!*s->stopping && nconns < MAX_CONNS)
			pfd[npfd++] = (struct pollfd){ s->listen_fd, POLLIN,
			    0 };
		if ((n = poll(pfd, npfd, timeout)) == -1) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			break;
		}
		/* Each connection with a request, once; then new ones. */
		for (i = j = 0; i < nconns; i++) {
			if (pfd[i].revents != 0 && serve_one(s, conns[i]) == -1)
				free(conns[i]);
			else
				conns[j++] = conns[i];
		}
		nconns = j;
		if (npfd > i && pfd[i].revents != 0)
			accept_one(s, conns, &nconns);
	}
	for (i = 0; i < nconns; i++) {
		FCGX_Free(conns[i], 1);
		free(conns[i]);
	}
	return 0;
}
