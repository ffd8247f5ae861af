/*
 * HTTP validators of a cached read: the strong entity tag of a body, and
 * If-None-Match against it (RFC 9110, 8.8.3 and 13.1.2). Pure: no I/O.
 */
#ifndef ORDERS_ETAG_H
#define ORDERS_ETAG_H

#include <stddef.h>
#include <stdint.h>

/* '"' + 16 hex digits + '"' + NUL */
#define ETAG_MAX	19

/*
 * The strong tag of body[0..len): FNV-1a 64 of the bytes, in hex, quoted,
 * e.g. "cbf29ce484222325". The same bytes always give the same tag,
 * whichever worker computes it. out must hold ETAG_MAX bytes.
 */
void etag_of(const char *body, size_t len, char out[ETAG_MAX]);

/* FNV-1a 64 of p[0..len): the tag's number. */
uint64_t etag_hash(const char *p, size_t len);

/* The tag of the number etag_hash gave: etag_of without hashing again. */
void etag_format(uint64_t hash, char out[ETAG_MAX]);

/*
 * Whether an If-None-Match field value matches etag (a tag of etag_of):
 * "*", or a comma-separated list of entity-tags one of which is etag by
 * the weak comparison (W/"x" matches "x"). A value that is not such a list
 * matches nothing: the full answer is then sent, never a wrong 304.
 */
int etag_none_match(const char *if_none_match, const char *etag);

#endif
