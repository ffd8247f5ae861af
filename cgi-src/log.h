/*
 * Logging: one logfmt line per event on stderr (spawn-fcgi's pool sends it
 * to the workers' log file). Untrusted text goes through log_safe() first.
 */
#ifndef ORDERS_LOG_H
#define ORDERS_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_init(enum log_level min, const char *component);
int  log_level_parse(const char *s, enum log_level *out);
/* The request id of the request in hand, or NULL between requests. */
void log_set_request_id(const char *rid);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Copies src into dst (of size dstlen) keeping printable ASCII only, with
 * quotes and backslashes replaced too, so that bytes a client sent can never
 * forge a log line or a field. Returns dst.
 */
char *log_safe(char *dst, size_t dstlen, const char *src);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
