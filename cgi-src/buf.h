/* A growable byte buffer, always NUL-terminated so it can be used as a string. */
#ifndef ORDERS_BUF_H
#define ORDERS_BUF_H

#include <stddef.h>

struct buf {
	char   *data;	/* owned; NULL until the first append */
	size_t  len;
	size_t  cap;
};

#define BUF_INIT { NULL, 0, 0 }

int  buf_append(struct buf *b, const void *data, size_t len);
/* room for extra more bytes and the NUL: 0, or -1 when out of memory */
int  buf_reserve(struct buf *b, size_t extra);
int  buf_puts(struct buf *b, const char *s);
int  buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);	/* keeps the memory for reuse */
void buf_free(struct buf *b);	/* NULL-safe */
const char *buf_str(const struct buf *b);	/* "" when empty */

/*
 * s after the *len bytes of out (outlen bytes), terminated, *len moved on:
 * 0, or -1 (out untouched) when it does not fit. Key and criteria names.
 */
int  str_add(char *out, size_t outlen, size_t *len, const char *s);

/*
 * v in decimal into dst, NUL-terminated: its length. dst holds
 * FMT_INT_MAX bytes. For the hot paths, where snprintf's "%d" cost a
 * thousand instructions a number.
 */
#define FMT_INT_MAX	24
size_t fmt_ulong(char *dst, unsigned long long v);
size_t fmt_long(char *dst, long long v);

#endif
