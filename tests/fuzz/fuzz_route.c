/*
 * libFuzzer target: the request path and the single values cut from it.
 *
 * - route_match() on the input as a path, with app.c's table, for every
 *   method: an answer consistent with the table, an Allow header that fits.
 * - pct_decode(), valid_money(), valid_date(), valid_positive_int() on every
 *   slice of the input between separators ('/', '?', '&', '=', newline),
 *   each slice copied alone into a buffer of exactly its length, so a read
 *   past it is an ASan report: what they accept must survive its own
 *   round trip (format, or encode, and parse again).
 * - kv_url_parse() on the input (REDIS_URL: less hostile, cheap to add).
 *
 * A broken promise aborts, which libFuzzer reports as a crash.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "kv.h"
#include "route.h"
#include "valid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void h_count(struct exchange *x) { (void)x; }
static void h_get(struct exchange *x) { (void)x; }
static void h_del(struct exchange *x) { (void)x; }
static void h_post(struct exchange *x) { (void)x; }
static void h_health(struct exchange *x) { (void)x; }

/* As in app.c. */
static const struct route table[] = {
	{ "/orders/count", HTTP_GET, h_count },
	{ "/orders/{id}", HTTP_GET, h_get },
	{ "/orders/{id}", HTTP_DELETE, h_del },
	{ "/orders", HTTP_POST, h_post },
	{ "/healthz", HTTP_GET, h_health },
};
#define NROUTES (sizeof(table) / sizeof(table[0]))

static void
check(int ok)
{
	if (!ok)
		abort();
}

/* Allowed methods of an entry, HEAD included wherever GET is. */
static unsigned
entry_methods(const struct route *r)
{
	return r->methods & HTTP_GET ? r->methods | HTTP_HEAD : r->methods;
}

static void
fuzz_allow(unsigned allowed)
{
	char allow[64], *small;
	size_t n;

	route_allow(allowed, allow, sizeof(allow));
	check(strlen(allow) > 0 && strlen(allow) < sizeof(allow));
	/* Too small a buffer: cut short, never overrun. */
	for (n = 1; n <= 8; n++) {
		if ((small = malloc(n)) == NULL)
			return;
		route_allow(allowed, small, n);
		check(strlen(small) < n);
		free(small);
	}
}

static void
fuzz_routes(const char *path)
{
	static const unsigned methods[] =
	    { HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_DELETE, HTTP_OTHER };
	const struct route *match;
	unsigned allowed;
	int32_t id;
	size_t i;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		switch (route_match(table, NROUTES, path, methods[i], &match,
		    &id, &allowed)) {
		case ROUTE_OK:
			check(match >= table && match < table + NROUTES);
			check(entry_methods(match) & methods[i]);
			/* Matched a "{id}": a positive 32-bit orderid. */
			check((strstr(match->pattern, "{id}") != NULL) ==
			    (id > 0));
			check(path[0] == '/');
			break;
		case ROUTE_BAD_METHOD:
			check(match == NULL && allowed != 0 &&
			    !(allowed & methods[i]));
			fuzz_allow(allowed);
			break;
		case ROUTE_NOT_FOUND:
			check(match == NULL && allowed == 0);
			break;
		default:
			check(0);
		}
	}
}

static void
fuzz_pct(const char *s, size_t len, int plus_is_space, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out, *enc, *again;
	int n, m;
	size_t i;

	if ((out = malloc(outlen)) == NULL)
		return;
	n = pct_decode(s, len, out, outlen, plus_is_space);
	check(n >= -1);
	if (n == -1) {
		free(out);
		return;
	}
	check((size_t)n < outlen && (size_t)n <= len && out[n] == '\0' &&
	    memchr(out, '\0', (size_t)n) == NULL);
	/* Every byte encoded as %XX decodes to the same bytes. */
	enc = malloc((size_t)n * 3 + 1);
	again = malloc((size_t)n + 1);
	if (enc != NULL && again != NULL) {
		for (i = 0; i < (size_t)n; i++) {
			enc[i * 3] = '%';
			enc[i * 3 + 1] = hex[(unsigned char)out[i] >> 4];
			enc[i * 3 + 2] = hex[(unsigned char)out[i] & 15];
		}
		m = pct_decode(enc, (size_t)n * 3, again, (size_t)n + 1,
		    plus_is_space);
		check(m == n && memcmp(again, out, (size_t)n + 1) == 0);
	}
	free(enc);
	free(again);
	free(out);
}

static void
fuzz_values(const char *s, size_t len)
{
	char text[24];
	int64_t cents, back;
	int32_t v, v2;

	fuzz_pct(s, len, 0, len + 1);
	fuzz_pct(s, len, 1, len + 1);
	fuzz_pct(s, len, 1, 32);	/* smaller than many inputs */
	if (valid_money(s, len, &cents) == MONEY_OK) {
		check(cents >= 0 && cents <= MONEY_MAX_CENTS);
		money_format(cents, text, sizeof(text));
		check(valid_money(text, strlen(text), &back) == MONEY_OK &&
		    back == cents);
	}
	if (valid_date(s, len) == 0)
		check(len == DATE_LEN && s[4] == '-' && s[7] == '-');
	if (valid_positive_int(s, len, &v) == 0) {
		check(v > 0);
		snprintf(text, sizeof(text), "%d", (int)v);
		check(valid_positive_int(text, strlen(text), &v2) == 0 &&
		    v2 == v);
	}
}

/* Each slice between separators, alone in a buffer of its exact size. */
static void
fuzz_slices(const uint8_t *data, size_t size)
{
	size_t start = 0, i;
	char *slice;

	for (i = 0; i <= size; i++) {
		if (i < size && strchr("/?&=\n", data[i]) == NULL)
			continue;
		if ((slice = malloc(i - start + 1)) != NULL) {
			memcpy(slice, data + start, i - start);
			fuzz_values(slice, i - start);
			free(slice);
		}
		start = i + 1;
	}
}

static void
fuzz_kv_url(const char *url)
{
	struct kv_url u;
	char err[256];

	err[0] = '\0';
	if (kv_url_parse(url, &u, err, sizeof(err)) == -1) {
		check(err[0] != '\0');
		return;
	}
	check(memchr(u.host, '\0', sizeof(u.host)) != NULL &&
	    memchr(u.path, '\0', sizeof(u.path)) != NULL &&
	    memchr(u.user, '\0', sizeof(u.user)) != NULL &&
	    memchr(u.password, '\0', sizeof(u.password)) != NULL);
	check(u.db >= 0 && u.db <= 15);
	if (u.unix_socket)
		check(u.path[0] == '/');
	else
		check(u.host[0] != '\0' && u.port >= 1 && u.port <= 65535);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	fuzz_routes(s);
	fuzz_kv_url(s);
	free(s);
	fuzz_slices(data, size);
	/* The whole input as one value too (a path, a query, an amount). */
	if ((s = malloc(size ? size : 1)) != NULL) {
		memcpy(s, data, size);
		fuzz_values(s, size);
		free(s);
	}
	return 0;
}
