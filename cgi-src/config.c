#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_DATABASE_URL	"postgresql:///orders"
#define DEFAULT_REDIS_URL	"redis://127.0.0.1:6379/0"
#define DEFAULT_MASTER_NAME	"orders"

static const char *
env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : fallback;
}

/* An integer setting in [lo, hi]; 0, or -1 with a message. */
static int
env_int(const char *name, int fallback, int lo, int hi, int *out, char *err,
    size_t errlen)
{
	const char *v = getenv(name);
	char *end;
	long n;

	*out = fallback;
	if (v == NULL || v[0] == '\0')
		return 0;
	n = strtol(v, &end, 10);
	if (*end != '\0' || n < lo || n > hi) {
		snprintf(err, errlen, "%s must be an integer from %d to %d",
		    name, lo, hi);
		return -1;
	}
	*out = (int)n;
	return 0;
}

int
config_load(struct config *cfg, char *err, size_t errlen)
{
	const char *level, *sentinel_password, *pool_mode;
	size_t i;

	memset(cfg, 0, sizeof(*cfg));
	cfg->database_url = env_or("DATABASE_URL", DEFAULT_DATABASE_URL);
	cfg->database_replica_url = getenv("DATABASE_REPLICA_URL");
	if (cfg->database_replica_url != NULL &&
	    cfg->database_replica_url[0] == '\0')
		cfg->database_replica_url = NULL;
	pool_mode = env_or("DATABASE_POOL_MODE", "session");
	if (strcmp(pool_mode, "transaction") == 0)
		cfg->database_pooled = 1;
	else if (strcmp(pool_mode, "session") != 0) {
		snprintf(err, errlen, "DATABASE_POOL_MODE must be session or "
		    "transaction");
		return -1;
	}
	if (kv_url_parse(env_or("REDIS_URL", DEFAULT_REDIS_URL), &cfg->redis,
	    err, errlen) == -1 ||
	    kv_sentinels_parse(getenv("REDIS_SENTINELS"),
	    env_or("REDIS_MASTER_NAME", DEFAULT_MASTER_NAME), &cfg->redis, err,
	    errlen) == -1)
		return -1;
	/* Sentinels without a password unless this gives one (kv.c). */
	sentinel_password = env_or("REDIS_SENTINEL_PASSWORD", "");
	if (strlen(sentinel_password) >= sizeof(cfg->redis.sentinel_password)) {
		snprintf(err, errlen, "REDIS_SENTINEL_PASSWORD is longer than "
		    "%d", (int)sizeof(cfg->redis.sentinel_password) - 1);
		return -1;
	}
	strcpy(cfg->redis.sentinel_password, sentinel_password);
	if (env_int("CACHE_TTL", 60, 1, 86400 * 30, &cfg->cache_ttl, err,
	    errlen) == -1 ||
	    env_int("REDIS_TIMEOUT_MS", 100, 1, 10000, &cfg->redis_timeout_ms,
	    err, errlen) == -1 ||
	    env_int("STATEMENT_TIMEOUT_MS", 5000, 100, 600000,
	    &cfg->statement_timeout_ms, err, errlen) == -1 ||
	    env_int("CACHE_WAIT_MS", 500, 0, 60000, &cfg->cache_wait_ms, err,
	    errlen) == -1 ||
	    env_int("ORDERS_TEST_HOOKS", 0, 0, 1, &cfg->test_hooks, err,
	    errlen) == -1)
		return -1;
	cfg->metrics_file = getenv("METRICS_FILE");
	cfg->cache_prefix = env_or("CACHE_PREFIX", "orders:");
	if (strlen(cfg->cache_prefix) > CACHE_PREFIX_MAX) {
		snprintf(err, errlen, "CACHE_PREFIX is longer than %d",
		    CACHE_PREFIX_MAX);
		return -1;
	}
	/* Keys are documented as readable: keep the prefix printable. */
	for (i = 0; cfg->cache_prefix[i] != '\0'; i++)
		if (cfg->cache_prefix[i] <= ' ' || cfg->cache_prefix[i] > '~') {
			snprintf(err, errlen, "CACHE_PREFIX must be printable "
			    "ASCII without spaces");
			return -1;
		}
	level = env_or("LOG_LEVEL", "info");
	if (log_level_parse(level, &cfg->log_level) == -1) {
		snprintf(err, errlen, "LOG_LEVEL must be debug, info, warn or "
		    "error");
		return -1;
	}
	return 0;
}
