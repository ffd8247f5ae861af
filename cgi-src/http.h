/*
 * HTTP over FastCGI: the request as the handlers see it (checked against
 * our limits before any handler runs), and the response they build.
 */
#ifndef ORDERS_HTTP_H
#define ORDERS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <fcgiapp.h>

#include "buf.h"

#define HTTP_PATH_MAX	256	/* longer request paths: 414 */
#define HTTP_BODY_MAX	16384	/* the contract's 16 KiB: 413 */

enum http_method {
	HTTP_GET	= 1 << 0,
	HTTP_HEAD	= 1 << 1,
	HTTP_POST	= 1 << 2,
	HTTP_DELETE	= 1 << 3,
	HTTP_OTHER	= 1 << 4
};

/*
 * Pointers into the FastCGI request's environment: valid until
 * FCGX_Finish_r(), never kept past it.
 */
struct request {
	unsigned	 method;	/* one enum http_method */
	char		 path[HTTP_PATH_MAX];	/* REQUEST_URI before '?' */
	const char	*query;		/* QUERY_STRING, or NULL */
	const char	*content_type;	/* or NULL */
	long long	 content_length;	/* -1 when absent */
	const char	*request_id;	/* nginx's $request_id, or NULL */
	/*
	 * Idempotency-Key as the client sent it, unchecked: NULL when absent,
	 * "" when empty. nginx (before 1.23) passes a repeated header once
	 * per line, and we would see only the first: idempotency_keys counts
	 * them, so that a handler can refuse two.
	 */
	const char	*idempotency_key;
	int		 idempotency_keys;
	/*
	 * If-None-Match, unchecked, or NULL. A repeated header is the first
	 * line only (see above): a client sends one list, not several.
	 */
	const char	*if_none_match;
};

struct response {
	int		 status;
	struct buf	 headers;	/* "Name: value\r\n" lines */
	struct buf	 body;
	double		 started_ms;	/* clock_ms() when the request came */
	double		 cache_ms;	/* time spent on Redis */
	double		 db_ms;		/* time spent on Postgres */
};

/*
 * Fills r from the FastCGI parameters. 0, or the status to answer (400,
 * 414) with a message in err.
 */
int http_request_parse(char **envp, struct request *r, char *err,
    size_t errlen);

/* Whether the request says its body is JSON (application/json). */
int http_is_json(const struct request *r);

/*
 * Reads the body (of at most HTTP_BODY_MAX bytes) into body, NUL-terminated.
 * 0, or the status to answer (411, 413, 400) with a message in err.
 */
int http_read_body(FCGX_Stream *in, const struct request *r, struct buf *body,
    char *err, size_t errlen);

void http_response_reset(struct response *resp);
void http_response_free(struct response *resp);	/* NULL-safe */
/* A header line; the value is cut at a line break (never a client's). */
void http_header(struct response *resp, const char *name, const char *value);
void http_headerf(struct response *resp, const char *name, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));
/* A JSON answer: the body must be set by the caller. */
void http_json(struct response *resp, int status);
/*
 * A cached read's 200 with its body in resp->body: a strong ETag of the
 * body and Cache-Control: max-age=max_age; or, when the request's
 * If-None-Match matches the tag, 304 with the same two headers and no
 * body. The one place a read's validators are made. hash: the body's
 * etag_hash when the caller has it (the cache does), else NULL.
 */
void http_cached_json(struct response *resp, const struct request *r,
    int max_age, const uint64_t *hash);
/* {"error": msg} with the status. */
void http_error(struct response *resp, int status, const char *msg);

/*
 * The FastCGI answer's head into out (reset first): Status, resp's headers,
 * Content-Length but for 204 and 304, and Server-Timing: cache, db and
 * total (total_ms), each in ms with two decimals; then the blank line.
 * 0, or -1 when out of memory.
 */
int http_head(struct buf *out, const struct response *resp, double total_ms);

/*
 * Writes the head (http_head, total: since resp->started_ms) and, unless
 * HEAD, the body. 0, or -1 on I/O error or out of memory.
 */
int http_send(FCGX_Stream *out, const struct request *r,
    const struct response *resp);

const char *http_reason(int status);

#endif
