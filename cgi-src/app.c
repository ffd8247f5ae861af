#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "keys.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "route.h"

static const struct route routes[] = {
	{ "/orders/count", HTTP_GET, handle_count_orders },
	{ "/orders/{id}", HTTP_GET, handle_get_order },
	{ "/orders/{id}", HTTP_DELETE, handle_delete_order },
	{ "/orders", HTTP_POST, handle_create_order },
	{ "/healthz", HTTP_GET, handle_health },
	{ "/metrics", HTTP_GET, handle_metrics },
};

/* What /metrics counts each entry of routes[] as, in the same order. */
static const enum metrics_route route_metrics[] = {
	MR_COUNT, MR_ORDER_GET, MR_ORDER_DELETE, MR_ORDER_CREATE, MR_HEALTH,
	MR_METRICS,
};
_Static_assert(sizeof(route_metrics) / sizeof(route_metrics[0]) ==
    sizeof(routes) / sizeof(routes[0]), "one metrics route per route");

int
app_init(struct app *app, const struct config *cfg)
{
	memset(app, 0, sizeof(*app));
	app->cfg = cfg;
	app->db = db_new(cfg->database_url, cfg->statement_timeout_ms,
	    cfg->database_pooled);
	app->kv = kv_new(&cfg->redis, cfg->redis_timeout_ms);
	if (cfg->database_replica_url != NULL)
		app->replica = db_new(cfg->database_replica_url,
		    cfg->statement_timeout_ms, cfg->database_pooled);
	if (orders_bar_key(app->lsn_key, cfg->cache_prefix) == -1 ||
	    app->db == NULL || app->kv == NULL ||
	    (cfg->database_replica_url != NULL && app->replica == NULL)) {
		app_free(app);
		return -1;
	}
	app->cache.kv = app->kv;
	app->cache.prefix = cfg->cache_prefix;
	app->cache.ttl = cfg->cache_ttl;
	app->cache.wait_ms = cfg->cache_wait_ms;
	/* A filler may hold its lock as long as its statement may run. */
	app->cache.lock_ms = cfg->statement_timeout_ms + 1000;
	return 0;
}

void
app_free(struct app *app)
{
	if (app == NULL)
		return;
	db_free(app->db);
	db_free(app->replica);
	kv_free(app->kv);
	buf_free(&app->body);
	app->db = NULL;
	app->replica = NULL;
	app->kv = NULL;
}

/* Answers through the routing table; the route, for the metrics. */
static enum metrics_route
dispatch(struct app *app, FCGX_Request *fr, const struct request *req,
    struct response *resp)
{
	struct exchange x = { app, req, resp, fr->in, 0 };
	const struct route *route;
	unsigned allowed;
	char allow[64];

	switch (route_match(routes, sizeof(routes) / sizeof(routes[0]),
	    req->path, req->method, &route, &x.id, &allowed)) {
	case ROUTE_NOT_FOUND:
		http_error(resp, 404, "no such resource");
		break;
	case ROUTE_BAD_METHOD:
		http_error(resp, 405, "method not allowed");
		http_header(resp, "Allow",
		    route_allow(allowed, allow, sizeof(allow)));
		break;
	case ROUTE_OK:
		route->handler(&x);
		return route_metrics[route - routes];
	}
	return MR_OTHER;
}

/* After the answer: the request and what the stores did, in metrics. */
static void
count_request(struct app *app, enum metrics_route route,
    const struct response *resp)
{
	unsigned long failures = kv_failures(app->kv);

	metrics_request(route, resp->status, clock_ms() - resp->started_ms);
	if (resp->db_ms > 0)
		metrics_pg(resp->db_ms);
	metrics_count(MC_REDIS_ERROR, failures - app->kv_failures);
	app->kv_failures = failures;
	metrics_breaker((int)kv_breaker_state(app->kv));
}

/*
 * Tests only (ORDERS_TEST_HOOKS=1), headers a test sends to reach a moment
 * it could not time from outside:
 *  - "X-Test-Fill-Delay-Ms: N" holds this request's cache fill back N ms
 *    after its load, so that a write can come in between (cache.c);
 *  - "X-Test-Die-After-Commit: 1" kills this worker between a write's
 *    commit and its invalidation (handlers_orders.c);
 *  - for a POST that leads its insert's batch (group.c): "X-Test-Lead-
 *    Delay: N" waits N ms for others to queue behind it before it takes
 *    the batch, and "X-Test-Die-Leading: 1" kills the worker after the
 *    batch's commit, before its answers.
 * test_ms: the header's N in 1..5000, else 0; test_flag: whether it is 1.
 */
static int
test_ms(const struct app *app, char **envp, const char *param)
{
	const char *v;
	int ms;

	if (!app->cfg->test_hooks || (v = FCGX_GetParam(param, envp)) == NULL)
		return 0;
	ms = atoi(v);
	return ms > 0 && ms <= 5000 ? ms : 0;
}

static int
test_flag(const struct app *app, char **envp, const char *param)
{
	const char *v;

	return app->cfg->test_hooks &&
	    (v = FCGX_GetParam(param, envp)) != NULL && strcmp(v, "1") == 0;
}

void
app_handle(struct app *app, FCGX_Request *fr)
{
	static struct response resp;	/* reused: its buffers stay allocated */
	enum metrics_route route = MR_OTHER;
	struct request req;
	char err[128];
	int status;

	http_response_reset(&resp);
	status = http_request_parse(fr->envp, &req, err, sizeof(err));
	app->cache.fill_delay_ms = test_ms(app, fr->envp,
	    "HTTP_X_TEST_FILL_DELAY_MS");
	app->die_after_commit = test_flag(app, fr->envp,
	    "HTTP_X_TEST_DIE_AFTER_COMMIT");
	app->lead_delay_ms = test_ms(app, fr->envp, "HTTP_X_TEST_LEAD_DELAY");
	app->die_leading = test_flag(app, fr->envp, "HTTP_X_TEST_DIE_LEADING");
	log_set_request_id(req.request_id);
	if (status != 0)
		http_error(&resp, status, err);
	else
		route = dispatch(app, fr, &req, &resp);
	if (http_send(fr->out, &req, &resp) == -1)
		log_warn("client went away before the answer was sent");
	count_request(app, route, &resp);
	log_set_request_id(NULL);
}
