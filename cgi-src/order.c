#include "order.h"

#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#define MAX_MEMBERS	16

/* The decoded text of the JSON string literal text[start..end]. */
static json_object *
decode_key(const char *text, size_t start, size_t end)
{
	json_tokener *tok;
	json_object *o;

	if ((tok = json_tokener_new()) == NULL)
		return NULL;
	o = json_tokener_parse_ex(tok, text + start, (int)(end - start));
	json_tokener_free(tok);
	if (o != NULL && !json_object_is_type(o, json_type_string)) {
		json_object_put(o);
		o = NULL;
	}
	return o;
}

/*
 * Whether s[0..len) is UTF-8 as RFC 3629 defines it (JSON text must be:
 * RFC 8259, 8.1). json-c's JSON_TOKENER_VALIDATE_UTF8 only checks the
 * bytes' shape: it lets overlong forms (C0 AF for '/'), surrogates (ED A0
 * 80) and code points past U+10FFFF (F4 90 80 80, F5 ...) through.
 */
static int
utf8_valid(const unsigned char *s, size_t len)
{
	unsigned char lo, hi;
	size_t i = 0, k, n;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		lo = 0x80;
		hi = 0xbf;
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			n = 1;
		else if (s[i] >= 0xe0 && s[i] <= 0xef) {
			n = 2;
			if (s[i] == 0xe0)
				lo = 0xa0;	/* overlong */
			else if (s[i] == 0xed)
				hi = 0x9f;	/* surrogates */
		} else if (s[i] >= 0xf0 && s[i] <= 0xf4) {
			n = 3;
			if (s[i] == 0xf0)
				lo = 0x90;	/* overlong */
			else if (s[i] == 0xf4)
				hi = 0x8f;	/* past U+10FFFF */
		} else
			return 0;
		if (len - i - 1 < n || s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return 0;
		i += n + 1;
	}
	return 1;
}

enum json_members
json_check_members(const char *text, size_t len)
{
	json_object *keys[MAX_MEMBERS];
	enum json_members dup = JSON_MEMBERS_OK;
	size_t i, start, nkeys = 0;
	int depth = 0, expect_key = 0, j;

	for (i = 0; i < len && dup == JSON_MEMBERS_OK; i++) {
		switch (text[i]) {
		case '\'':	/* 'single quotes' */
		case 'N':	/* NaN */
		case 'I':	/* Infinity: no JSON token outside strings
				 * has these letters */
			dup = JSON_MEMBERS_NOT_JSON;
			break;
		case '"':
			start = i;
			for (i++; i < len && text[i] != '"'; i++)
				if (text[i] == '\\')
					i++;
			if (depth != 1 || !expect_key)
				break;
			expect_key = 0;
			if (nkeys == MAX_MEMBERS) {
				dup = JSON_MEMBERS_TOO_MANY;
				break;
			}
			keys[nkeys] = decode_key(text, start, i + 1);
			if (keys[nkeys] == NULL) {
				dup = JSON_MEMBERS_NOT_JSON;
				break;
			}
			for (j = 0; j < (int)nkeys; j++)
				if (json_object_equal(keys[j], keys[nkeys]))
					dup = JSON_MEMBERS_DUPLICATE;
			nkeys++;
			break;
		case '{':
		case '[':
			if (++depth == 1)
				expect_key = text[i] == '{';
			break;
		case '}':
		case ']':
			depth--;
			break;
		case ',':
			if (depth == 1)
				expect_key = 1;
			break;
		}
	}
	for (i = 0; i < nkeys; i++)
		json_object_put(keys[i]);
	return dup;
}

static int
money_field(json_object *v, const char *name, int64_t *cents, char *err,
    size_t errlen)
{
	enum money_err me;
	const char *text;
	int64_t n;

	switch (json_object_get_type(v)) {
	case json_type_int:
		/* json-c clamps what does not fit to INT64_MAX: too large. */
		n = json_object_get_int64(v);
		if (n < 0)
			me = MONEY_NEGATIVE;
		else if (n > MONEY_MAX_CENTS / 100)
			me = MONEY_TOO_LARGE;
		else {
			*cents = n * 100;
			return 0;
		}
		break;
	case json_type_double:
		/* The parser keeps the number's own text: check it, not a
		 * binary double that has already rounded it. */
		text = json_object_get_string(v);
		me = valid_money(text, strlen(text), cents);
		if (me == MONEY_OK)
			return 0;
		break;
	default:
		snprintf(err, errlen, "%s must be a number", name);
		return 422;
	}
	snprintf(err, errlen, "%s %s", name, valid_money_strerror(me));
	return 422;
}

static int
customer_field(json_object *v, int32_t *out, char *err, size_t errlen)
{
	int64_t n;

	if (!json_object_is_type(v, json_type_int)) {
		snprintf(err, errlen, "customerid must be an integer");
		return 422;
	}
	n = json_object_get_int64(v);
	if (n < 1 || n > INT32_MAX) {
		snprintf(err, errlen, "customerid must be between 1 and %d",
		    INT32_MAX);
		return 422;
	}
	*out = (int32_t)n;
	return 0;
}

static int
date_field(json_object *v, struct new_order *o, char *err, size_t errlen)
{
	const char *s;

	if (!json_object_is_type(v, json_type_string) ||
	    valid_date(s = json_object_get_string(v),
	    (size_t)json_object_get_string_len(v)) == -1) {
		snprintf(err, errlen, "orderdate must be a real date written "
		    "\"YYYY-MM-DD\"");
		return 422;
	}
	memcpy(o->orderdate, s, DATE_LEN + 1);
	o->has_date = 1;
	return 0;
}

static int
order_fields(json_object *obj, struct new_order *o, char *err, size_t errlen)
{
	json_object *cust = NULL, *net = NULL, *tax = NULL, *date = NULL;
	int rc;

	json_object_object_foreach(obj, name, value) {
		if (strcmp(name, "customerid") == 0)
			cust = value;
		else if (strcmp(name, "netamount") == 0)
			net = value;
		else if (strcmp(name, "tax") == 0)
			tax = value;
		else if (strcmp(name, "orderdate") == 0)
			date = value;
		else {
			snprintf(err, errlen, "unknown field (allowed: "
			    "customerid, netamount, tax, orderdate)");
			return 422;
		}
	}
	if (cust == NULL || net == NULL || tax == NULL) {
		snprintf(err, errlen, "missing field: %s is required",
		    cust == NULL ? "customerid" : net == NULL ? "netamount" :
		    "tax");
		return 422;
	}
	if ((rc = customer_field(cust, &o->customerid, err, errlen)) != 0 ||
	    (rc = money_field(net, "netamount", &o->net_cents, err,
	    errlen)) != 0 ||
	    (rc = money_field(tax, "tax", &o->tax_cents, err, errlen)) != 0)
		return rc;
	if (date != NULL && (rc = date_field(date, o, err, errlen)) != 0)
		return rc;
	o->total_cents = o->net_cents + o->tax_cents;
	if (o->total_cents > MONEY_MAX_CENTS) {
		snprintf(err, errlen, "netamount + tax is too large");
		return 422;
	}
	return 0;
}

int
order_parse(const char *body, size_t len, struct new_order *o, char *err,
    size_t errlen)
{
	enum json_members members;
	json_tokener *tok;
	json_object *obj = NULL;
	int rc;

	memset(o, 0, sizeof(*o));
	if (len == 0 || len > ORDER_BODY_MAX) {
		snprintf(err, errlen, len ? "body too large" : "empty body");
		return len ? 413 : 400;
	}
	if (!utf8_valid((const unsigned char *)body, len)) {
		snprintf(err, errlen, "malformed JSON: invalid utf-8");
		return 400;
	}
	if ((tok = json_tokener_new_ex(ORDER_JSON_DEPTH)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return 500;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	/* Passing the terminating NUL too ends a bare top-level number. */
	obj = json_tokener_parse_ex(tok, body, (int)len + 1);
	if (obj == NULL &&
	    json_tokener_get_error(tok) == json_tokener_success &&
	    json_tokener_get_parse_end(tok) >= len) {
		/* A JSON null: json-c's object for it is NULL, but it is
		 * well-formed JSON, not an object, like 42 or [] (422). */
		snprintf(err, errlen, "the body must be a JSON object");
		rc = 422;
	} else if (obj == NULL || json_tokener_get_parse_end(tok) < len) {
		snprintf(err, errlen, "malformed JSON: %s",
		    json_tokener_get_error(tok) != json_tokener_success ?
		    json_tokener_error_desc(json_tokener_get_error(tok)) :
		    "unexpected data after it");
		rc = 400;
	} else if (!json_object_is_type(obj, json_type_object)) {
		snprintf(err, errlen, "the body must be a JSON object");
		rc = 422;
	} else if ((members = json_check_members(body, len)) !=
	    JSON_MEMBERS_OK) {
		snprintf(err, errlen, "%s",
		    members == JSON_MEMBERS_DUPLICATE ? "a field is named twice" :
		    members == JSON_MEMBERS_NOT_JSON ? "malformed JSON" : "too many fields");
		rc = members == JSON_MEMBERS_TOO_MANY ? 422 : 400;
	} else
		rc = order_fields(obj, o, err, errlen);
	json_object_put(obj);
	json_tokener_free(tok);
	return rc;
}

int
order_key_check(const char *key, char *err, size_t errlen)
{
	size_t i, len = strlen(key);

	if (len == 0) {
		snprintf(err, errlen, "Idempotency-Key must not be empty");
		return 400;
	}
	if (len > ORDER_KEY_MAX) {
		snprintf(err, errlen, "Idempotency-Key must be at most %d bytes",
		    ORDER_KEY_MAX);
		return 400;
	}
	for (i = 0; i < len; i++)
		if ((unsigned char)key[i] < 0x21 ||
		    (unsigned char)key[i] > 0x7e) {
			snprintf(err, errlen, "Idempotency-Key may contain only "
			    "visible ASCII characters (no spaces, no control "
			    "characters)");
			return 400;
		}
	return 0;
}

/* Postgres's text of a numeric(12,2) ("12.50"), in cents; -1 if not one. */
static int64_t
row_cents(const char *text)
{
	int64_t cents;

	return valid_money(text, strlen(text), &cents) == MONEY_OK ? cents : -1;
}

int
order_matches(const struct new_order *o, const struct order_row *r)
{
	return o->customerid == r->customerid &&
	    o->net_cents == row_cents(r->netamount) &&
	    o->tax_cents == row_cents(r->tax) &&
	    (!o->has_date || strcmp(o->orderdate, r->orderdate) == 0);
}

static int
render(json_object *o, struct buf *out)
{
	int rc;

	rc = buf_puts(out, json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return rc;
}

int
order_count_to_json(int64_t n, struct buf *out)
{
	json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return -1;
	json_object_object_add(o, "count", json_object_new_int64(n));
	return render(o, out);
}

int
order_to_json(const struct order_row *r, struct buf *out)
{
	json_object *o;

	if ((o = json_object_new_object()) == NULL)
		return -1;
	/* Amounts keep Postgres's exact text ("12.50"): never a double's. */
	json_object_object_add(o, "orderid", json_object_new_int(r->orderid));
	json_object_object_add(o, "orderdate",
	    json_object_new_string(r->orderdate));
	json_object_object_add(o, "customerid",
	    json_object_new_int(r->customerid));
	json_object_object_add(o, "netamount",
	    json_object_new_double_s(0, r->netamount));
	json_object_object_add(o, "tax", json_object_new_double_s(0, r->tax));
	json_object_object_add(o, "totalamount",
	    json_object_new_double_s(0, r->totalamount));
	return render(o, out);
}
