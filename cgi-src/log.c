#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum log_level	 min_level = LOG_INFO;
static const char	*component_name = "worker";
/*
 * The request in hand's id as nginx passed it: a pointer into the
 * request's parameters, which live until app_handle sets it back to NULL.
 * Made safe only when a line is written: most requests log nothing.
 */
static const char	*request_id;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
log_init(enum log_level min, const char *component)
{
	min_level = min;
	component_name = component;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

void
log_set_request_id(const char *rid)
{
	request_id = rid;
}

char *
log_safe(char *dst, size_t dstlen, const char *src)
{
	size_t i = 0;

	if (dstlen == 0)
		return dst;
	for (; src != NULL && *src != '\0' && i + 1 < dstlen; src++) {
		unsigned char c = (unsigned char)*src;
		dst[i++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
		    ? (char)c : '?';
	}
	dst[i] = '\0';
	return dst;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char msg[1024], ts[32], line[1280], rid[64];
	int n;
	struct timespec now;
	struct tm tm;
	va_list ap;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line),
	    "ts=%s.%03ldZ level=%s %s=%d%s%s msg=\"%s\"\n",
	    ts, now.tv_nsec / 1000000, level_names[level], component_name,
	    (int)getpid(), request_id != NULL && request_id[0] != '\0' ?
	    " rid=" : "", log_safe(rid, sizeof(rid), request_id), msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/*
	 * One write per line: the log file is opened O_APPEND and shared by
	 * every worker, so lines never interleave.
	 */
	(void)!write(STDERR_FILENO, line, (size_t)n);
}
