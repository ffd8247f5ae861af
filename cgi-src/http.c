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

static const char *
param(char **envp, const char *name)
{
	const char *v = FCGX_GetParam(name, envp);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

/*
 * The first value of a request header's parameter (HTTP_...), even an
 * empty one, and in *count how many times it came.
 */
static const char *
header_param(char **envp, const char *name, int *count)
{
	const char *first = NULL;
	size_t n = strlen(name);

	*count = 0;
	for (; envp != NULL && *envp != NULL; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=') {
			if ((*count)++ == 0)
				first = *envp + n + 1;
		}
	return first;
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
	const char *method, *uri, *cl;
	size_t i, plen;

	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	r->request_id = param(envp, "REQUEST_ID");
	method = param(envp, "REQUEST_METHOD");
	r->method = HTTP_OTHER;
	for (i = 0; method != NULL && i < sizeof(methods) / sizeof(methods[0]);
	    i++)
		if (strcmp(method, methods[i].name) == 0)
			r->method = methods[i].method;
	/*
	 * Route on the raw path as the client sent it: nginx's decoded and
	 * merged $uri would make /orders/%31 and //orders/1 aliases.
	 */
	uri = param(envp, "REQUEST_URI");
	if (uri == NULL)
		uri = "/";
	plen = strcspn(uri, "?");
	if (plen >= sizeof(r->path)) {
		snprintf(err, errlen, "request path too long");
		return 414;
	}
	memcpy(r->path, uri, plen);
	r->path[plen] = '\0';
	r->query = param(envp, "QUERY_STRING");
	r->content_type = param(envp, "CONTENT_TYPE");
	r->idempotency_key = header_param(envp, "HTTP_IDEMPOTENCY_KEY",
	    &r->idempotency_keys);
	r->if_none_match = param(envp, "HTTP_IF_NONE_MATCH");
	if ((cl = param(envp, "CONTENT_LENGTH")) != NULL &&
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

void
http_header(struct response *resp, const char *name, const char *fmt, ...)
{
	char value[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	/* Values are ours, never a client's; still, no line breaks. */
	value[strcspn(value, "\r\n")] = '\0';
	buf_printf(&resp->headers, "%s: %s\r\n", name, value);
}

void
http_json(struct response *resp, int status)
{
	resp->status = status;
	http_header(resp, "Content-Type", "application/json");
}

void
http_cached_json(struct response *resp, const struct request *r, int max_age)
{
	char etag[ETAG_MAX];

	etag_of(resp->body.data, resp->body.len, etag);
	if (etag_none_match(r->if_none_match, etag)) {
		/* No Content-Type: a 304 carries no representation. */
		resp->status = 304;
		buf_reset(&resp->body);
	} else
		http_json(resp, 200);
	http_header(resp, "ETag", "%s", etag);
	http_header(resp, "Cache-Control", "max-age=%d", max_age);
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
 */
int
http_send(FCGX_Stream *out, const struct request *r,
    const struct response *resp)
{
	char length[40] = "";

	if (resp->status != 204 && resp->status != 304)
		snprintf(length, sizeof(length), "Content-Length: %zu\r\n",
		    resp->body.len);
	if (FCGX_FPrintF(out, "Status: %d %s\r\n%s%sServer-Timing: "
	    "cache;dur=%.2f, db;dur=%.2f, total;dur=%.2f\r\n\r\n",
	    resp->status, http_reason(resp->status), buf_str(&resp->headers),
	    length, resp->cache_ms, resp->db_ms,
	    clock_ms() - resp->started_ms) < 0)
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
