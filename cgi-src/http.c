#include "http.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "clock.h"
#include "etag.h"

static const struct {
	const char	*name;
	unsigned	 method;
} methods[] = {
	{ "GET", HTTP_GET },
	{ "HEAD", HTTP_HEAD },
	{ "POST", HTTP_POST },
	{ "DELETE", HTTP_DELETE },
};

/* milliseconds with two decimals ("1.62"), as %.2f of a value >= 0 */
static char *
put_ms(char *p, double ms)
{
	unsigned long c;

	if (!(ms > 0))	/* and NaN */
		ms = 0;
	if (ms > 1e12)
		ms = 1e12;
	c = (unsigned long)(ms * 100 + 0.5);
	p += fmt_ulong(p, c / 100);
	*p++ = '.';
	*p++ = (char)('0' + c / 10 % 10);
	*p++ = (char)('0' + c % 10);
	return p;
}

/*
 * The parameters a request is made of, each the first of its name, as
 * FCGX_GetParam would find them, but in one pass over the environment
 * instead of a pass per name (a sixth of a hit's instructions).
 */
enum req_param {
	P_REQUEST_ID, P_REQUEST_METHOD, P_REQUEST_URI, P_QUERY_STRING,
	P_CONTENT_TYPE, P_CONTENT_LENGTH, P_IDEMPOTENCY_KEY, P_IF_NONE_MATCH,
	P_COUNT
};

static const struct param_name {
	const char	*name;
	size_t		 len;
} req_params[P_COUNT] = {
#define P(s)	{ s, sizeof(s) - 1 }
	[P_REQUEST_ID] = P("REQUEST_ID"),
	[P_REQUEST_METHOD] = P("REQUEST_METHOD"),
	[P_REQUEST_URI] = P("REQUEST_URI"),
	[P_QUERY_STRING] = P("QUERY_STRING"),
	[P_CONTENT_TYPE] = P("CONTENT_TYPE"),
	[P_CONTENT_LENGTH] = P("CONTENT_LENGTH"),
	[P_IDEMPOTENCY_KEY] = P("HTTP_IDEMPOTENCY_KEY"),
	[P_IF_NONE_MATCH] = P("HTTP_IF_NONE_MATCH"),
#undef P
};

/*
 * v[i]: the value of the first "NAME=value" of req_params[i], or NULL;
 * count[i]: how many came (nginx before 1.23 passes a repeated request
 * header once per line).
 */
static void
scan_params(char **envp, const char *v[P_COUNT], int count[P_COUNT])
{
	/*
	 * by_first[c]: our names that start with c, P_COUNT-terminated. Most
	 * of nginx's twenty or so other parameters start with a letter none
	 * of ours does; the rest are compared, by length first, with one to
	 * three names. Each against all eight, a byte at a time, cost a hit a
	 * tenth of its instructions (callgrind).
	 */
	static unsigned char by_first[256][P_COUNT + 1];
	static int ready;
	const unsigned char *cand;
	unsigned char *list;
	const char *e, *eq;
	size_t len;
	int i, n;

	if (!ready) {
		for (i = 0; i < 256; i++)
			by_first[i][0] = P_COUNT;
		for (i = 0; i < P_COUNT; i++) {
			list = by_first[(unsigned char)req_params[i].name[0]];
			for (n = 0; list[n] != P_COUNT; n++)
				;
			list[n] = (unsigned char)i;
			list[n + 1] = P_COUNT;
		}
		ready = 1;
	}
	for (i = 0; i < P_COUNT; i++) {
		v[i] = NULL;
		count[i] = 0;
	}
	for (; envp != NULL && (e = *envp) != NULL; envp++) {
		cand = by_first[(unsigned char)e[0]];
		if (*cand == P_COUNT || (eq = strchr(e, '=')) == NULL)
			continue;
		len = (size_t)(eq - e);
		for (; *cand != P_COUNT; cand++)
			if (req_params[*cand].len == len &&
			    memcmp(e, req_params[*cand].name, len) == 0) {
				if (count[*cand]++ == 0)
					v[*cand] = eq + 1;
				break;
			}
	}
}

/* an empty value as none */
static const char *
nonempty(const char *v)
{
	return v != NULL && v[0] != '\0' ? v : NULL;
}

/* A decimal Content-Length with nothing else; -1 if not one. */
static long long
parse_length(const char *s)
{
	long long n = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || n > 1000000000LL)
			return -1;
		n = n * 10 + (*s - '0');
	}
	return n;
}

int
http_request_parse(char **envp, struct request *r, char *err, size_t errlen)
{
	const char *v[P_COUNT], *method, *uri, *cl;
	int count[P_COUNT];
	size_t i, plen;

	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	scan_params(envp, v, count);
	r->request_id = nonempty(v[P_REQUEST_ID]);
	method = nonempty(v[P_REQUEST_METHOD]);
	r->method = HTTP_OTHER;
	for (i = 0; method != NULL && i < sizeof(methods) / sizeof(methods[0]);
	    i++)
		if (strcmp(method, methods[i].name) == 0)
			r->method = methods[i].method;
	/*
	 * Route on the raw path as the client sent it: nginx's decoded and
	 * merged $uri would make /orders/%31 and //orders/1 aliases.
	 */
	uri = nonempty(v[P_REQUEST_URI]);
	if (uri == NULL)
		uri = "/";
	plen = strcspn(uri, "?");
	if (plen >= sizeof(r->path)) {
		snprintf(err, errlen, "request path too long");
		return 414;
	}
	memcpy(r->path, uri, plen);
	r->path[plen] = '\0';
	r->query = nonempty(v[P_QUERY_STRING]);
	r->content_type = nonempty(v[P_CONTENT_TYPE]);
	r->idempotency_key = v[P_IDEMPOTENCY_KEY];
	r->idempotency_keys = count[P_IDEMPOTENCY_KEY];
	r->if_none_match = nonempty(v[P_IF_NONE_MATCH]);
	if ((cl = nonempty(v[P_CONTENT_LENGTH])) != NULL &&
	    (r->content_length = parse_length(cl)) < 0) {
		snprintf(err, errlen, "malformed Content-Length");
		return 400;
	}
	return 0;
}

int
http_is_json(const struct request *r)
{
	const char *ct = r->content_type;
	size_t n = strlen("application/json");

	/* "application/json" or "application/json; charset=utf-8" */
	return ct != NULL && strncasecmp(ct, "application/json", n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

int
http_read_body(FCGX_Stream *in, const struct request *r, struct buf *body,
    char *err, size_t errlen)
{
	char chunk[4096];
	long long left = r->content_length;
	int n;

	buf_reset(body);
	if (left < 0) {
		snprintf(err, errlen, "a body with a Content-Length is required");
		return 411;
	}
	if (left > HTTP_BODY_MAX) {
		snprintf(err, errlen, "request body too large (limit 16 KiB)");
		return 413;
	}
	while (left > 0) {
		n = FCGX_GetStr(chunk, left < (long long)sizeof(chunk) ?
		    (int)left : (int)sizeof(chunk), in);
		if (n <= 0)
			break;
		if (buf_append(body, chunk, (size_t)n) == -1) {
			snprintf(err, errlen, "out of memory");
			return 500;
		}
		left -= n;
	}
	if (left > 0) {
		snprintf(err, errlen, "request body shorter than its "
		    "Content-Length");
		return 400;
	}
	if (buf_append(body, "", 0) == -1) {	/* NUL-terminated, even empty */
		snprintf(err, errlen, "out of memory");
		return 500;
	}
	return 0;
}

void
http_response_reset(struct response *resp)
{
	resp->status = 500;
	resp->started_ms = clock_ms();
	resp->cache_ms = resp->db_ms = 0;
	buf_reset(&resp->headers);
	buf_reset(&resp->body);
}

void
http_response_free(struct response *resp)
{
	if (resp == NULL)
		return;
	buf_free(&resp->headers);
	buf_free(&resp->body);
}

/* n bytes of s at p (room made beforehand): past them */
static char *
put(char *p, const void *s, size_t n)
{
	if (n > 0)	/* s may be an empty buf's NULL */
		memcpy(p, s, n);
	return p + n;
}

/*
 * Values are ours, never a client's; still, no line breaks. Room made
 * once, then copied: an append per piece was a tenth of a hit's own code.
 */
void
http_header(struct response *resp, const char *name, const char *value)
{
	struct buf *h = &resp->headers;
	size_t nlen = strlen(name), vlen = strcspn(value, "\r\n");
	char *p;

	if (buf_reserve(h, nlen + vlen + 4) == -1)
		return;
	p = put(h->data + h->len, name, nlen);
	p = put(p, ": ", 2);
	p = put(p, value, vlen);
	p = put(p, "\r\n", 2);
	*p = '\0';
	h->len = (size_t)(p - h->data);
}

void
http_headerf(struct response *resp, const char *name, const char *fmt, ...)
{
	char value[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	http_header(resp, name, value);
}

void
http_json(struct response *resp, int status)
{
	resp->status = status;
	http_header(resp, "Content-Type", "application/json");
}

void
http_cached_json(struct response *resp, const struct request *r, int max_age,
    const uint64_t *hash)
{
	char etag[ETAG_MAX], cc[32];

	etag_format(hash != NULL ? *hash :
	    etag_hash(resp->body.data, resp->body.len), etag);
	if (etag_none_match(r->if_none_match, etag)) {
		/* No Content-Type: a 304 carries no representation. */
		resp->status = 304;
		buf_reset(&resp->body);
	} else
		http_json(resp, 200);
	http_header(resp, "ETag", etag);
	memcpy(cc, "max-age=", 8);
	fmt_ulong(cc + 8, max_age > 0 ? (unsigned long)max_age : 0);
	http_header(resp, "Cache-Control", cc);
}

void
http_error(struct response *resp, int status, const char *msg)
{
	json_object *o;

	buf_reset(&resp->body);
	http_json(resp, status);
	if ((o = json_object_new_object()) == NULL) {
		buf_puts(&resp->body, "{\"error\":\"out of memory\"}");
		return;
	}
	json_object_object_add(o, "error", json_object_new_string(msg));
	buf_puts(&resp->body, json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

/*
 * Content-Length, so that nginx need not chunk the answer, and a client has
 * it whole as soon as its body is there: a FastCGI answer otherwise ends
 * only with the END_REQUEST record, and a link lost between the two (a
 * worker host cut off) left the client with a body and no end, a broken
 * connection after nginx's read timeout. None with 204 and 304, which have
 * no body; HEAD gives the length GET would have.
 *
 * Put together by hand, not with printf: on a cache hit the printf family
 * was a third of the worker's instructions (callgrind).
 */
int
http_head(struct buf *out, const struct response *resp, double total_ms)
{
	const char *reason = http_reason(resp->status);
	size_t rlen = strlen(reason);
	char *p;

	buf_reset(out);
	/*
	 * The fixed text (79 bytes), 5 numbers (each, with put_ms's decimals,
	 * within FMT_INT_MAX bytes) and the variable parts; a number's NUL
	 * goes where the next part starts.
	 */
	if (buf_reserve(out, 79 + 5 * FMT_INT_MAX + rlen +
	    resp->headers.len) == -1)
		return -1;
	p = put(out->data, "Status: ", 8);
	p += fmt_ulong(p, resp->status > 0 ? (unsigned long)resp->status : 0);
	*p++ = ' ';
	p = put(p, reason, rlen);
	p = put(p, "\r\n", 2);
	p = put(p, resp->headers.data, resp->headers.len);
	if (resp->status != 204 && resp->status != 304) {
		p = put(p, "Content-Length: ", 16);
		p += fmt_ulong(p, resp->body.len);
		p = put(p, "\r\n", 2);
	}
	p = put(p, "Server-Timing: cache;dur=", 25);
	p = put_ms(p, resp->cache_ms);
	p = put(p, ", db;dur=", 9);
	p = put_ms(p, resp->db_ms);
	p = put(p, ", total;dur=", 12);
	p = put_ms(p, total_ms);
	p = put(p, "\r\n\r\n", 4);
	*p = '\0';
	out->len = (size_t)(p - out->data);
	return 0;
}

int
http_send(FCGX_Stream *out, const struct request *r,
    const struct response *resp)
{
	static struct buf head = BUF_INIT;	/* kept: a request at a time */

	if (http_head(&head, resp, clock_ms() - resp->started_ms) == -1 ||
	    FCGX_PutStr(head.data, (int)head.len, out) < 0)
		return -1;
	if (r->method == HTTP_HEAD || resp->body.len == 0)
		return 0;
	return FCGX_PutStr(resp->body.data, (int)resp->body.len, out) < 0 ?
	    -1 : 0;
}

const char *
http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 503: return "Service Unavailable";
	default: return status < 500 ? "Error" : "Internal Server Error";
	}
}
