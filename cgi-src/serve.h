#ifndef SERVE_H
#define SERVE_H

#include <signal.h>

#include <fcgiapp.h>

/* serve_loop's settings, and what it calls per request. */
struct serve {
	int			 listen_fd;	/* spawn-fcgi's: 0 */
	/* answers req; it must not keep pointers into req past its return */
	void			(*handle)(void *arg, FCGX_Request *req);
	void			*arg;
	volatile sig_atomic_t	*stopping;	/* set: drain, then return */
	int			 quick_close;	/* listen_fd is a Unix socket */
	int			 drain_ms;	/* after stopping, at most */
};

/*
 * Serves requests until *s->stopping is set and the connections nginx kept
 * are closed (or drain_ms has passed). The listening socket is made
 * non-blocking. 0, or -1 if it could not start.
 */
int	serve_loop(struct serve *s);

#endif
