/* GET /healthz: Redis down is degraded (200), Postgres down is 503. */
#include <stdio.h>

#include "handlers.h"

void
handle_health(struct exchange *x)
{
	int pg = db_ping(x->app->db) == DB_OK;
	int redis = kv_ping(x->app->kv) == KV_OK;

	buf_printf(&x->resp->body, "{\"postgres\":\"%s\",\"redis\":\"%s\"}",
	    pg ? "ok" : "down", redis ? "ok" : "down");
	http_json(x->resp, pg ? 200 : 503);
	http_header(x->resp, "Cache-Control", "no-store");
}
