#include "route.h"

#include <string.h>

#include "http.h"
#include "valid.h"

static int
path_matches(const char *pattern, const char *path, int32_t *id)
{
	const char *hole = strstr(pattern, "{id}");
	size_t before, seglen;

	*id = 0;
	if (hole == NULL)
		return strcmp(pattern, path) == 0;
	before = (size_t)(hole - pattern);
	if (strncmp(pattern, path, before) != 0)
		return 0;
	path += before;
	seglen = strcspn(path, "/");
	if (valid_positive_int(path, seglen, id) == -1)
		return 0;
	return strcmp(hole + 4, path + seglen) == 0;
}

enum route_result
route_match(const struct route *table, size_t n, const char *path,
    unsigned method, const struct route **match, int32_t *id,
    unsigned *allowed)
{
	unsigned methods;
	size_t i;

	*match = NULL;
	*allowed = 0;
	for (i = 0; i < n; i++) {
		if (!path_matches(table[i].pattern, path, id))
			continue;
		methods = table[i].methods;
		if (methods & HTTP_GET)
			methods |= HTTP_HEAD;
		if (methods & method) {
			*match = &table[i];
			return ROUTE_OK;
		}
		*allowed |= methods;
	}
	return *allowed ? ROUTE_BAD_METHOD : ROUTE_NOT_FOUND;
}

char *
route_allow(unsigned methods, char *out, size_t outlen)
{
	static const struct {
		unsigned	 bit;
		const char	*name;
	} names[] = {
		{ HTTP_GET, "GET" }, { HTTP_HEAD, "HEAD" },
		{ HTTP_POST, "POST" }, { HTTP_DELETE, "DELETE" },
	};
	size_t i, len = 0, n;

	if (methods & HTTP_GET)
		methods |= HTTP_HEAD;
	if (outlen == 0)
		return out;
	out[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(methods & names[i].bit))
			continue;
		n = strlen(names[i].name) + (len ? 2 : 0);
		if (len + n + 1 > outlen)
			break;
		if (len)
			memcpy(out + len, ", ", 2), len += 2;
		memcpy(out + len, names[i].name, strlen(names[i].name));
		len += strlen(names[i].name);
		out[len] = '\0';
	}
	return out;
}
