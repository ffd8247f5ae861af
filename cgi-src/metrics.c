/*
 * The shared metrics file. Its layout (struct shm) is fixed at build time
 * and stamped with MAGIC: a worker of another layout (a restart onto a
 * build whose layout changed) finds another stamp and keeps private
 * figures rather than add into fields it would misread.
 *
 * Slots. A worker claims the first free slot (pid 0) with a compare-and-
 * swap of its pid, else the slot of a dead worker (kill(pid, 0) says
 * ESRCH), keeping that slot's counters and adding to them: the sums over
 * the pool never go down when multiwatch replaces a worker. Gauges (the
 * breaker's state) are the living workers' only. Every count is a relaxed
 * atomic add to the worker's own slot: another worker reading it
 * meanwhile sees each field either before or after, which is all a scrape
 * needs.
 */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define MAGIC	0x6f72646572733035ULL	/* "orders05": the layout below */

static const int statuses[] = {
	200, 201, 204, 304, 400, 404, 405, 411, 413, 414, 415, 422, 429, 500,
	503
};
#define NSTATUS	(sizeof(statuses) / sizeof(statuses[0]) + 1)	/* + other */

/* Upper bounds of the latency buckets, in ms; then +Inf. */
static const double bounds_ms[] = {
	0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000
};
#define NBOUNDS	(sizeof(bounds_ms) / sizeof(bounds_ms[0]))

static const char *const route_names[MR_NROUTES] = {
	"count", "order_get", "order_create", "order_delete", "healthz",
	"metrics", "other"
};

static const struct {
	const char	*name;
	const char	*help;
} counters[MC_NCOUNTERS] = {
	[MC_CACHE_HIT] = { "orders_cache_hits_total",
	    "Cached reads answered from Redis (X-Cache: HIT)." },
	[MC_CACHE_MISS] = { "orders_cache_misses_total",
	    "Cached reads loaded from Postgres (X-Cache: MISS)." },
	[MC_CACHE_BYPASS] = { "orders_cache_bypasses_total",
	    "Cached reads answered without Redis (X-Cache: BYPASS)." },
	[MC_CACHE_FILL] = { "orders_cache_fills_total",
	    "Entries a read stored in Redis." },
	[MC_CACHE_FILL_WAIT] = { "orders_cache_fill_waits_total",
	    "Reads that waited for another reader's fill (single flight)." },
	[MC_INVALIDATION] = { "orders_cache_invalidations_total",
	    "Invalidations after a committed write." },
	[MC_INVALIDATION_FAILED] = { "orders_cache_invalidation_failures_total",
	    "Invalidations Redis could not be told of." },
	[MC_REDIS_ERROR] = { "orders_redis_errors_total",
	    "Redis operations that failed (timeout, I/O, connect)." },
	[MC_PG_ERROR] = { "orders_postgres_errors_total",
	    "Postgres statements that failed (unavailable or error)." },
	[MC_REPLICA_READ] = { "orders_postgres_replica_reads_total",
	    "Misses read from the replica (DATABASE_REPLICA_URL)." },
	[MC_REPLICA_BEHIND] = { "orders_postgres_replica_behind_total",
	    "Misses read from the primary: the replica had not replayed "
	    "the writes they must reflect." },
};

struct hist {
	uint64_t	bucket[NBOUNDS + 1];	/* not cumulative; last: +Inf */
	uint64_t	sum_us;
	uint64_t	count;
};

struct slot {
	int32_t		pid;		/* 0: free */
	int32_t		breaker;	/* a gauge: the worker's own */
	int32_t		inflight;	/* a write not yet invalidated:
					   INFLIGHT_NONE, or inflight_begin's */
	int32_t		unused;
	uint64_t	requests[MR_NROUTES][NSTATUS];
	uint64_t	counters[MC_NCOUNTERS];
	struct hist	request;
	struct hist	pg;
};

struct shm {
	uint64_t	magic;
	uint64_t	size;
	int32_t		owed;		/* inflight_owe's, or INFLIGHT_NONE */
	int32_t		unused;
	/* group.c's, which the file lends it: the host's inserts */
	uint64_t	group[METRICS_GROUP_SIZE / sizeof(uint64_t)];
	struct slot	slot[METRICS_SLOTS];
};

static struct shm	*shm;	/* the file, or NULL (private slot) */
static struct slot	*me;	/* NULL: nothing is counted */
static struct slot	 private_slot;
static int32_t		 private_owed;

static void
add(uint64_t *p, uint64_t n)
{
	__atomic_fetch_add(p, n, __ATOMIC_RELAXED);
}

static uint64_t
get(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static int
alive(int32_t pid)
{
	return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

/*
 * Takes the write a dead worker left in sl, if any, into orphans (at most
 * max, counted in *n). The exchange makes it ours alone, however many
 * workers start at once.
 */
static void
adopt(struct slot *sl, int32_t *orphans, int max, int *n)
{
	int32_t w;

	if (*n >= max || __atomic_load_n(&sl->inflight, __ATOMIC_ACQUIRE) ==
	    INFLIGHT_NONE)
		return;
	w = __atomic_exchange_n(&sl->inflight, INFLIGHT_NONE, __ATOMIC_ACQ_REL);
	if (w != INFLIGHT_NONE)
		orphans[(*n)++] = w;
}

/*
 * A free slot, else a dead worker's, for pid; NULL when all 256 live.
 * On the way, the writes dead workers left in flight are adopted: those
 * of every dead slot before the claim, and the claimed slot's after it (a
 * worker may have died between the two).
 */
static struct slot *
claim(struct shm *m, int32_t pid, int32_t *orphans, int max, int *n)
{
	int32_t old;
	int i, pass;

	for (i = 0; i < METRICS_SLOTS; i++) {
		old = __atomic_load_n(&m->slot[i].pid, __ATOMIC_ACQUIRE);
		if (old != 0 && old != pid && !alive(old))
			adopt(&m->slot[i], orphans, max, n);
	}

	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < METRICS_SLOTS; i++) {
			old = __atomic_load_n(&m->slot[i].pid,
			    __ATOMIC_ACQUIRE);
			if (pass == 0 ? old != 0 :
			    old == 0 || (old != pid && alive(old)))
				continue;
			if (__atomic_compare_exchange_n(&m->slot[i].pid, &old,
			    pid, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
				adopt(&m->slot[i], orphans, max, n);
				return &m->slot[i];
			}
		}
	return NULL;
}

static struct shm *
map_file(const char *path)
{
	struct shm *m;
	struct stat st;
	uint64_t zero = 0;
	int fd;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
		log_error("metrics: cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || ((size_t)st.st_size < sizeof(*m) &&
	    ftruncate(fd, (off_t)sizeof(*m)) == -1)) {
		log_error("metrics: cannot size %s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		log_error("metrics: cannot map %s: %s", path, strerror(errno));
		return NULL;
	}
	if (!__atomic_compare_exchange_n(&m->magic, &zero, MAGIC, 0,
	    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) && zero != MAGIC) {
		log_error("metrics: %s has another layout (an older build?): "
		    "this worker's figures are its own", path);
		munmap(m, sizeof(*m));
		return NULL;
	}
	m->size = sizeof(*m);
	return m;
}

int
metrics_init(const char *path, int32_t *orphans, int max, int *norphans)
{
	*norphans = 0;
	if (path != NULL && path[0] != '\0' && (shm = map_file(path)) != NULL) {
		if ((me = claim(shm, (int32_t)getpid(), orphans, max,
		    norphans)) != NULL) {
			__atomic_store_n(&me->breaker, 0, __ATOMIC_RELAXED);
			return 0;
		}
		log_error("metrics: all %d slots of %s are taken",
		    METRICS_SLOTS, path);
		munmap(shm, sizeof(*shm));
		shm = NULL;
	}
	me = &private_slot;
	return path == NULL || path[0] == '\0' ? 0 : -1;
}

void *
metrics_group_area(void)
{
	return shm != NULL ? shm->group : NULL;
}

void
inflight_begin(int32_t write)
{
	__atomic_store_n(&me->inflight, write, __ATOMIC_RELEASE);
}

void
inflight_end(void)
{
	__atomic_store_n(&me->inflight, INFLIGHT_NONE, __ATOMIC_RELEASE);
}

const char *
metrics_layout(void)
{
	static char name[9];
	int i;

	for (i = 0; i < 8; i++)
		name[i] = (char)(MAGIC >> (56 - 8 * i));
	return name;
}

static int32_t *
owed_word(void)
{
	return shm != NULL ? &shm->owed : &private_owed;
}

void
inflight_owe(int32_t write)
{
	int32_t *p = owed_word();
	int32_t old = __atomic_load_n(p, __ATOMIC_ACQUIRE), want;

	do
		want = old == INFLIGHT_NONE || old == write ? write :
		    INFLIGHT_INSERT;
	while (!__atomic_compare_exchange_n(p, &old, want, 0,
	    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
}

int32_t
inflight_owed(void)
{
	return __atomic_load_n(owed_word(), __ATOMIC_ACQUIRE);
}

void
inflight_paid(int32_t write)
{
	int32_t old = write;

	(void)__atomic_compare_exchange_n(owed_word(), &old, INFLIGHT_NONE, 0,
	    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

static size_t
status_index(int status)
{
	size_t i;

	for (i = 0; i < NSTATUS - 1; i++)
		if (statuses[i] == status)
			return i;
	return NSTATUS - 1;
}

static void
observe(struct hist *h, double ms)
{
	size_t i;

	for (i = 0; i < NBOUNDS && ms > bounds_ms[i]; i++)
		;
	add(&h->bucket[i], 1);
	add(&h->sum_us, ms > 0 ? (uint64_t)(ms * 1000) : 0);
	add(&h->count, 1);
}

void
metrics_request(enum metrics_route route, int status, double ms)
{
	if (me == NULL)
		return;
	add(&me->requests[route][status_index(status)], 1);
	observe(&me->request, ms);
}

void
metrics_count(enum metrics_counter c, unsigned long n)
{
	if (me != NULL && n > 0)
		add(&me->counters[c], n);
}

void
metrics_pg(double ms)
{
	if (me != NULL)
		observe(&me->pg, ms);
}

void
metrics_breaker(int state)
{
	if (me != NULL)
		__atomic_store_n(&me->breaker, state, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------ rendering */

struct sums {
	uint64_t	requests[MR_NROUTES][NSTATUS];
	uint64_t	counters[MC_NCOUNTERS];
	struct hist	request, pg;
	uint64_t	workers;
	uint64_t	breaker[3];
};

static void
sum_hist(struct hist *to, const struct hist *from)
{
	size_t i;

	for (i = 0; i <= NBOUNDS; i++)
		to->bucket[i] += get(&from->bucket[i]);
	to->sum_us += get(&from->sum_us);
	to->count += get(&from->count);
}

static void
sum_slot(struct sums *s, const struct slot *sl, int live)
{
	size_t r, i;
	int32_t b;

	for (r = 0; r < MR_NROUTES; r++)
		for (i = 0; i < NSTATUS; i++)
			s->requests[r][i] += get(&sl->requests[r][i]);
	for (i = 0; i < MC_NCOUNTERS; i++)
		s->counters[i] += get(&sl->counters[i]);
	sum_hist(&s->request, &sl->request);
	sum_hist(&s->pg, &sl->pg);
	if (live) {
		s->workers++;
		b = __atomic_load_n(&sl->breaker, __ATOMIC_RELAXED);
		s->breaker[b >= 0 && b <= 2 ? b : 0]++;
	}
}

static void
render_hist(struct buf *out, const char *name, const char *help,
    const struct hist *h)
{
	uint64_t cum = 0;
	size_t i;

	buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help,
	    name);
	for (i = 0; i < NBOUNDS; i++) {
		cum += h->bucket[i];
		buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name,
		    bounds_ms[i] / 1000, (unsigned long long)cum);
	}
	cum += h->bucket[NBOUNDS];
	buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name,
	    (unsigned long long)cum);
	buf_printf(out, "%s_sum %.6f\n%s_count %llu\n", name,
	    (double)h->sum_us / 1e6, name, (unsigned long long)h->count);
}

int
metrics_render(struct buf *out)
{
	static const char *const states[3] = { "closed", "open", "half_open" };
	struct sums *s;
	char code[8];
	int32_t pid;
	size_t r, i;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -1;
	if (shm != NULL) {
		for (i = 0; i < METRICS_SLOTS; i++) {
			pid = __atomic_load_n(&shm->slot[i].pid,
			    __ATOMIC_ACQUIRE);
			if (pid != 0)
				sum_slot(s, &shm->slot[i], alive(pid));
		}
	} else if (me != NULL)
		sum_slot(s, me, 1);
	buf_printf(out, "# HELP orders_http_requests_total Requests answered, "
	    "by route and status.\n# TYPE orders_http_requests_total counter\n");
	for (r = 0; r < MR_NROUTES; r++)
		for (i = 0; i < NSTATUS; i++) {
			if (s->requests[r][i] == 0)
				continue;
			if (i < NSTATUS - 1)
				snprintf(code, sizeof(code), "%d", statuses[i]);
			else
				snprintf(code, sizeof(code), "other");
			buf_printf(out, "orders_http_requests_total{route="
			    "\"%s\",status=\"%s\"} %llu\n", route_names[r],
			    code, (unsigned long long)s->requests[r][i]);
		}
	for (i = 0; i < MC_NCOUNTERS; i++)
		buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n",
		    counters[i].name, counters[i].help, counters[i].name,
		    counters[i].name, (unsigned long long)s->counters[i]);
	render_hist(out, "orders_http_request_duration_seconds",
	    "Time from a request's arrival to its answer.", &s->request);
	render_hist(out, "orders_postgres_query_duration_seconds",
	    "Time a request spent in Postgres.", &s->pg);
	buf_printf(out, "# HELP orders_workers Workers counting into this "
	    "file now.\n# TYPE orders_workers gauge\norders_workers %llu\n",
	    (unsigned long long)s->workers);
	buf_printf(out, "# HELP orders_redis_breaker Workers whose Redis "
	    "circuit breaker is in this state.\n"
	    "# TYPE orders_redis_breaker gauge\n");
	for (i = 0; i < 3; i++)
		buf_printf(out, "orders_redis_breaker{state=\"%s\"} %llu\n",
		    states[i], (unsigned long long)s->breaker[i]);
	free(s);
	return 0;
}
