#include "query.h"

#include <stdio.h>
#include <string.h>

#include "buf.h"

enum param { P_CUSTOMERID, P_FROM, P_MIN_TOTAL, P_TO, P_COUNT };

/* Sorted by name: the canonical key lists them in this order. */
static const char *const param_names[P_COUNT] =
    { "customerid", "from", "min_total", "to" };

static int
set_param(struct criteria *c, enum param p, const char *v, size_t vlen,
    char *err, size_t errlen)
{
	enum money_err me;

	switch (p) {
	case P_CUSTOMERID:
		if (valid_positive_int(v, vlen, &c->customerid) == -1)
			goto bad;
		c->has_customerid = 1;
		return 0;
	case P_FROM:
	case P_TO:
		if (valid_date(v, vlen) == -1)
			goto bad;
		memcpy(p == P_FROM ? c->from : c->to, v, DATE_LEN + 1);
		*(p == P_FROM ? &c->has_from : &c->has_to) = 1;
		return 0;
	case P_MIN_TOTAL:
		me = valid_money(v, vlen, &c->min_total_cents);
		if (me != MONEY_OK) {
			snprintf(err, errlen, "min_total %s",
			    valid_money_strerror(me));
			return -1;
		}
		c->has_min_total = 1;
		return 0;
	case P_COUNT:
		break;
	}
bad:
	snprintf(err, errlen, "%s must be %s", param_names[p],
	    p == P_CUSTOMERID ? "a positive integer" :
	    "a real date written YYYY-MM-DD");
	return -1;
}

int
criteria_parse(const char *qs, struct criteria *c, char *err, size_t errlen)
{
	char name[32], value[64];
	const char *seg, *end, *eq;
	unsigned seen = 0;
	int nlen, vlen, p;

	memset(c, 0, sizeof(*c));
	if (qs == NULL)
		return 0;
	if (strlen(qs) > QUERY_MAX) {
		snprintf(err, errlen, "query string too long");
		return -1;
	}
	for (seg = qs; *seg != '\0'; seg = *end ? end + 1 : end) {
		end = strchr(seg, '&');
		if (end == NULL)
			end = seg + strlen(seg);
		if (end == seg)
			continue;	/* "a=1&&b=2", a trailing '&' */
		eq = memchr(seg, '=', (size_t)(end - seg));
		if (eq == NULL) {
			snprintf(err, errlen, "query parameter without a value");
			return -1;
		}
		nlen = pct_decode(seg, (size_t)(eq - seg), name, sizeof(name), 1);
		vlen = pct_decode(eq + 1, (size_t)(end - eq - 1), value,
		    sizeof(value), 1);
		if (nlen <= 0 || vlen < 0) {
			snprintf(err, errlen, "malformed query string");
			return -1;
		}
		for (p = 0; p < P_COUNT; p++)
			if (strcmp(name, param_names[p]) == 0)
				break;
		if (p == P_COUNT) {
			snprintf(err, errlen, "unknown query parameter (allowed: "
			    "customerid, from, to, min_total)");
			return -1;
		}
		if (seen & (1u << p)) {
			snprintf(err, errlen, "query parameter %s given twice",
			    param_names[p]);
			return -1;
		}
		seen |= 1u << p;
		if (set_param(c, (enum param)p, value, (size_t)vlen, err,
		    errlen) == -1)
			return -1;
	}
	return 0;
}

/* Not snprintf: a hit builds its key on every request (callgrind). */
int
criteria_key(const struct criteria *c, char *out, size_t outlen)
{
	char num[FMT_INT_MAX], money[24];
	size_t len = 0;

#define ADD(s)	do {						\
	if (str_add(out, outlen, &len, (s)) == -1)			\
		return -1;						\
} while (0)
#define SEP()	do { if (len > 0) ADD("&"); } while (0)
	if (outlen == 0)
		return -1;
	out[0] = '\0';
	if (c->has_customerid) {
		fmt_long(num, c->customerid);
		ADD("customerid=");
		ADD(num);
	}
	if (c->has_from) {
		SEP();
		ADD("from=");
		ADD(c->from);
	}
	if (c->has_min_total) {
		SEP();
		ADD("min_total=");
		ADD(money_format(c->min_total_cents, money, sizeof(money)));
	}
	if (c->has_to) {
		SEP();
		ADD("to=");
		ADD(c->to);
	}
	if (len == 0)
		ADD("all");
	return (int)len;
#undef ADD
#undef SEP
}
