#include "etag.h"

#include <stdint.h>
#include <string.h>

#define FNV64_OFFSET	0xcbf29ce484222325ULL
#define FNV64_PRIME	0x100000001b3ULL

uint64_t
etag_hash(const char *p, size_t len)
{
	uint64_t h = FNV64_OFFSET;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= FNV64_PRIME;
	}
	return h;
}

void
etag_of(const char *body, size_t len, char out[ETAG_MAX])
{
	etag_format(etag_hash(body, len), out);
}

void
etag_format(uint64_t h, char out[ETAG_MAX])
{
	static const char hex[] = "0123456789abcdef";
	int j;

	out[0] = '"';
	for (j = 16; j >= 1; j--, h >>= 4)
		out[j] = hex[h & 0xf];
	out[17] = '"';
	out[18] = '\0';
}

static const char *
skip_ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* etagc: %x21 / %x23-7E / obs-text */
static int
etagc(unsigned char c)
{
	return c == 0x21 || (c >= 0x23 && c != 0x7f);
}

int
etag_none_match(const char *inm, const char *etag)
{
	const char *p, *open, *close;
	size_t tlen;
	int found = 0;

	if (inm == NULL || etag == NULL || etag[0] != '"')
		return 0;
	p = skip_ows(inm);
	if (*p == '*')
		return *skip_ows(p + 1) == '\0';
	tlen = strlen(etag);
	/* #entity-tag: empty elements (", ,") are allowed and skipped */
	for (;;) {
		p = skip_ows(p);
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == '\0')
			return found;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		if (*p != '"')
			return 0;
		open = p;
		for (close = open + 1; *close != '"'; close++)
			if (*close == '\0' || !etagc((unsigned char)*close))
				return 0;
		if ((size_t)(close - open + 1) == tlen &&
		    memcmp(open, etag, tlen) == 0)
			found = 1;
		p = skip_ows(close + 1);
		if (*p != ',' && *p != '\0')
			return 0;
	}
}
