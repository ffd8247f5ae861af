/*
 * GET /metrics: the Prometheus text format, summed over every worker of
 * every pool of this deployment (metrics.h), whichever worker answers.
 */
#include "handlers.h"
#include "metrics.h"

void
handle_metrics(struct exchange *x)
{
	if (metrics_render(&x->resp->body) == -1) {
		http_error(x->resp, 500, "out of memory");
		return;
	}
	x->resp->status = 200;
	http_header(x->resp, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	http_header(x->resp, "Cache-Control", "no-store");
}
