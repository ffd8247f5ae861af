/*
 * kv_url.c: where Redis is, from the configuration: REDIS_URL's forms and
 * REDIS_SENTINELS' list (kv.h). No I/O: the worker and the invalidator
 * parse with it at start-up, and so does bench/floor-redis.c, which
 * links it alone, so that the floor reads the URL the pool is given
 * exactly as the service does.
 */
#include "kv.h"

#include <stdio.h>
#include <string.h>

#include "valid.h"

int
kv_parse_int(const char *s, size_t len, int lo, int hi, int *out)
{
	long v = 0;
	size_t i;

	if (len == 0 || len > 9)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

/* "password=...&db=N" of a unix:// URL */
static int
parse_unix_query(const char *q, struct kv_url *u)
{
	const char *seg, *end, *eq;

	for (seg = q; *seg != '\0'; seg = *end ? end + 1 : end) {
		end = strchr(seg, '&');
		if (end == NULL)
			end = seg + strlen(seg);
		eq = memchr(seg, '=', (size_t)(end - seg));
		if (eq == NULL)
			return -1;
		if ((size_t)(eq - seg) == 8 && strncmp(seg, "password", 8) == 0) {
			if (pct_decode(eq + 1, (size_t)(end - eq - 1),
			    u->password, sizeof(u->password), 0) < 0)
				return -1;
		} else if ((size_t)(eq - seg) == 2 && strncmp(seg, "db", 2) == 0) {
			if (kv_parse_int(eq + 1, (size_t)(end - eq - 1), 0, 15,
			    &u->db) == -1)
				return -1;
		} else
			return -1;
	}
	return 0;
}

/*
 * "user:password", "user" or "password", from p up to at (the '@'),
 * percent-decoded into u. Alone, the word is the password when
 * alone_is_password (redis://password@host, redis-cli's older form), else
 * the user (unix://user@/path, redis-py's form, the password in the
 * query).
 */
static int
parse_userinfo(const char *p, const char *at, int alone_is_password,
    struct kv_url *u)
{
	const char *colon = memchr(p, ':', (size_t)(at - p));

	if (colon != NULL)
		return pct_decode(p, (size_t)(colon - p), u->user,
		    sizeof(u->user), 0) < 0 ||
		    pct_decode(colon + 1, (size_t)(at - colon - 1),
		    u->password, sizeof(u->password), 0) < 0 ? -1 : 0;
	if (alone_is_password)
		return pct_decode(p, (size_t)(at - p), u->password,
		    sizeof(u->password), 0) < 0 ? -1 : 0;
	return pct_decode(p, (size_t)(at - p), u->user, sizeof(u->user),
	    0) < 0 ? -1 : 0;
}

static int
parse_tcp(const char *p, struct kv_url *u)
{
	const char *at, *host, *slash, *hostend, *portstart;

	slash = strchr(p, '/');
	if (slash == NULL)
		slash = p + strlen(p);
	at = memchr(p, '@', (size_t)(slash - p));
	host = p;
	if (at != NULL) {
		if (parse_userinfo(p, at, 1, u) == -1)
			return -1;
		host = at + 1;
	}
	if (*host == '[') {	/* [::1]:6379 */
		hostend = memchr(host, ']', (size_t)(slash - host));
		if (hostend == NULL)
			return -1;
		host++;
		portstart = hostend + 1;
	} else {
		hostend = memchr(host, ':', (size_t)(slash - host));
		if (hostend == NULL)
			hostend = slash;
		portstart = hostend;
	}
	if (hostend == host || (size_t)(hostend - host) >= sizeof(u->host))
		return -1;
	memcpy(u->host, host, (size_t)(hostend - host));
	u->host[hostend - host] = '\0';
	u->port = 6379;
	if (portstart < slash) {
		if (*portstart != ':' || kv_parse_int(portstart + 1,
		    (size_t)(slash - portstart - 1), 1, 65535, &u->port) == -1)
			return -1;
	}
	if (*slash == '/' && slash[1] != '\0' &&
	    kv_parse_int(slash + 1, strlen(slash + 1), 0, 15, &u->db) == -1)
		return -1;
	return 0;
}

int
kv_url_parse(const char *url, struct kv_url *u, char *err, size_t errlen)
{
	const char *q, *path, *at;
	size_t plen;

	memset(u, 0, sizeof(*u));
	if (strncmp(url, "rediss://", 9) == 0) {
		snprintf(err, errlen, "rediss:// (TLS) is not supported by this "
		    "build: run a TLS tunnel and use redis:// to it");
		return -1;
	}
	if (strncmp(url, "redis://", 8) == 0) {
		if (parse_tcp(url + 8, u) == -1)
			goto bad;
		return 0;
	}
	if (strncmp(url, "unix://", 7) == 0) {
		u->unix_socket = 1;
		path = url + 7;
		if (*path != '/') {	/* unix://user[:password]@/path */
			if ((at = strchr(path, '@')) == NULL || at[1] != '/' ||
			    parse_userinfo(path, at, 0, u) == -1)
				goto bad;
			path = at + 1;
		}
		q = strchr(path, '?');
		plen = q ? (size_t)(q - path) : strlen(path);
		if (plen == 0 || plen >= sizeof(u->path))
			goto bad;
		memcpy(u->path, path, plen);
		u->path[plen] = '\0';
		if (q != NULL && parse_unix_query(q + 1, u) == -1)
			goto bad;
		return 0;
	}
bad:
	snprintf(err, errlen, "REDIS_URL must look like "
	    "redis://[user:password@]host[:port][/db] or "
	    "unix://[user@]/path?password=...&db=N");
	return -1;
}

/*
 * One "host:port" or "[v6]:port" of REDIS_SENTINELS, len bytes at p. A
 * host is letters, digits, '.', '-', '_' (a name or IPv4), or what goes
 * between brackets (hex, ':', '.').
 */
static int
parse_hostport(const char *p, size_t len, struct kv_hostport *hp)
{
	const char *end = p + len, *colon, *host = p, *hostend;
	size_t i;

	if (len > 0 && *p == '[') {
		host = p + 1;
		hostend = memchr(host, ']', len - 1);
		if (hostend == NULL || hostend + 1 == end || hostend[1] != ':')
			return -1;
		colon = hostend + 1;
	} else {
		colon = NULL;
		for (i = 0; i < len; i++)
			if (p[i] == ':')
				colon = p + i;	/* the last one */
		hostend = colon;
	}
	if (colon == NULL || hostend == host ||
	    (size_t)(hostend - host) >= sizeof(hp->host))
		return -1;
	for (i = 0; host + i < hostend; i++) {
		char c = host[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' ||
		    c == '_' || (c == ':' && host != p)))
			return -1;
	}
	memcpy(hp->host, host, (size_t)(hostend - host));
	hp->host[hostend - host] = '\0';
	return kv_parse_int(colon + 1, (size_t)(end - colon - 1), 1, 65535,
	    &hp->port);
}

int
kv_sentinels_parse(const char *list, const char *master_name,
    struct kv_url *u, char *err, size_t errlen)
{
	const char *seg, *end;
	size_t i, len;

	u->nsentinels = 0;
	if (list == NULL || list[0] == '\0')
		return 0;
	for (seg = list; ; seg = end + 1) {
		end = strchr(seg, ',');
		len = end != NULL ? (size_t)(end - seg) : strlen(seg);
		if (u->nsentinels == KV_SENTINELS_MAX) {
			snprintf(err, errlen, "REDIS_SENTINELS: more than %d "
			    "sentinels", KV_SENTINELS_MAX);
			return -1;
		}
		if (parse_hostport(seg, len, &u->sentinels[u->nsentinels]) ==
		    -1) {
			snprintf(err, errlen, "REDIS_SENTINELS must be "
			    "host:port[,host:port...] (an IPv6 address in "
			    "brackets), not \"%.*s\" at item %d",
			    (int)(len > 64 ? 64 : len), seg, u->nsentinels + 1);
			/* the item is the operator's own text: printable
			   or cut, and never a password */
			for (i = 0; err[i] != '\0'; i++)
				if (err[i] < ' ' || err[i] > '~')
					err[i] = '?';
			return -1;
		}
		u->nsentinels++;
		if (end == NULL)
			break;
	}
	len = master_name != NULL ? strlen(master_name) : 0;
	if (len == 0 || len >= sizeof(u->master_name)) {
		snprintf(err, errlen, "REDIS_MASTER_NAME must be 1 to %d "
		    "characters with REDIS_SENTINELS", (int)sizeof(
		    u->master_name) - 1);
		return -1;
	}
	for (i = 0; i < len; i++)
		if (master_name[i] <= ' ' || master_name[i] > '~') {
			snprintf(err, errlen, "REDIS_MASTER_NAME must be "
			    "printable ASCII without spaces");
			return -1;
		}
	memcpy(u->master_name, master_name, len + 1);
	return 0;
}
