/*
 * bench/rss-libpq.c: the memory floor of any process that speaks to
 * Postgres through libpq: link libpq, connect to argv[1] (the service's
 * DATABASE_URL), run one statement, and print this process's VmRSS and
 * Pss in kB ("rss KB pss KB"). make bench prints it beside the workers'
 * RSS: most of a worker's is libpq's shared libraries (libcrypto for
 * SCRAM, GnuTLS and Kerberos through LDAP), mapped and touched as here.
 */
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

/* The value in kB of the line starting with key in file, or -1. */
static long
kb(const char *file, const char *key)
{
	char line[256];
	long v = -1;
	FILE *f = fopen(file, "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, strlen(key)) == 0) {
			sscanf(line + strlen(key), "%ld", &v);
			break;
		}
	fclose(f);
	return v;
}

int
main(int argc, char **argv)
{
	PGconn *c;
	PGresult *r;
	int ok;

	if (argc != 2) {
		fprintf(stderr, "usage: rss-libpq DATABASE_URL\n");
		return 2;
	}
	c = PQconnectdb(argv[1]);
	r = PQexec(c, "SELECT 1");
	ok = PQresultStatus(r) == PGRES_TUPLES_OK;
	PQclear(r);
	if (ok)
		printf("rss %ld pss %ld\n", kb("/proc/self/status", "VmRSS:"),
		    kb("/proc/self/smaps_rollup", "Pss:"));
	else
		fprintf(stderr, "rss-libpq: %s", PQerrorMessage(c));
	PQfinish(c);
	return ok ? 0 : 1;
}
