/*
 * The order resource: the validated body of POST /orders and its
 * Idempotency-Key, and the JSON rendering of a stored order. Pure code
 * (json-c only), unit-tested.
 */
#ifndef ORDERS_ORDER_H
#define ORDERS_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "valid.h"

#define ORDER_BODY_MAX	16384	/* the contract's 16 KiB */
#define ORDER_JSON_DEPTH	8	/* deeper nesting is refused as malformed */

struct new_order {
	int32_t	customerid;
	int64_t	net_cents;
	int64_t	tax_cents;
	int64_t	total_cents;	/* computed here: net + tax */
	int	has_date;
	char	orderdate[DATE_LEN + 1];
};

/* A stored order, as Postgres renders its columns in text. */
struct order_row {
	int32_t	orderid;
	char	orderdate[DATE_LEN + 1];
	int32_t	customerid;
	char	netamount[24];
	char	tax[24];
	char	totalamount[24];
};

/*
 * Validates a request body. body[len] must be '\0'. Returns 0, or the HTTP
 * status the client gets (400 malformed JSON or a field named twice, 422 a
 * rule broken) with a message in err.
 */
int order_parse(const char *body, size_t len, struct new_order *o, char *err,
    size_t errlen);

#define ORDER_KEY_MAX	255	/* bytes of an Idempotency-Key */

/*
 * Checks an Idempotency-Key (NUL-terminated, as the client sent it): 1 to
 * ORDER_KEY_MAX bytes of visible ASCII, 0x21 to 0x7E. 0, or 400 with a
 * message in err (which never quotes the key).
 */
int order_key_check(const char *key, char *err, size_t errlen);

/*
 * Whether the stored order r is the one o asks for: the same customerid,
 * netamount and tax (compared in cents, exactly), and the same orderdate
 * when o names one. What a retry with the same Idempotency-Key must match.
 */
int order_matches(const struct new_order *o, const struct order_row *r);

/* Appends {"count": n} to out. 0 on success. */
int order_count_to_json(int64_t n, struct buf *out);

/* Appends the order as a JSON object to out. 0 on success. */
int order_to_json(const struct order_row *r, struct buf *out);

enum json_members {
	JSON_MEMBERS_OK,
	JSON_MEMBERS_DUPLICATE,	/* one member named twice */
	JSON_MEMBERS_NOT_JSON,	/* 'single quotes', NaN, Infinity */
	JSON_MEMBERS_TOO_MANY
};

/*
 * What json-c lets through that we refuse: text (already parsed by json-c)
 * is scanned for a top-level member named twice (json-c keeps the last)
 * and for what json-c accepts even when strict but JSON is not: single
 * quotes, NaN, Infinity.
 */
enum json_members json_check_members(const char *text, size_t len);

#endif
