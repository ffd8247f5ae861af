/*
 * libFuzzer target: the body of POST /orders.
 *
 * order_parse() gets the bytes a client sent, NUL-terminated as
 * http_read_body() leaves them. Its answer must be one the contract knows
 * (0, 400, 413, 422); an accepted order must hold amounts the table can
 * store, with total = net + tax. The accepted order then goes the way a
 * stored one goes back to a client (order_to_json), and that JSON, less
 * the columns Postgres adds (orderid, totalamount), must be accepted again
 * as the same order. A broken promise aborts: libFuzzer reports a crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "order.h"
#include "valid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int ok)
{
	if (!ok)
		abort();
}

static int
amount_ok(int64_t cents)
{
	return cents >= 0 && cents <= MONEY_MAX_CENTS;
}

static void
check_order(const struct new_order *o)
{
	check(o->customerid >= 1);
	check(amount_ok(o->net_cents) && amount_ok(o->tax_cents) &&
	    amount_ok(o->total_cents));
	check(o->total_cents == o->net_cents + o->tax_cents);
	check(!o->has_date || valid_date(o->orderdate, strlen(o->orderdate)) == 0);
}

/* The order as GET /orders/{id} would show it once stored. */
static void
render(const struct new_order *o, struct buf *out)
{
	struct order_row row;

	memset(&row, 0, sizeof(row));
	row.orderid = 1;
	row.customerid = o->customerid;
	/* Postgres's CURRENT_DATE stands in when the body had no date. */
	snprintf(row.orderdate, sizeof(row.orderdate), "%s",
	    o->has_date ? o->orderdate : "2004-01-01");
	money_format(o->net_cents, row.netamount, sizeof(row.netamount));
	money_format(o->tax_cents, row.tax, sizeof(row.tax));
	money_format(o->total_cents, row.totalamount, sizeof(row.totalamount));
	check(order_to_json(&row, out) == 0);
}

/* The rendered order, less what a client does not send, parses back. */
static void
round_trip(const struct new_order *o, const struct buf *rendered)
{
	struct new_order back;
	json_object *obj;
	const char *body;
	char err[160];

	obj = json_tokener_parse(buf_str(rendered));
	check(obj != NULL && json_object_is_type(obj, json_type_object));
	json_object_object_del(obj, "orderid");
	json_object_object_del(obj, "totalamount");
	body = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
	check(order_parse(body, strlen(body), &back, err, sizeof(err)) == 0);
	check(back.customerid == o->customerid &&
	    back.net_cents == o->net_cents && back.tax_cents == o->tax_cents &&
	    back.total_cents == o->total_cents);
	check(back.has_date && strcmp(back.orderdate,
	    o->has_date ? o->orderdate : "2004-01-01") == 0);
	json_object_put(obj);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf out = BUF_INIT;
	struct new_order o;
	char err[160];
	char *body;
	int rc;

	/* body[len] must be '\0'; one byte more would be a bug ASan sees. */
	if ((body = malloc(size + 1)) == NULL)
		return 0;
	memcpy(body, data, size);
	body[size] = '\0';

	err[0] = '\0';
	rc = order_parse(body, size, &o, err, sizeof(err));
	check(rc == 0 || rc == 400 || rc == 413 || rc == 422);
	if (rc != 0)
		check(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
	else {
		check_order(&o);
		render(&o, &out);
		round_trip(&o, &out);
	}
	buf_free(&out);
	free(body);
	return 0;
}
