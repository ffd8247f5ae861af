/*
 * Group commit among the worker processes of a host, in the area the
 * shared metrics file lends (metrics_group_area): GROUP_PLACES places,
 * each holding one order on its way in, and the leader word.
 *
 * A worker with an order puts it in a free place (queued), then becomes
 * the leader if there is none (a compare-and-swap of its pid into the
 * leader word), or else waits (a futex, the count of turns) until the
 * leader lets go of it. A leader takes every queued place, inserts those
 * orders in one statement on its own connection (one transaction, one WAL
 * flush), writes each place's answer, and lets go, waking the waiters. Those whose place
 * is done take their answer and invalidate what their order made stale,
 * as after an insert of their own; those that queued meanwhile elect the
 * next leader among them. So a batch is what queued while the last one
 * committed: a lone POST leads a batch of one at once, and batches grow
 * with the number of workers inserting at the same time.
 *
 * A place's state, owner and taker are one 64-bit word, changed only by
 * compare-and-swap: a place is never both reclaimed (its owner died) and
 * answered by a leader. Who dies where:
 *  - an owner, waiting: the leader that inserted its order invalidates
 *    for it (settle_orphans); the place is reclaimed by a later claim;
 *  - an owner, after its answer: its write is in flight in its metrics
 *    slot, and the next worker to start adopts it (metrics_init);
 *  - a leader: its waiters find it dead at their next look (every
 *    WAIT_SLICE_MS), free the word, and answer 503 for what it took, as
 *    for any write that may have committed (the caller invalidates every
 *    count); the leader's own write is adopted as above;
 *  - an order no batch took within statement_timeout is given up (503,
 *    not written); one taken is answered within statement_timeout of its
 *    queueing (a batch gets what its oldest order has left), else given
 *    up GRACE_MS later (503, may have been written), and a late answer is
 *    not written into it;
 *  - a leader word that has named a process for longer than a turn may
 *    take (a dead leader's pid taken by another process) is cleared by
 *    the next waiter to look, as for a dead leader; then its places count
 *    as a dead leader's.
 */
#include "group.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"

#define GROUP_PLACES	DB_BATCH_MAX
#define WAIT_SLICE_MS	50	/* a waiter looks whether its leader lives */
#ifndef BETWEEN_LOADS		/* tests: where a process may be preempted */
#define BETWEEN_LOADS()
#endif
#define LEAD_MAX_MS	1000	/* beyond statement_timeout: a leader's
				   turn (its connection's own limit) */
#define BUDGET_SLACK_MS	50	/* what a batch may cost an order beyond
				   statement_timeout, before it is cut */
#define GRACE_MS	2000	/* beyond statement_timeout: the leader's
				   answer (its connection's own limit is
				   statement_timeout and 1 s) */

enum { ST_FREE, ST_FILLING, ST_QUEUED, ST_TAKEN, ST_DONE };

/*
 * The leader word: the leader's pid, and when it began to lead (clock_ms,
 * truncated: durations of up to 24 days compare right). One word, so that
 * nobody ever sees a leader with another's start.
 */
#define LW(pid, since)	((uint64_t)(uint32_t)(pid) | (uint64_t)(since) << 32)
#define LW_PID(lw)	((uint32_t)(lw))
#define LW_SINCE(lw)	((uint32_t)((lw) >> 32))

/* The word: state in bits 0-3, owner in 4-33, taker in 34-63 (pids). */
#define W(state, owner, taker) ((uint64_t)(state) | \
	(uint64_t)(uint32_t)(owner) << 4 | (uint64_t)(uint32_t)(taker) << 34)
#define W_STATE(w)	((int)((w) & 0xf))
#define W_OWNER(w)	((int32_t)(((w) >> 4) & 0x3fffffff))
#define W_TAKER(w)	((int32_t)((w) >> 34))

struct place {
	uint64_t		word;
	int32_t			status;		/* enum db_status, once done */
	int32_t			unknown;
	double			queued_at;	/* clock_ms(), once queued */
	struct new_order	order;		/* the owner's, once queued */
	struct order_row	row;		/* the leader's, once done */
};

/*
 * Part of the metrics file's layout: a change here is a change of its
 * stamp (MAGIC in metrics.c), or workers of two builds would misread each
 * other's places.
 */
struct area {
	uint64_t		leader;		/* LW(pid, since), or 0 */
	uint32_t		turns;		/* a futex: one more at each
						   leader's end */
	uint32_t		unused;
	struct place		place[GROUP_PLACES];
};

_Static_assert(sizeof(struct area) <= METRICS_GROUP_SIZE,
    "group.c's area must fit in the metrics file's");

static struct area	*test_area;
static int32_t		 my_pid;

void
group_use_area(void *p)
{
	test_area = p;
}

static int
alive(int32_t pid)
{
	return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH);
}

static int
cas(uint64_t *p, uint64_t old, uint64_t new)
{
	return __atomic_compare_exchange_n(p, &old, new, 0, __ATOMIC_ACQ_REL,
	    __ATOMIC_ACQUIRE);
}

static void
futex_wait(uint32_t *word, uint32_t seen, int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	(void)syscall(SYS_futex, word, FUTEX_WAIT, seen, &ts, NULL, 0);
}

static void
futex_wake_all(uint32_t *word)
{
	(void)syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/*
 * A free place, else one whose owner died (unless a living leader holds
 * it): ours, filling. NULL when every place is busy.
 */
static struct place *
claim(struct area *a)
{
	uint64_t w;
	int i, pass;

	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < GROUP_PLACES; i++) {
			w = __atomic_load_n(&a->place[i].word,
			    __ATOMIC_ACQUIRE);
			if (pass == 0 ? w != 0 : w == 0 ||
			    alive(W_OWNER(w)) || (W_STATE(w) == ST_TAKEN &&
			    alive(W_TAKER(w))))
				continue;
			if (cas(&a->place[i].word, w, W(ST_FILLING, my_pid, 0)))
				return &a->place[i];
		}
	return NULL;
}

/* What a leader took, and how it went. */
struct batch {
	int			n;
	int			idx[GROUP_PLACES];	/* places */
	struct new_order	order[GROUP_PLACES];
	struct order_row	row[GROUP_PLACES];
	enum db_status		st[GROUP_PLACES];
	int			unknown[GROUP_PLACES];
	uint64_t		done[GROUP_PLACES];	/* the word it left */
};

/*
 * The leader's turn: every queued order, in one statement, then the
 * answers. A statement Postgres refuses (one bad order) is tried again
 * one order at a time, so that the others still go in.
 */
static void
lead(struct area *a, const struct group_ctx *g, struct batch *b)
{
	double now, oldest = DBL_MAX;
	uint64_t w;
	int i, budget;

	b->n = 0;
	if (g->lead_delay_ms > 0)
		usleep((useconds_t)g->lead_delay_ms * 1000);
	now = clock_ms();
	for (i = 0; i < GROUP_PLACES; i++) {
		w = __atomic_load_n(&a->place[i].word, __ATOMIC_ACQUIRE);
		/* (one that waited its whole statement_timeout gives up) */
		if (W_STATE(w) != ST_QUEUED ||
		    now - a->place[i].queued_at >= g->timeout_ms ||
		    !cas(&a->place[i].word, w,
		    W(ST_TAKEN, W_OWNER(w), my_pid)))
			continue;
		b->order[b->n] = a->place[i].order;
		if (a->place[i].queued_at < oldest)
			oldest = a->place[i].queued_at;
		b->idx[b->n++] = i;
	}
	if (b->n == 0)
		return;
	/*
	 * Each order's client is answered within statement_timeout of its
	 * queueing, as one inserted alone would be: an order that waited
	 * for a slow batch gives this one what it has left.
	 */
	budget = (int)(g->timeout_ms - (now - oldest));
	if (g->timeout_ms - budget > BUDGET_SLACK_MS)
		(void)db_statement_timeout(g->db, budget);
	b->st[0] = db_insert_orders(g->db, b->order, b->n, b->row);
	b->unknown[0] = b->st[0] == DB_UNAVAILABLE && db_write_unknown(g->db);
	for (i = 1; i < b->n; i++) {
		b->st[i] = b->st[0];
		b->unknown[i] = b->unknown[0];
	}
	if (g->timeout_ms - budget > BUDGET_SLACK_MS)
		(void)db_statement_timeout(g->db, g->timeout_ms);
	if (g->die_leading)
		raise(SIGKILL);
	if (b->st[0] == DB_ERROR && b->n > 1) {
		log_warn("postgres: a batch of %d orders was refused; "
		    "inserting them one at a time", b->n);
		for (i = 0; i < b->n; i++) {
			b->st[i] = db_insert_order(g->db, &b->order[i],
			    &b->row[i]);
			b->unknown[i] = b->st[i] == DB_UNAVAILABLE &&
			    db_write_unknown(g->db);
		}
	}
	for (i = 0; i < b->n; i++) {
		struct place *p = &a->place[b->idx[i]];

		b->done[i] = 0;
		w = __atomic_load_n(&p->word, __ATOMIC_ACQUIRE);
		if (W_STATE(w) != ST_TAKEN || W_TAKER(w) != my_pid)
			continue;	/* given up by its owner */
		p->status = (int32_t)b->st[i];
		p->unknown = b->unknown[i];
		if (b->st[i] == DB_OK)
			p->row = b->row[i];
		if (cas(&p->word, w, W(ST_DONE, W_OWNER(w), 0)))
			b->done[i] = W(ST_DONE, W_OWNER(w), 0);
	}
}

/*
 * After the leader let go: an order whose owner died before reading its
 * answer gets the invalidation the owner would have made. (One that dies
 * after reading it left its write in flight in its metrics slot, which
 * the next worker to start adopts.) Settling twice costs an invalidation.
 */
static void
settle_orphans(struct area *a, const struct group_ctx *g,
    const struct batch *b)
{
	int i;

	for (i = 0; i < b->n; i++) {
		if (b->done[i] == 0 || W_OWNER(b->done[i]) == my_pid ||
		    __atomic_load_n(&a->place[b->idx[i]].word,
		    __ATOMIC_ACQUIRE) != b->done[i] ||
		    alive(W_OWNER(b->done[i])))
			continue;
		if (b->st[i] == DB_OK)
			g->settle(g->arg, b->row[i].orderid);
		else if (b->unknown[i])
			g->settle(g->arg, INFLIGHT_INSERT);
	}
}

/*
 * The leader word goes from who to nobody, if it still says who, and the
 * waiters look again. Who is this process at the end of its turn, or a
 * leader a waiter found dead, or leading for longer than any statement of
 * its may take: a process that got a dead leader's pid would otherwise
 * hold up every insert of the host.
 */
static void
let_go(struct area *a, uint64_t who)
{
	if (!cas(&a->leader, who, 0))
		return;
	__atomic_add_fetch(&a->turns, 1, __ATOMIC_ACQ_REL);
	futex_wake_all(&a->turns);
}

/* The place's answer into the caller's, and the place is free again. */
static int
answer(struct place *p, struct order_row *out, enum db_status *st,
    int *unknown)
{
	*st = (enum db_status)p->status;
	*unknown = p->unknown;
	if (*st == DB_OK)
		*out = p->row;
	__atomic_store_n(&p->word, 0, __ATOMIC_RELEASE);
	return 1;
}

/* Gives the place up: 1 if it was ours to give (*st and *unknown say). */
static int
give_up(struct place *p, uint64_t w, enum db_status *st, int *unknown)
{
	if (!cas(&p->word, w, 0))
		return 0;
	*st = DB_UNAVAILABLE;
	*unknown = W_STATE(w) == ST_TAKEN;
	return 1;
}

int
group_insert(const struct group_ctx *g, const struct new_order *o,
    struct order_row *out, enum db_status *st, int *unknown)
{
	struct area *a = test_area != NULL ? test_area : metrics_group_area();
	struct batch b;
	struct place *p;
	double queued_at, deadline, now;
	uint64_t w;
	uint64_t leader, mine;
	uint32_t turns;

	if (a == NULL)
		return 0;
	if (my_pid != (int32_t)getpid())
		my_pid = (int32_t)getpid();
	if ((p = claim(a)) == NULL)
		return 0;
	p->order = *o;
	p->queued_at = queued_at = clock_ms();
	__atomic_store_n(&p->word, W(ST_QUEUED, my_pid, 0), __ATOMIC_RELEASE);
	for (;;) {
		/* first: a turn that ends after this wakes the wait below */
		turns = __atomic_load_n(&a->turns, __ATOMIC_ACQUIRE);
		w = __atomic_load_n(&p->word, __ATOMIC_ACQUIRE);
		if (W_STATE(w) == ST_DONE)
			return answer(p, out, st, unknown);
		BETWEEN_LOADS();
		leader = __atomic_load_n(&a->leader, __ATOMIC_ACQUIRE);
		/*
		 * A leader is the leader from before it takes a place until
		 * after it has answered it. So a place taken by X before and
		 * after a moment when X was not the leader was taken by a
		 * leader that let go without answering: a dead one. (Read
		 * once, the place could be from before X answered it and the
		 * leader from after X let go, or from before X became the
		 * leader and the place from after.)
		 */
		if (W_STATE(w) == ST_TAKEN &&
		    (uint32_t)W_TAKER(w) != LW_PID(leader) &&
		    __atomic_load_n(&p->word, __ATOMIC_ACQUIRE) == w) {
			if (give_up(p, w, st, unknown)) {
				log_error("group commit: the worker that took "
				    "this order (pid %d) let go of it "
				    "unanswered (it died, or was cleared as "
				    "stuck)", (int)W_TAKER(w));
				return 1;
			}
			continue;
		}
		if (leader == 0) {
			mine = LW(my_pid, (uint32_t)clock_ms());
			if (W_STATE(w) == ST_QUEUED &&
			    cas(&a->leader, 0, mine)) {
				lead(a, g, &b);
				let_go(a, mine);
				settle_orphans(a, g, &b);
			}
			continue;
		}
		/* not taken within statement_timeout: nothing was sent; taken:
		   the leader's statement has that long, and GRACE_MS more */
		now = clock_ms();
		deadline = queued_at + g->timeout_ms +
		    (W_STATE(w) == ST_TAKEN ? GRACE_MS : 0);
		if (now >= deadline) {
			if (give_up(p, w, st, unknown)) {
				log_error("group commit: %s within %d ms",
				    *unknown ? "no answer" : "no batch took "
				    "this order", (int)(deadline - queued_at));
				return 1;
			}
			continue;
		}
		if (LW_PID(leader) == (uint32_t)my_pid) {
			/* not us: a dead leader whose pid we got */
			let_go(a, leader);
			continue;
		}
		futex_wait(&a->turns, turns, deadline - now < WAIT_SLICE_MS ?
		    (int)(deadline - now) + 1 : WAIT_SLICE_MS);
		if (__atomic_load_n(&a->leader, __ATOMIC_ACQUIRE) == leader &&
		    (!alive((int32_t)LW_PID(leader)) ||
		    (uint32_t)clock_ms() - LW_SINCE(leader) >
		    (uint32_t)(g->timeout_ms + LEAD_MAX_MS)))
			let_go(a, leader);
	}
}
