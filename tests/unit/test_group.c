/*
 * group.c's protocol between processes, with Postgres replaced by a fake
 * that numbers the orders from a shared counter and takes a while, as a
 * commit does: the places, the leader word, the futex, the answers, and a
 * leader killed after its commit.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <sched.h>
#include <stdlib.h>

/* Preempted between the two loads of group_insert's loop, now and then. */
#define BETWEEN_LOADS()	((void)(rand() % 3 == 0 && sched_yield() == 0))
#include "../../cgi-src/group.c"

struct shared {
	int32_t	next_id;
	int32_t	batches;
	int32_t	orders;
	int32_t	max_batch;
	int	commit_us;
	int	timeouts[8];	/* db_statement_timeout's, in order */
	int	ntimeouts;
};

static struct shared *sh;

/* The fake Postgres: each order gets the next id, the batch waits. */
enum db_status
db_insert_orders(struct db *db, const struct new_order *o, int n,
    struct order_row *out)
{
	int32_t m;
	int i;

	(void)db;
	for (i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		out[i].orderid = __atomic_add_fetch(&sh->next_id, 1,
		    __ATOMIC_ACQ_REL);
		out[i].customerid = o[i].customerid;
		snprintf(out[i].netamount, sizeof(out[i].netamount), "%lld",
		    (long long)o[i].net_cents);
	}
	__atomic_add_fetch(&sh->batches, 1, __ATOMIC_ACQ_REL);
	__atomic_add_fetch(&sh->orders, n, __ATOMIC_ACQ_REL);
	m = __atomic_load_n(&sh->max_batch, __ATOMIC_ACQUIRE);
	while (n > m && !__atomic_compare_exchange_n(&sh->max_batch, &m, n,
	    0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
	usleep((useconds_t)sh->commit_us);
	return DB_OK;
}

enum db_status
db_insert_order(struct db *db, const struct new_order *o,
    struct order_row *out)
{
	return db_insert_orders(db, o, 1, out);
}

enum db_status
db_statement_timeout(struct db *db, int ms)
{
	int i = __atomic_fetch_add(&sh->ntimeouts, 1, __ATOMIC_ACQ_REL);

	(void)db;
	if (i < 8)
		sh->timeouts[i] = ms;
	return DB_OK;
}

int
db_write_unknown(const struct db *db)
{
	(void)db;
	return 0;
}

static void
no_settle(void *arg, int32_t write)
{
	(void)arg;
	(void)write;
}

static void *
shared_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

#define PROCS	12
#define EACH	1000

/* One worker: EACH orders of its own; the number of wrong answers. */
static int
worker(int k)
{
	const struct group_ctx g = { NULL, 1000, no_settle, NULL, 0, 0 };
	struct new_order o;
	struct order_row row;
	enum db_status st;
	int i, unknown, bad = 0;

	for (i = 0; i < EACH; i++) {
		memset(&o, 0, sizeof(o));
		o.customerid = k * 100000 + i;
		o.net_cents = i;
		if (group_insert(&g, &o, &row, &st, &unknown) != 1 ||
		    st != DB_OK || unknown || row.customerid != o.customerid ||
		    row.orderid <= 0) {
			fprintf(stderr, "worker %d, order %d: st %d unknown "
			    "%d customer %d\n", k, i, (int)st, unknown,
			    (int)row.customerid);
			bad++;
		}
	}
	return bad;
}

static void
test_many_workers_every_answer_its_own(void **state)
{
	pid_t kid[PROCS];
	int k, ws, bad = 0;

	(void)state;
	group_use_area(shared_map(METRICS_GROUP_SIZE));
	sh = shared_map(sizeof(*sh));
	sh->commit_us = 20;
	for (k = 0; k < PROCS; k++)
		if ((kid[k] = fork()) == 0) {
			srand((unsigned)getpid());
			_exit(worker(k) > 0);
		}
	for (k = 0; k < PROCS; k++) {
		assert_int_equal(waitpid(kid[k], &ws, 0), kid[k]);
		bad += !WIFEXITED(ws) || WEXITSTATUS(ws) != 0;
	}
	print_message("%d orders in %d batches, the largest %d\n",
	    (int)sh->orders, (int)sh->batches, (int)sh->max_batch);
	assert_int_equal(bad, 0);
	assert_int_equal(sh->orders, PROCS * EACH);
	assert_int_equal(sh->next_id, PROCS * EACH);	/* none twice */
	assert_true(sh->max_batch > 1);
	assert_true(sh->batches < PROCS * EACH);
}

/*
 * A leader that waits for a follower, commits, and is killed: the
 * follower answers "may have committed" as soon as it sees the leader
 * gone, not at its deadline.
 */
static void
test_leader_killed_after_commit(void **state)
{
	const struct group_ctx lg = { NULL, 1000, no_settle, NULL, 200, 1 };
	const struct group_ctx fg = { NULL, 1000, no_settle, NULL, 0, 0 };
	struct new_order o;
	struct order_row row;
	enum db_status st;
	pid_t leader;
	double t0;
	int ws, unknown;

	(void)state;
	group_use_area(shared_map(METRICS_GROUP_SIZE));
	sh = shared_map(sizeof(*sh));
	sh->commit_us = 1000;
	memset(&o, 0, sizeof(o));
	o.customerid = 1;
	if ((leader = fork()) == 0) {
		(void)group_insert(&lg, &o, &row, &st, &unknown);
		_exit(0);	/* not reached: SIGKILL */
	}
	usleep(50 * 1000);
	o.customerid = 2;
	t0 = clock_ms();
	if (fork() == 0) {
		/* the follower, timed; the test process reaps the leader */
		int r = group_insert(&fg, &o, &row, &st, &unknown);

		_exit(r == 1 && st == DB_UNAVAILABLE && unknown &&
		    clock_ms() - t0 < 1000 ? 0 : 1);
	}
	assert_int_equal(waitpid(leader, &ws, 0), leader);
	assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
	assert_int_equal(wait(&ws) > 0, 1);
	assert_true(WIFEXITED(ws));
	assert_int_equal(WEXITSTATUS(ws), 0);
	assert_int_equal(sh->orders, 2);	/* both were committed */
}

/*
 * The leader word names a living process that is not leading (a dead
 * leader's pid, taken since by another process), since longer than a turn
 * may take: the next insert clears it, leads, and gets its order in
 * within its statement_timeout. Named since just now, the insert waits:
 * a leader may be that slow.
 */
static void
test_leader_word_of_a_stranger(void **state)
{
	const struct group_ctx g = { NULL, 100, no_settle, NULL, 0, 0 };
	struct area *a = shared_map(METRICS_GROUP_SIZE);
	struct new_order o;
	struct order_row row;
	enum db_status st;
	double t0, ms;
	int unknown;

	(void)state;
	group_use_area(a);
	sh = shared_map(sizeof(*sh));
	memset(&o, 0, sizeof(o));
	o.customerid = 3;

	/* init: alive, and never a leader; since just now */
	a->leader = LW(1, (uint32_t)clock_ms());
	t0 = clock_ms();
	assert_int_equal(group_insert(&g, &o, &row, &st, &unknown), 1);
	ms = clock_ms() - t0;
	print_message("a fresh stranger: given up after %.0f ms\n", ms);
	assert_int_equal(st, DB_UNAVAILABLE);
	assert_int_equal(unknown, 0);	/* nothing was sent */
	assert_true(ms >= g.timeout_ms && ms < g.timeout_ms + WAIT_SLICE_MS * 2);

	/* since longer than a turn may take */
	a->leader = LW(1, (uint32_t)clock_ms() - (uint32_t)(g.timeout_ms +
	    LEAD_MAX_MS) - 1);
	t0 = clock_ms();
	assert_int_equal(group_insert(&g, &o, &row, &st, &unknown), 1);
	ms = clock_ms() - t0;
	print_message("a stale stranger: inserted after %.0f ms\n", ms);
	assert_int_equal(st, DB_OK);
	assert_int_equal(row.customerid, 3);
	assert_true(ms < g.timeout_ms);
	assert_int_equal(a->leader, 0);
}

/*
 * A batch that takes 400 ms: the order that queued behind it waited about
 * 350 ms, so its own batch runs with what it has left of its 1,000 ms
 * statement_timeout, and the session gets its 1,000 back after.
 */
static void
test_a_late_batch_gets_what_is_left(void **state)
{
	const struct group_ctx g = { NULL, 1000, no_settle, NULL, 0, 0 };
	struct new_order o;
	struct order_row row;
	enum db_status st;
	pid_t first;
	int ws, unknown;

	(void)state;
	group_use_area(shared_map(METRICS_GROUP_SIZE));
	sh = shared_map(sizeof(*sh));
	sh->commit_us = 400 * 1000;
	memset(&o, 0, sizeof(o));
	o.customerid = 1;
	if ((first = fork()) == 0)
		_exit(group_insert(&g, &o, &row, &st, &unknown) == 1 &&
		    st == DB_OK ? 0 : 1);
	usleep(50 * 1000);
	o.customerid = 2;
	assert_int_equal(group_insert(&g, &o, &row, &st, &unknown), 1);
	assert_int_equal(st, DB_OK);
	assert_int_equal(waitpid(first, &ws, 0), first);
	assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	print_message("statement_timeout set to %d, then %d\n",
	    sh->timeouts[0], sh->timeouts[1]);
	assert_int_equal(sh->ntimeouts, 2);
	assert_in_range(sh->timeouts[0], 500, 700);
	assert_int_equal(sh->timeouts[1], 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_workers_every_answer_its_own),
		cmocka_unit_test(test_leader_killed_after_commit),
		cmocka_unit_test(test_leader_word_of_a_stranger),
		cmocka_unit_test(test_a_late_batch_gets_what_is_left),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
