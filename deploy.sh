#!/usr/bin/env bash
#
# deploy.sh: run the orders service on this machine (API.md, "deploy.sh").
#
#   ./deploy.sh [up]                 install what is missing, build, start
#                                    Postgres (with the triggers of
#                                    sql/triggers.sql, applied every time),
#                                    Redis, the worker pool, the invalidator
#                                    and nginx; running it again only starts
#                                    what is not running
#   ./deploy.sh worker               a worker host of a several-machine
#                                    deployment: only the pool (listening on
#                                    WORKER_LISTEN, TCP) and the invalidator,
#                                    against the shared DATABASE_URL and
#                                    REDIS_URL (both required)
#   ./deploy.sh edge                 the edge: only nginx, on LISTEN_ADDR:PORT,
#                                    spreading requests over WORKER_HOSTS
#   ./deploy.sh stop                 stop what this script started
#   ./deploy.sh status               "NAME PID STATE" per component; exit 0
#                                    when everything expected is running
#   ./deploy.sh scale N              run N workers, dropping no request (the
#                                    invalidator is left as it is)
#   ./deploy.sh restart              rolling restart (after a rebuild, say):
#                                    a new pool, dropping no request, then the
#                                    invalidator
#   ./deploy.sh deps [--check] [--test] [--bench]
#                                    install (--check: only list) the Debian
#                                    packages; --test adds the test tools,
#                                    --bench what make bench runs besides
#                                    them (the tutorial's Python app)
#
# Configuration, from the environment (API.md):
#   DATABASE_URL  REDIS_URL   default: the local servers this script starts
#   CACHE_TTL (60)  CACHE_PREFIX (orders:)  WORKERS (6)  PORT (8080)
#   STATE_DIR (./var, relative to this script's directory)
#   ORDERS_ROWS (12000)   rows generated on first deploy
#   WORKER_BIN            the FastCGI program (default build/orders-worker)
#   INVALIDATOR_BIN       the invalidator (default build/orders-invalidator)
#   worker:  WORKER_LISTEN (127.0.0.1:9000)  the pool's TCP address:port
#            EDGE_ADDRS (127.0.0.1)  the edges' IPv4 addresses, comma-separated:
#                         the only peers the workers take a request from
#   edge:    WORKER_HOSTS  the worker hosts' address:port, space- or
#                         comma-separated (required)
#            LISTEN_ADDR (127.0.0.1)  nginx's address (PORT is its port)
#            UPSTREAM_MAX_FAILS (2) UPSTREAM_FAIL_TIMEOUT (5)  a worker host
#                         failing that often is left alone that many seconds
#   RATE_LIMIT_EXEMPT     addresses or CIDRs nginx does not rate-limit (a load
#                         balancer in front, which must limit clients itself)
#   REDIS_TLS_CA (the system's CAs)  for REDIS_URL=rediss://...: the CA file
#                         the Redis server's certificate must chain to
#   SCHED_BATCH (1)       what this run starts runs SCHED_BATCH (sched_batch,
#                         below); 0: SCHED_OTHER, the kernel's default
#   LOG_LEVEL REDIS_TIMEOUT_MS STATEMENT_TIMEOUT_MS CACHE_WAIT_MS TZ PG*
#   REDIS_SENTINELS REDIS_MASTER_NAME DATABASE_POOL_MODE DATABASE_REPLICA_URL: passed
#                         on to the workers when set (and ORDERS_TEST_HOOKS, tests
#                         only; ASAN_OPTIONS UBSAN_OPTIONS, for a sanitizer build)
# Each setting is taken from the environment, else from STATE_DIR/env (what
# the last run used), else the default.  So a rerun keeps ports, passwords
# and settings, and sourcing STATE_DIR/env before a rerun changes nothing.
# A DATABASE_URL / REDIS_URL other than the local one is an external service:
# no local server is started for it.  To go back to the local ones, remove
# STATE_DIR/env (the local credentials stay in STATE_DIR/deploy.state).
#
# What lives where:
#   STATE_DIR/env           export lines for the shell (0600)
#   STATE_DIR/deploy.state  local ports and passwords, local|external (0600)
#   STATE_DIR/workers       worker count; STATE_DIR/pool.gen the pool's generation
#   STATE_DIR/worker.env    LOG_LEVEL & co. the pool was started with (0600)
#   STATE_DIR/pg.path       where Postgres lives (STATE_DIR/pg, or a directory
#                           under /var/lib/postgresql when user postgres cannot
#                           enter STATE_DIR)
#   STATE_DIR/run.path      RUN_DIR: sockets, pid files, nginx's config and
#                           temp dirs (STATE_DIR/run, or /run/orders-ID when
#                           www-data cannot enter STATE_DIR)
#   STATE_DIR/log/          postgres.log redis.log nginx-error.log access.log
#                           workers.log invalidator.log
#
# As root, nothing runs as root but the nginx master: Postgres runs as
# postgres, Redis as redis, nginx's worker, the FastCGI workers and the
# invalidator as www-data.  As an ordinary user, everything runs as that user.
# Needs: bash, coreutils, util-linux (setpriv, setsid, flock), procps (ps).

set -euo pipefail
umask 022
# Every psql here gives up on a server that accepts but does not answer.
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}
# nginx, setpriv and friends live in sbin, which an ordinary user's PATH
# often lacks.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
# 1 when this run found no deploy.state (cmd_up)
FRESH_STATE=0
cd "$REPO"

# The servers started below would inherit every descriptor we were given,
# and a caller waiting for its pipe to close (a test harness, a $(...)) would
# wait for as long as they run.  Keep 0-2, and the one bash reads this
# script from.
self=$(readlink -f -- "$REPO/${BASH_SOURCE[0]##*/}")
for fd in "/proc/$$/fd"/*; do
	fd=${fd##*/}
	(( fd > 2 && fd != 255 )) || continue
	[[ $(readlink -- "/proc/$$/fd/$fd" 2>/dev/null) == "$self" ]] && continue
	eval "exec $fd>&-"
done
unset fd self

PKGS_RUNTIME=(build-essential pkg-config libfcgi-dev libpq-dev libhiredis-dev
	libjson-c-dev "nginx-light|nginx-full|nginx-extras|nginx-core|nginx"
	spawn-fcgi multiwatch postgresql postgresql-client redis-server
	redis-tools curl util-linux iproute2 stunnel4 ca-certificates)
# clang for make fuzz; libFuzzer and clang's sanitizer runtimes are in
# libclang-rt-14-dev, only a recommend of clang's (skipped here).
# chromium: the status page's test loads it in a headless browser (with a
# font of its own: its recommends, which bring one, are skipped here).
# pgbouncer: the workers behind a pooler in transaction mode are tested.
PKGS_TEST=(bats libcmocka-dev jq clang libclang-rt-14-dev wrk gnuplot-nox valgrind
	chromium fonts-liberation pgbouncer)
# make bench measures the tutorial's own app (FastAPI, psycopg2, redis-py)
# beside the service: Debian's packages of it, never PyPI.
PKGS_BENCH=(python3-fastapi python3-uvicorn python3-psycopg2 python3-redis)

# Bounded waits, in seconds.
STOP_TIMEOUT=15         # a component's graceful stop, before SIGKILL
DRAIN_TIMEOUT=30        # old nginx workers after a reload (scale)
START_TIMEOUT=10        # Redis PING, the pool's socket, nginx's pid file

IS_ROOT=0
[[ $(id -u) -eq 0 ]] && IS_ROOT=1

# ---------------------------------------------------------------- helpers

msg()  { printf '%s\n' "$*"; }
warn() { printf 'deploy.sh: %s\n' "$*" >&2; }
die()  { printf 'deploy.sh: error: %s\n' "$*" >&2; exit 1; }

# sq STRING: STRING single-quoted for the shell.
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# randhex: 32 hex characters (128 bits) from the kernel's CSPRNG.
randhex() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

# read_file FILE [DEFAULT]: the first line of FILE, or DEFAULT.
read_file() {
	local line
	if [[ -r $1 ]] && IFS= read -r line <"$1"; then
		printf '%s' "$line"
	else
		printf '%s' "${2-}"
	fi
}

# write_file FILE CONTENT...: replace FILE atomically (tmp + rename).
write_file() {
	local f=$1; shift
	printf '%s\n' "$@" >"$f.tmp.$$"
	mv -f "$f.tmp.$$" "$f"
}

# proc_alive PID COMM: PID is a live (not zombie) process named COMM.
# Pid files outlive their processes and pids are reused: check the name.
proc_alive() {
	local pid=$1 comm=$2 c stat
	[[ $pid =~ ^[1-9][0-9]*$ ]] || return 1
	{ IFS= read -r c <"/proc/$pid/comm" && IFS= read -r stat <"/proc/$pid/stat"; } \
		2>/dev/null || return 1
	[[ $c == "$comm" ]] || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# proc_children PID: live children of PID, one per line.
proc_children() {
	ps -o pid=,stat= --ppid "$1" 2>/dev/null | awk '$2 !~ /^Z/ {print $1}' || true
}

# any_alive PID...: true while one of the PIDs exists (zombies excluded).
any_alive() {
	local pid stat
	for pid; do
		{ IFS= read -r stat <"/proc/$pid/stat"; } 2>/dev/null || continue
		stat=${stat##*) }
		[[ ${stat%% *} == Z ]] || return 0
	done
	return 1
}

# Waits are bounded by the clock ($SECONDS), not by a count of rounds: a
# round also spends time in ps and friends.

# wait_gone SECONDS PID...: wait until none of the PIDs is alive.
wait_gone() {
	local deadline=$(( SECONDS + $1 )); shift
	while any_alive "$@"; do
		(( SECONDS >= deadline )) && return 1
		sleep 0.1
	done
	return 0
}

# as_user USER CMD...: run CMD as USER when we are root (from /, which every
# user can enter), as ourselves otherwise.  Closes the lock fd (see lock_state).
as_user() {
	local u=$1; shift
	if (( IS_ROOT )); then
		(cd / && exec setpriv --reuid="$u" --regid="$u" --init-groups -- "$@") 9>&-
	else
		"$@" 9>&-
	fi
}

# can_user USER TEST-ARGS...: `test` as USER (always true for ourselves).
can_user() {
	(( IS_ROOT )) || return 0
	as_user "$1" test "${@:2}" 2>/dev/null
}

# port_in_use PORT: something answers on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port AVOID...: a free port, probed upward from a random base below
# the kernel's ephemeral range (ip_local_port_range): a port in that range
# can be held by some client's outgoing connection, which no probe sees, and
# the server's bind() then fails.  (A port that is free now may also be taken
# before the server binds it; the server's start then fails loudly.)
pick_port() {
	local lo=10000 hi=32767 eph base p i avoid n
	if read -r eph _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null &&
		(( eph > lo + 1000 )); then
		hi=$(( eph - 1 ))
	fi
	n=$(( hi - lo + 1 ))
	base=$(( (RANDOM * 32768 + RANDOM) % n ))
	for (( i = 0; i < 500; i++ )); do
		p=$(( lo + (base + i) % n ))
		for avoid; do [[ $p == "$avoid" ]] && continue 2; done
		port_in_use "$p" || { printf '%s' "$p"; return 0; }
	done
	die "no free port found in $lo-$hi"
}

# ---------------------------------------------------------------- packages

# missing_pkgs SPEC...: the packages to install, one per line.  A SPEC is
# NAME or NAME|ALT|...: any one installed alternative will do (nginx-full
# serves as well as nginx-light), else the first is installed.
missing_pkgs() {
	local spec p ok names=() installed
	local IFS='|'
	for spec; do
		for p in $spec; do names+=("$p"); done
	done
	IFS=$' \t\n'
	# One dpkg-query for all (it complains about unknown names: ignored).
	installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${names[@]}" 2>/dev/null |
		awk '$NF == "installed" && $(NF-1) == "ok" {print $1}' || true)
	installed=$'\n'$installed$'\n'
	for spec; do
		ok=0
		IFS='|'
		for p in $spec; do
			[[ $installed == *$'\n'"${p%%:*}"$'\n'* ]] && ok=1
		done
		IFS=$' \t\n'
		(( ok )) || printf '%s\n' "${spec%%|*}"
	done
}

cmd_deps() {
	local check=0 test=0 bench=0 arg missing added_policy=0
	for arg; do
		case $arg in
		--check) check=1 ;;
		--test)  test=1 ;;
		--bench) bench=1 ;;
		*) die "deps: unknown option $arg (use --check, --test, --bench)" ;;
		esac
	done
	local want=("${PKGS_RUNTIME[@]}")
	(( test || bench )) && want+=("${PKGS_TEST[@]}")
	(( bench )) && want+=("${PKGS_BENCH[@]}")
	mapfile -t missing < <(missing_pkgs "${want[@]}")
	if (( ${#missing[@]} == 0 )); then
		(( check )) && msg "deps: nothing missing"
		return 0
	fi
	if (( check )); then
		msg "deps: missing: ${missing[*]}"
		return 1
	fi
	if (( ! IS_ROOT )); then
		warn "missing packages; as root, run:"
		printf 'sudo apt-get install -y --no-install-recommends %s\n' "${missing[*]}" >&2
		exit 1
	fi
	msg "deps: installing ${missing[*]}"
	# Debian's postinst scripts would start the packages' default servers
	# (nginx on :80, Postgres's main cluster on :5432, Redis on :6379); we run
	# our own.  A policy-rc.d that answers 101 keeps them down during this
	# install only; an existing policy-rc.d is left as it is.
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\n# deploy.sh: temporary, see deploy.sh deps\nexit 101\n' \
			>/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		added_policy=1
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	DEBIAN_FRONTEND=noninteractive apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
	if (( added_policy )); then
		rm -f /usr/sbin/policy-rc.d
		trap - EXIT
	fi
	mapfile -t missing < <(missing_pkgs "${want[@]}")
	(( ${#missing[@]} == 0 )) || die "still missing after apt-get: ${missing[*]}"
}

# ---------------------------------------------------------------- state

# state_dir_path: STATE_DIR made absolute (relative to the repo), unchecked.
state_dir_path() {
	local d=${STATE_DIR:-./var}
	[[ $d == /* ]] || d=$REPO/${d#./}
	printf '%s' "$d"
}

# setup_paths CREATE: set STATE_DIR (absolute, symlinks resolved), the file
# names under it and ID.  With CREATE=0 a missing STATE_DIR is not created
# and the function returns 1.
setup_paths() {
	local d
	d=$(state_dir_path)
	if [[ ! -d $d ]]; then
		(( $1 )) || return 1
		# Ours alone: it holds the secrets (env, deploy.state) and logs.
		# Postgres's data and the sockets then live where their users
		# can reach them (see setup_pg_paths, setup_run_dir).
		mkdir -p -- "$d"
		chmod 0700 -- "$d"
	fi
	STATE_DIR=$(cd -- "$d" && pwd -P)
	# The path goes into nginx's and Postgres's configuration files and sed
	# expressions unquoted: keep it to characters that need no quoting.
	[[ $STATE_DIR =~ ^[A-Za-z0-9/._+-]+$ ]] ||
		die "STATE_DIR must be a path of letters, digits and /._+- only: $STATE_DIR"
	# Unix socket paths are limited to 107 bytes, and Postgres's lives at
	# STATE_DIR/pg/run/.s.PGSQL.NNNNN.
	(( ${#STATE_DIR} <= 80 )) ||
		die "STATE_DIR is too long for the unix sockets under it (80 characters at most): $STATE_DIR"
	ENV_FILE=$STATE_DIR/env
	STATE_FILE=$STATE_DIR/deploy.state
	LOG_DIR=$STATE_DIR/log
	ID=$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-12)
	return 0
}

# lock_state: one deploy.sh at a time per STATE_DIR.  Fd 9 must not leak into
# the servers we start (they would hold the lock forever): every background
# start closes it with 9>&-.
lock_state() {
	exec 9>"$STATE_DIR/.lock"
	flock -w 120 9 || die "another deploy.sh holds $STATE_DIR/.lock"
}

# load_state: S_* from deploy.state, F_* from the env file (what the last
# run used).  Neither file is sourced into this shell: the environment's
# values must stay visible beside them.
load_state() {
	S_ROLE='' S_DB_MODE='' S_REDIS_MODE='' S_PG_PORT='' S_PG_PASSWORD=''
	S_REDIS_PORT='' S_REDIS_PASSWORD='' S_REDIS_APP_PASSWORD='' S_TUNNEL_PORT=''
	local k v
	if [[ -r $STATE_FILE ]]; then
		while IFS='=' read -r k v; do
			case $k in
			ROLE|DB_MODE|REDIS_MODE|PG_PORT|PG_PASSWORD|REDIS_PORT|REDIS_PASSWORD|REDIS_APP_PASSWORD|TUNNEL_PORT)
				printf -v "S_$k" '%s' "$v" ;;
			esac
		done <"$STATE_FILE"
	fi
	local vars=(DATABASE_URL REDIS_URL PORT CACHE_TTL CACHE_PREFIX
		WORKER_LISTEN EDGE_ADDRS WORKER_HOSTS LISTEN_ADDR
		UPSTREAM_MAX_FAILS UPSTREAM_FAIL_TIMEOUT RATE_LIMIT_EXEMPT)
	for v in "${vars[@]}"; do printf -v "F_$v" '%s' ''; done
	if [[ -r $ENV_FILE ]]; then
		# Sourced in a subshell that starts without those variables, and
		# printed back quoted.
		eval "$(
			unset "${vars[@]}"
			# shellcheck disable=SC1090
			. "$ENV_FILE" >/dev/null 2>&1
			for v in "${vars[@]}"; do
				printf 'F_%s=%q\n' "$v" "${!v-}"
			done
		)"
	fi
}

save_state() {
	(umask 077; write_file "$STATE_FILE" \
		"ROLE=$S_ROLE" "DB_MODE=$S_DB_MODE" "REDIS_MODE=$S_REDIS_MODE" \
		"PG_PORT=$S_PG_PORT" "PG_PASSWORD=$S_PG_PASSWORD" \
		"REDIS_PORT=$S_REDIS_PORT" "REDIS_PASSWORD=$S_REDIS_PASSWORD" \
		"REDIS_APP_PASSWORD=$S_REDIS_APP_PASSWORD" "TUNNEL_PORT=$S_TUNNEL_PORT")
}

write_env_file() {
	(umask 077; write_file "$ENV_FILE" \
		"# orders service, written by deploy.sh: . $ENV_FILE" \
		"export DATABASE_URL=$(sq "$DATABASE_URL")" \
		"export REDIS_URL=$(sq "$REDIS_URL")" \
		${REDIS_ADMIN_URL:+"export REDIS_ADMIN_URL=$(sq "$REDIS_ADMIN_URL")"} \
		"export PORT=$PORT" \
		"export CACHE_TTL=$CACHE_TTL" \
		"export CACHE_PREFIX=$(sq "$CACHE_PREFIX")" \
		${WORKER_LISTEN:+"export WORKER_LISTEN=$(sq "$WORKER_LISTEN")"} \
		${EDGE_ADDRS:+"export EDGE_ADDRS=$(sq "$EDGE_ADDRS")"} \
		${WORKER_HOSTS:+"export WORKER_HOSTS=$(sq "$WORKER_HOSTS")"} \
		${LISTEN_ADDR:+"export LISTEN_ADDR=$(sq "$LISTEN_ADDR")"} \
		${RATE_LIMIT_EXEMPT:+"export RATE_LIMIT_EXEMPT=$(sq "$RATE_LIMIT_EXEMPT")"} \
		${UPSTREAM_MAX_FAILS:+"export UPSTREAM_MAX_FAILS=$UPSTREAM_MAX_FAILS"} \
		${UPSTREAM_FAIL_TIMEOUT:+"export UPSTREAM_FAIL_TIMEOUT=$UPSTREAM_FAIL_TIMEOUT"} \
		"export STATE_DIR=$(sq "$STATE_DIR")")
}

# Loopback: no TLS and no GSSAPI to try first (each a refused attempt per
# connect, and the libraries' pages in every worker's RSS).  An env file of
# an older deploy.sh says the URL without them: still the local one.
local_db_base()   { printf 'postgresql://orders_app:%s@127.0.0.1:%s/orders' "$S_PG_PASSWORD" "$S_PG_PORT"; }
local_db_url()    { printf '%s?sslmode=disable&gssencmode=disable' "$(local_db_base)"; }
is_local_db_url() { [[ $1 == "$(local_db_url)" || $1 == "$(local_db_base)" ]]; }
# The service connects to the local Redis as user "orders" (see
# redis_acl); "default", with its own password, is the administrator's:
# REDIS_ADMIN_URL in the env file, for redis-cli.  Before that user
# existed, the service connected as "default": that URL is still ours.
local_redis_url() { printf 'redis://orders:%s@127.0.0.1:%s/0' "$S_REDIS_APP_PASSWORD" "$S_REDIS_PORT"; }
local_redis_admin_url() { printf 'redis://default:%s@127.0.0.1:%s/0' "$S_REDIS_PASSWORD" "$S_REDIS_PORT"; }
is_local_redis_url() {
	[[ -n $S_REDIS_PASSWORD ]] || return 1
	[[ ( -n $S_REDIS_APP_PASSWORD && $1 == "$(local_redis_url)" ) || $1 == "$(local_redis_admin_url)" ]]
}

# RUN_DIR: where www-data (the nginx worker, the FastCGI workers) can reach
# the socket.  Decided once and remembered in run.path, so stop and status
# look where up put things.
setup_run_dir() {
	local create=$1
	RUN_DIR=$(read_file "$STATE_DIR/run.path")
	if [[ -z $RUN_DIR ]]; then
		(( create )) || { RUN_DIR=$STATE_DIR/run; return 0; }
		if (( IS_ROOT )); then
			getent passwd www-data >/dev/null || die "user www-data is missing (nginx not installed?)"
			if can_user www-data -x "$STATE_DIR"; then
				RUN_DIR=$STATE_DIR/run
			else
				RUN_DIR=/run/orders-$ID
			fi
		else
			RUN_DIR=$STATE_DIR/run
		fi
		write_file "$STATE_DIR/run.path" "$RUN_DIR"
	fi
	if (( create )); then
		mkdir -p "$RUN_DIR/nginx"
		chmod 0755 "$RUN_DIR"
	fi
	NGINX_DIR=$RUN_DIR/nginx
	NGINX_CONF=$NGINX_DIR/nginx.conf
	NGINX_PID=$NGINX_DIR/nginx.pid
	REDIS_PIDFILE=$RUN_DIR/redis.pid
	INVALIDATOR_PIDFILE=$RUN_DIR/invalidator.pid
}

# ---------------------------------------------------------------- Postgres

PG_USER=postgres
(( IS_ROOT )) || PG_USER=$(id -un)
as_pg() { as_user "$PG_USER" "$@"; }

# setup_pg_paths CREATE: PG_DIR (from pg.path, else chosen and recorded).
setup_pg_paths() {
	local create=$1
	PG_DIR=$(read_file "$STATE_DIR/pg.path")
	if [[ -z $PG_DIR ]]; then
		(( create )) || return 1
		PG_DIR=$STATE_DIR/pg
		mkdir -p "$PG_DIR"
		chmod 0700 "$PG_DIR"
		if (( IS_ROOT )); then
			chown postgres:postgres "$PG_DIR"
			# Postgres refuses to run as root and user postgres cannot
			# enter a STATE_DIR under /root or in a 0700 mktemp dir.
			if ! can_user postgres -w "$PG_DIR" -a -x "$PG_DIR"; then
				rmdir "$PG_DIR"
				PG_DIR=/var/lib/postgresql/orders-$ID
				mkdir -p "$PG_DIR"
				chown postgres:postgres "$PG_DIR"
				chmod 0700 "$PG_DIR"
			fi
		fi
		write_file "$STATE_DIR/pg.path" "$PG_DIR"
		msg "postgres: data directory $PG_DIR/data (recorded in $STATE_DIR/pg.path)"
	fi
	PG_DATA=$PG_DIR/data
	PG_SOCKDIR=$PG_DIR/run
	return 0
}

# pg_bin: the server binaries matching the cluster's version (the newest
# installed for a new cluster).
pg_bin() {
	local v
	v=$(read_file "$PG_DATA/PG_VERSION")
	if [[ -n $v && -x /usr/lib/postgresql/$v/bin/postgres ]]; then
		printf '%s' "/usr/lib/postgresql/$v/bin"
		return 0
	fi
	v=$(printf '%s\n' /usr/lib/postgresql/*/bin/postgres | sort -V | tail -n 1)
	v=${v%/postgres}
	[[ -x $v/postgres ]] || v=''
	[[ -n $v ]] || die "no PostgreSQL server in /usr/lib/postgresql (./deploy.sh deps)"
	printf '%s' "$v"
}

pg_pid() {
	local pid
	pid=$(read_file "$PG_DATA/postmaster.pid")
	proc_alive "$pid" postgres && printf '%s' "$pid"
}

# pg_write FILE: stdin into FILE, written as the cluster's owner.
# shellcheck disable=SC2016 # $1 is sh's, not ours
pg_write() { as_pg sh -c 'cat >"$1"' sh "$1"; }

# pg_adopt: on a deploy with no state yet, a cluster already in PG_DATA
# is one that an earlier deploy of this STATE_DIR made before its state
# went: its orders are kept, and it is given this deploy's port (pg_start)
# and, once running, this deploy's password for orders_app (pg_load_local).
# Only a message: pg_start and pg_load_local do it for every cluster.
pg_adopt() {
	(( FRESH_STATE )) && [[ -f $PG_DATA/PG_VERSION ]] || return 0
	msg "postgres: $PG_DATA is from an earlier deploy of this STATE_DIR: keeping its orders (remove it for an empty database)"
}

pg_init() {
	[[ -f $PG_DATA/PG_VERSION ]] && return 0
	local bin new=$PG_DIR/data.new
	bin=$(pg_bin)
	msg "postgres: initdb $PG_DATA (port $S_PG_PORT)"
	# Built aside and renamed when complete, so an interrupted initdb never
	# leaves a half-made data directory behind for the next run to trip on.
	as_pg rm -rf "$new"
	as_pg "$bin/initdb" -D "$new" -U postgres --auth-local=trust \
		--auth-host=scram-sha-256 -E UTF8 --locale=C >/dev/null
	# The administrator's socket directory, private to the cluster's owner;
	# the pool's is RUN_DIR/pg (pg_start).
	as_pg mkdir -p "$PG_SOCKDIR"
	as_pg chmod 0700 "$PG_SOCKDIR"
	pg_auth "$new"
	# shellcheck disable=SC2016 # $1 is sh's, not ours
	as_pg sh -c 'cat >>"$1"' sh "$new/postgresql.conf" <<-EOF

	# ---- added by deploy.sh ----
	listen_addresses = '127.0.0.1'
	port = $S_PG_PORT
	unix_socket_directories = '$PG_SOCKDIR'
	unix_socket_permissions = 0700
	max_connections = 100
	shared_buffers = 128MB
	password_encryption = 'scram-sha-256'
	log_destination = 'stderr'
	logging_collector = off
	log_line_prefix = '%m [%p] %q%u@%d '
	EOF
	as_pg mv "$new" "$PG_DATA"
}

# pg_log_file: STATE_DIR/log/postgres.log when user postgres can write
# there, else a file in PG_DIR.
pg_log_file() {
	local f=$LOG_DIR/postgres.log
	if (( IS_ROOT )); then
		if can_user postgres -x "$LOG_DIR"; then
			[[ -e $f ]] || : >"$f"
			chown postgres:postgres "$f"
			chmod 0640 "$f"
		else
			f=$PG_DIR/postgres.log
		fi
	fi
	printf '%s' "$f"
}

# pg_auth DIR: pg_hba.conf and pg_ident.conf into the data directory DIR,
# written again at every start, so that a cluster from an earlier deploy
# has them too. Over a Unix socket Postgres asks the kernel who connects
# (peer): only the administrator (root, and the cluster's owner) may be
# postgres, and only the pool's user (www-data; when deploy.sh is not
# root, the one user) may be orders_app, with no password. Over TCP,
# orders_app with its password: the URL of the env file, for people and
# other programs.
pg_auth() {
	local dir=$1 pool_user=www-data
	(( IS_ROOT )) || pool_user=$PG_USER
	pg_write "$dir/pg_hba.conf" <<-EOF
	# written by deploy.sh (at every start)
	# TYPE  DATABASE  USER        ADDRESS       METHOD
	local   all       postgres                  peer map=admin
	local   orders    orders_app                peer map=pool
	host    orders    orders_app  127.0.0.1/32  scram-sha-256
	EOF
	{
		printf '# written by deploy.sh (at every start)\n# MAP  SYSTEM-USER  PG-USER\n'
		(( IS_ROOT )) && printf 'admin  root  postgres\n'
		printf 'admin  %s  postgres\n' "$PG_USER"
		printf 'pool  %s  orders_app\n' "$pool_user"
	} | pg_write "$dir/pg_ident.conf"
}

# pg_pool_sockdir: RUN_DIR/pg, made ready for the pool's Unix socket
# (the owner's; www-data may enter it, nobody else), and printed; nothing,
# and status 1, when its path does not suit a socket (a socket's path
# holds 107 bytes at most, and pg_ctl's -o goes through sh).
#
# Why a socket: a worker that reaches Postgres over TCP authenticates with
# SCRAM, whose hashing touches most of libcrypto: 2.4 MiB more RSS in every
# worker than a peer connection (a bare libpq client, bench/rss-libpq.c:
# 8.7 against 6.3 MiB), and every statement's round trip costs the kernel
# more over TCP than over a Unix socket.
pg_pool_sockdir() {
	local d=$RUN_DIR/pg
	[[ $d =~ ^[A-Za-z0-9._/-]+$ && $PG_SOCKDIR =~ ^[A-Za-z0-9._/-]+$ ]] &&
		(( ${#d} <= 80 )) || return 1
	mkdir -p "$d"
	if (( IS_ROOT )); then
		chown "$PG_USER:www-data" "$d"
		chmod 0750 "$d"
	else
		chmod 0700 "$d"
	fi
	printf '%s' "$d"
}

# pool_db_url: DATABASE_URL as the pool and the invalidator use it: the
# local cluster over the pool's socket (peer: no password) when it listens
# there, else DATABASE_URL itself.
pool_db_url() {
	if [[ $DB_MODE == local && -S $RUN_DIR/pg/.s.PGSQL.$S_PG_PORT ]]; then
		printf 'postgresql:///orders?host=%s&port=%s&user=orders_app' "$RUN_DIR/pg" "$S_PG_PORT"
	else
		printf '%s' "$DATABASE_URL"
	fi
}

pg_start() {
	local pid port log bin dir opts=''
	pg_auth "$PG_DATA"
	if pid=$(pg_pid) && port=$(sed -n 4p "$PG_DATA/postmaster.pid") &&
		[[ $port != "$S_PG_PORT" ]]; then
		# Not on deploy.state's port: started for a state that is gone.
		msg "postgres: running (pid $pid) on port $port, not $S_PG_PORT: restarting"
		pg_stop
	fi
	if pid=$(pg_pid); then
		as_pg "$(pg_bin)/pg_ctl" -D "$PG_DATA" reload >/dev/null ||
			warn "postgres: cannot reload pg_hba.conf"
		msg "postgres: running (pid $pid)"
		return 0
	fi
	log=$(pg_log_file)
	bin=$(pg_bin)
	[[ $log == "$LOG_DIR/postgres.log" ]] || msg "postgres: log in $log (user postgres cannot write to $LOG_DIR)"
	# The port of deploy.state, not postgresql.conf's: a cluster that an
	# earlier deploy of this STATE_DIR left has its own there (pg_adopt).
	opts="-c port=$S_PG_PORT"
	# The pool's socket beside the administrator's: the sockets themselves
	# are open to all (0777), their directories are not.
	if dir=$(pg_pool_sockdir); then
		opts+=" -c unix_socket_directories=$PG_SOCKDIR,$dir -c unix_socket_permissions=0777"
	else
		msg "postgres: the pool connects over TCP (RUN_DIR $RUN_DIR does not suit a socket)"
	fi
	# pg_ctl -w returns once the server accepts connections; the postmaster
	# detaches into its own session.
	if ! as_pg "$bin/pg_ctl" -D "$PG_DATA" -l "$log" -o "$opts" -w -t 60 start >/dev/null; then
		tail -n 20 "$log" >&2 || true
		die "postgres did not start (log: $log)"
	fi
	pid=$(pg_pid) || die "postgres started but postmaster.pid names no live process"
	msg "postgres: started (pid $pid, 127.0.0.1:$S_PG_PORT)"
}

pg_stop() {
	local pid
	setup_pg_paths 0 || return 0
	pid=$(pg_pid) || return 0
	msg "postgres: stopping (pid $pid)"
	# -m fast: roll back open transactions, disconnect clients, checkpoint.
	if ! as_pg "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null; then
		warn "postgres: fast stop timed out; immediate stop"
		as_pg "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m immediate -w -t "$STOP_TIMEOUT" stop >/dev/null ||
			warn "postgres: still running (pid $pid)"
	fi
}

# psql_admin ARGS...: psql as superuser postgres over the private socket.
psql_admin() {
	psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKDIR" -p "$S_PG_PORT" -U postgres "$@"
}

# pg_load_local: database, schema, role and data, each only where missing;
# on a later deploy the schema is brought up to date. The data go in only
# together with the table (one transaction), so they are loaded exactly
# once: on the deploy that creates the table.
pg_load_local() {
	local has
	has=$(psql_admin -d postgres -tAc "SELECT count(*) FROM pg_database WHERE datname = 'orders'")
	if [[ $has == 0 ]]; then
		msg "postgres: creating database orders"
		psql_admin -d postgres -c 'CREATE DATABASE orders'
	fi
	has=$(psql_admin -d orders -tAc "SELECT to_regclass('orders') IS NOT NULL")
	if [[ $has == f ]]; then
		msg "postgres: loading schema, role and $ORDERS_ROWS orders"
		# The password reaches psql on stdin (\set), never on a command line.
		psql_admin -d orders -f - <<-EOF
		\\set ON_ERROR_STOP on
		\\set app_password '$S_PG_PASSWORD'
		\\set rows $ORDERS_ROWS
		BEGIN;
		\\i '$REPO/sql/schema.sql'
		\\i '$REPO/sql/roles.sql'
		\\i '$REPO/sql/data.sql'
		COMMIT;
		EOF
		# The visibility map, at once rather than at autovacuum's leisure:
		# counts by customer or date are index-only scans from the start.
		psql_admin -d orders -qc 'VACUUM (ANALYZE) orders'
		return 0
	fi
	# schema.sql is idempotent: a table from an earlier deploy gains what
	# was added since (the idempotency_key column) on the next deploy.
	PGOPTIONS='-c client_min_messages=warning' \
		psql_admin -d orders -1 -f "$REPO/sql/schema.sql" ||
		die "postgres: cannot apply sql/schema.sql"
	has=$(psql_admin -d orders -tAc "SELECT count(*) FROM pg_roles WHERE rolname = 'orders_app'")
	if [[ $has == 0 ]]; then
		msg "postgres: creating role orders_app"
		psql_admin -d orders -f - <<-EOF
		\\set app_password '$S_PG_PASSWORD'
		\\i '$REPO/sql/roles.sql'
		EOF
	else
		# deploy.state's password, whatever the role had: an adopted
		# cluster's (pg_adopt) is the lost state's. A catalog update only:
		# no lock on orders, sessions already open go on.
		psql_admin -d orders -f - <<-EOF
		\\set ON_ERROR_STOP on
		\\set app_password '$S_PG_PASSWORD'
		ALTER ROLE orders_app PASSWORD :'app_password';
		EOF
	fi
}

# The triggers that announce every committed write to orders (NOTIFY
# orders_changed) to the invalidator.  sql/triggers.sql is idempotent and
# one transaction, so it is applied on every start: an edit of it reaches a
# running database with the next ./deploy.sh.  Its NOTICEs ("trigger ...
# does not exist, skipping" the first time) are noise.
pg_triggers_local() {
	PGOPTIONS='-c client_min_messages=warning' \
		psql_admin -d orders -f "$REPO/sql/triggers.sql" ||
		die "postgres: cannot apply sql/triggers.sql"
}

# pg_triggers_external: the same, as DATABASE_URL's user, which needs to own
# the table (or hold TRIGGER on it) and may create in its schema.  Without
# that, the service still runs; only writes made behind its back stay
# cached until their TTL, as they did before the invalidator.
pg_triggers_external() {
	local n
	# A worker host's role is usually the service's least-privileged one,
	# which cannot (re)create them: their being there is enough.
	if [[ $ROLE == worker ]]; then
		n=$(psql -X -q -tA "$DATABASE_URL" -c "SELECT count(*) FROM pg_trigger
			WHERE tgrelid = 'orders'::regclass AND tgname LIKE 'orders_changed_%'" 2>/dev/null) || n=0
		if (( n == 4 )); then
			msg "postgres (external): the triggers of sql/triggers.sql are there"
			return 0
		fi
	fi
	if ! PGOPTIONS='-c client_min_messages=warning' \
		psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -f "$REPO/sql/triggers.sql"; then
		warn "postgres (external): cannot apply sql/triggers.sql as DATABASE_URL's user;"
		warn "  writes made outside the service stay cached until CACHE_TTL.  Have the"
		warn "  table's owner run: psql \"\$DATABASE_URL\" -f sql/triggers.sql"
	fi
}

# pg_load_external: schema and data into the user's database when it has no
# orders table; roles are the user's business there.
pg_load_external() {
	local has
	# The URL is on psql's command line (visible in ps) for as long as
	# psql runs: seconds, and it is the user's own URL.
	has=$(psql -X -q -v ON_ERROR_STOP=1 -tA "$DATABASE_URL" -c "SELECT to_regclass('orders') IS NOT NULL") ||
		die "cannot reach DATABASE_URL (external); is it right and the server up?"
	[[ $has == f ]] || return 0
	msg "postgres (external): loading schema and $ORDERS_ROWS orders"
	# Worker hosts may start together: the first to take the lock loads,
	# the others find the table there once it has committed.
	psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -f - <<-EOF
	\\set rows $ORDERS_ROWS
	BEGIN;
	SELECT pg_advisory_xact_lock(hashtext('orders: schema')) \\gset
	SELECT to_regclass('orders') IS NULL AS fresh \\gset
	\\if :fresh
	\\i '$REPO/sql/schema.sql'
	\\i '$REPO/sql/data.sql'
	\\endif
	COMMIT;
	EOF
}

# ---------------------------------------------------------------- Redis

redis_pid() {
	local pid
	pid=$(read_file "$REDIS_PIDFILE")
	proc_alive "$pid" redis-server && printf '%s' "$pid"
}

redis_ping() {
	REDISCLI_AUTH=$S_REDIS_PASSWORD redis-cli --no-auth-warning \
		-h 127.0.0.1 -p "$S_REDIS_PORT" PING 2>/dev/null
}

# redis_acl_rules: what user "orders" (the workers, the invalidator) may
# do: the commands of cgi-src/kv.c and of its Lua scripts, on keys under
# CACHE_PREFIX only; no other command (no FLUSHALL, CONFIG, KEYS, DEBUG,
# MONITOR), no other key, no pub/sub channel.
# INFO (replication: role and replication id), SCAN and UNLINK: the
# cache's guard against entries from before a failover or a restart
# (cgi-src/kv.c), which drops every key under the prefix when the master's
# replication id is not the one they were written under.  (SCAN lists key
# names outside the prefix too; it reads no value.)  ZADD and ZSCORE: the
# bar a replica must have replayed to (DATABASE_REPLICA_URL, <prefix>meta:lsn);
# TYPE: the guard's flush drops that bar too.
redis_acl_rules() {
	ACL_RULES=(on ">$S_REDIS_APP_PASSWORD" "~${CACHE_PREFIX}*" resetchannels
		-@all +auth +hello +ping +select '+script|load' +evalsha +eval
		+get +pttl +set +del +exists +incr +sadd +srem +spop +smembers
		+srandmember '+info' +scan +unlink +type +zadd +zscore)
}

# redis_acl: (re)defines user "orders" in the running Redis, from scratch
# (a Redis started by an older deploy.sh has none; CACHE_PREFIX may have
# changed).
redis_acl() {
	local out
	redis_acl_rules
	# The command on stdin, not on redis-cli's command line: the password
	# it carries must not show in ps.  (Every rule is one word: hex
	# password, prefix without spaces.)
	out=$(printf 'ACL SETUSER orders reset %s\n' "${ACL_RULES[*]}" |
		REDISCLI_AUTH=$S_REDIS_PASSWORD redis-cli --no-auth-warning \
		-h 127.0.0.1 -p "$S_REDIS_PORT" 2>&1) || true
	[[ $out == OK ]] || die "redis: ACL SETUSER orders failed: $out"
}

# redis_sockdir USER: RUN_DIR/redis, made ready for the Unix socket of the
# Redis that runs as USER (USER's, with the pool's group, www-data, which
# may enter it, and nobody else; setgid, so that the socket Redis makes
# there is www-data's too), and printed; nothing, and status 1, when its
# path does not suit a socket or USER cannot reach it.
#
# Why a socket: a hit is one round trip to Redis and a miss two, and each
# costs the kernel less over a Unix socket than over TCP's loopback:
# turn about on one stack, 6 rounds of 5 s at 8 connections, twice, cache
# hits went 7% faster and misses 4 to 6%. The TCP port stays, for people
# and other programs (the env file's URLs).
redis_sockdir() {
	local user=$1 d=$RUN_DIR/redis
	[[ $d =~ ^[A-Za-z0-9._/-]+$ ]] && (( ${#d} <= 80 )) || return 1
	mkdir -p "$d"
	if (( IS_ROOT )); then
		chown "$user:www-data" "$d"
		chmod 2750 "$d"
		can_user "$user" -w "$d" -a -x "$d" || return 1
	else
		chmod 0700 "$d"
	fi
	printf '%s' "$d"
}

# redis_socket: the local Redis's Unix socket, printed, when it listens
# there (a Redis that an older deploy.sh started has none); status 1 if not.
redis_socket() {
	local f=$RUN_DIR/redis/redis.sock
	[[ -S $f ]] || return 1
	printf '%s' "$f"
}

redis_start() {
	local pid dir log=$LOG_DIR/redis.log deadline runas=() user sock=''
	if pid=$(redis_pid); then
		redis_acl
		msg "redis: running (pid $pid)"
		return 0
	fi
	# Nothing is ever written to dir (no RDB, no AOF); it only has to exist.
	dir=$STATE_DIR/redis
	mkdir -p "$dir"
	chmod 0700 "$dir"
	user=$(id -un)
	if (( IS_ROOT )) && getent passwd redis >/dev/null; then
		chown redis:redis "$dir"
		can_user redis -w "$dir" -a -x "$dir" || dir=/tmp
		runas=(setpriv --reuid=redis --regid=redis --init-groups --)
		user=redis
	fi
	# 770: the directory keeps out all but Redis's user and www-data.
	sock=$(redis_sockdir "$user") &&
		sock=$(printf 'unixsocket %s/redis.sock\nunixsocketperm 770' "$sock")
	# volatile-lru: under memory pressure only keys with a ttl go (cache
	# entries, locks), never the cache's generation counters or indexes,
	# whose loss could let a stale fill through (cgi-src/cache.c).
	# The configuration, password included, comes on stdin ("redis-server -"):
	# it is in no file and on no command line.  No persistence: this is a
	# cache, and a reloaded dump could bring back entries that writes had
	# invalidated.
	setsid "${runas[@]}" redis-server - >>"$log" 2>&1 9>&- <<-EOF &
	bind 127.0.0.1
	port $S_REDIS_PORT
	protected-mode yes
	requirepass $S_REDIS_PASSWORD
	save ""
	appendonly no
	daemonize no
	supervised no
	logfile ""
	dir $dir
	maxmemory 256mb
	maxmemory-policy volatile-lru
	$sock
	EOF
	pid=$!
	deadline=$(( SECONDS + START_TIMEOUT ))
	while (( SECONDS < deadline )); do
		[[ $(redis_ping) == PONG ]] && break
		# Alive at all: until setsid and setpriv have exec'd it, the
		# process is not yet called redis-server.
		if ! any_alive "$pid"; then
			tail -n 20 "$log" >&2 || true
			die "redis did not start (log: $log)"
		fi
		sleep 0.1
	done
	[[ $(redis_ping) == PONG ]] || { kill "$pid" 2>/dev/null || true; die "redis: no PONG within ${START_TIMEOUT}s (log: $log)"; }
	# $! is redis-server itself: setsid and setpriv exec, they do not fork.
	proc_alive "$pid" redis-server || die "redis: pid $pid is not redis-server"
	write_file "$REDIS_PIDFILE" "$pid"
	redis_acl
	msg "redis: started (pid $pid, 127.0.0.1:$S_REDIS_PORT${sock:+ and $RUN_DIR/redis/redis.sock})"
}

# stop_proc NAME PID COMM SIGNAL: signal, wait, then SIGKILL it and the
# children it had.
stop_proc() {
	local name=$1 pid=$2 comm=$3 sig=$4 kids
	proc_alive "$pid" "$comm" || return 0
	kids=$(proc_children "$pid")
	msg "$name: stopping (pid $pid)"
	kill "-$sig" "$pid" 2>/dev/null || true
	# shellcheck disable=SC2086
	if ! wait_gone "$STOP_TIMEOUT" "$pid" $kids; then
		warn "$name: still running after ${STOP_TIMEOUT}s; SIGKILL"
		# shellcheck disable=SC2086
		kill -KILL "$pid" $kids 2>/dev/null || true
		# shellcheck disable=SC2086
		wait_gone 5 "$pid" $kids || warn "$name: pid $pid survived SIGKILL"
	fi
}

redis_stop() {
	local pid
	pid=$(read_file "$REDIS_PIDFILE")
	stop_proc redis "$pid" redis-server TERM
	rm -f "$REDIS_PIDFILE"
}

# ---------------------------------------------------------------- worker pool

# The pool is spawn-fcgi (binds the socket, drops privileges, execs) then
# multiwatch (forks WORKERS copies of the worker on that socket and restarts
# any that die).  Each pool has a generation: socket fcgi.GEN.sock, pid file
# pool.GEN.pid.  STATE_DIR/pool.gen is the generation nginx points at.

pool_gen()  { read_file "$STATE_DIR/pool.gen" 0; }
pool_sock() { printf '%s' "$RUN_DIR/fcgi.$1.sock"; }
# nginx connects to this path: a symlink to the current pool's socket.
# connect() follows it, so moving it (rename(2), atomic) sends the next
# request to another pool without touching nginx: no reload, and no client
# keep-alive connection closed under a client's feet.
pool_link() { printf '%s' "$RUN_DIR/fcgi.sock"; }

# pool_switch GEN: the next connection goes to pool GEN.
pool_switch() {
	local tmp
	tmp=$(pool_link).new.$$
	ln -sfn -- "fcgi.$1.sock" "$tmp"
	mv -Tf -- "$tmp" "$(pool_link)"
	write_file "$STATE_DIR/pool.gen" "$1"
}

# pool_drain GEN: wait (10 s at most) until no connection waits in the
# accept queue of pool GEN's socket, which no new one reaches once the link
# has moved: a pool retired with a queue would drop those requests.
pool_drain() {
	local sock q calm=0 deadline=$(( SECONDS + 10 ))
	sock=$(pool_sock "$1")
	[[ -S $sock ]] || return 0
	# a connect() that read the old link is over within a moment
	sleep 0.2
	command -v ss >/dev/null || { sleep 1; return 0; }
	while (( SECONDS < deadline )); do
		q=$(ss -xlnH 2>/dev/null | awk -v s="$sock" '$5 == s { print $3; exit }')
		if [[ -z $q || $q == 0 ]]; then
			(( ++calm >= 3 )) && return 0
		else
			calm=0
		fi
		sleep 0.05
	done
	warn "pool: generation $1 still had requests queued after 10 s"
}

# pool_pid [GEN]: the multiwatch pid of that generation (default: current).
pool_pid() {
	local pid
	pid=$(read_file "$RUN_DIR/pool.${1:-$(pool_gen)}.pid")
	proc_alive "$pid" multiwatch && printf '%s' "$pid"
}

# The worker's own tuning (README, "Configuration") and libpq's PG*
# variables (PGSSLMODE, ...) reach the workers when they are set here.  They
# are kept in STATE_DIR/worker.env (0600) when a pool starts, so that the
# pools "scale" starts later get the same.
WORKER_PASSTHROUGH=(LOG_LEVEL REDIS_TIMEOUT_MS STATEMENT_TIMEOUT_MS CACHE_WAIT_MS ORDERS_TEST_HOOKS TZ
	REDIS_SENTINELS REDIS_MASTER_NAME DATABASE_POOL_MODE DATABASE_DIRECT_URL
	DATABASE_REPLICA_URL
	ASAN_OPTIONS UBSAN_OPTIONS)

# worker_extra_from_env: POOL_EXTRA from our environment, saved.
worker_extra_from_env() {
	local v
	POOL_EXTRA=()
	for v in "${WORKER_PASSTHROUGH[@]}" $(compgen -e | grep -E '^PG[A-Z_]+$' || true); do
		[[ -n ${!v-} && ${!v} != *$'\n'* ]] && POOL_EXTRA+=("$v=${!v}")
	done
	(umask 077; write_file "$STATE_DIR/worker.env" ${POOL_EXTRA[@]+"${POOL_EXTRA[@]}"})
}

# worker_extra_saved: POOL_EXTRA as the running pool got it.
worker_extra_saved() {
	POOL_EXTRA=()
	[[ -r $STATE_DIR/worker.env ]] || return 0
	mapfile -t POOL_EXTRA < <(grep -E '^[A-Z_]+=' "$STATE_DIR/worker.env" || true)
}

# The worker's environment: only what it needs, not all of deploy.sh's.
# METRICS_FILE: the file every worker maps and counts into (one slot per
# worker), shared by the pools of every generation, so that GET /metrics
# sums the whole deployment whichever worker answers.
# GNUTLS_NO_IMPLICIT_INIT: GnuTLS (libpq -> libldap -> GnuTLS) skips its
# set-up at load, which only an LDAP connection over TLS would need (and
# libldap then does it itself): 0.8 MiB less RSS per process, and a faster
# start.
pool_env() {
	POOL_ENV=(PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 GNUTLS_NO_IMPLICIT_INIT=1
		"DATABASE_URL=$(pool_db_url)" "REDIS_URL=$(worker_redis_url)"
		"CACHE_TTL=$CACHE_TTL" "CACHE_PREFIX=$CACHE_PREFIX"
		"METRICS_FILE=$(metrics_path)"
		${POOL_EXTRA[@]+"${POOL_EXTRA[@]}"})
	# A worker host takes requests from its edges alone: libfcgi closes
	# a TCP connection from any other address before reading it.
	[[ $ROLE == worker ]] && POOL_ENV+=("FCGI_WEB_SERVER_ADDRS=$EDGE_ADDRS")
	return 0
}

# exec_path BIN: BIN, or a copy in RUN_DIR when www-data cannot reach it (a
# checkout under /root, say).  For the workers and the invalidator.
exec_path() {
	local bin=$1 dst
	if (( IS_ROOT )) && ! can_user www-data -x "$bin"; then
		dst=$RUN_DIR/$(basename -- "$bin")
		# Copy and rename: cp over a running binary fails (ETXTBSY).
		cp -- "$bin" "$dst.tmp.$$"
		chmod 0755 "$dst.tmp.$$"
		mv -f -- "$dst.tmp.$$" "$dst"
		printf '%s' "$dst"
	else
		printf '%s' "$bin"
	fi
}

# worker_check: the worker's own configuration check, in the pool's
# environment.  build/floor has no --check.
worker_check() {
	[[ $(basename -- "$WORKER_BIN") == orders-worker ]] || return 0
	local out
	pool_env
	if ! out=$(env -i "${POOL_ENV[@]}" "$WORKER_BIN" --check 2>&1); then
		printf '%s\n' "$out" >&2
		die "$WORKER_BIN --check failed: not starting the pool"
	fi
}

# metrics_path: RUN_DIR/metrics.LAYOUT, LAYOUT the file's layout that the
# worker was built with (orders-worker --metrics-layout): a build whose
# layout changed starts a file of its own (its counters from zero) rather
# than have its workers count privately and settle no dead worker's writes
# (cgi-src/metrics.c).
metrics_path() {
	local layout=''
	[[ $(basename -- "$WORKER_BIN") == orders-worker ]] &&
		layout=$("$WORKER_BIN" --metrics-layout 2>/dev/null)
	[[ $layout =~ ^[a-z0-9]+$ ]] || layout=private
	printf '%s/metrics.%s' "$RUN_DIR" "$layout"
}

# metrics_file: the file of metrics_path, which the workers map (pool_env),
# made theirs: as root they run as www-data, who may not create files in
# RUN_DIR.  Kept across pools, scales and restarts: Prometheus counters
# must not go back to zero. Files of other layouts (and the unnamed one of
# builds before the name) go: the workers that map one keep it until they
# end.
metrics_file() {
	local f old
	f=$(metrics_path)
	# (a program that is not the worker, bench/'s floors: nothing to clear)
	[[ $f == */metrics.private ]] ||
		for old in "$RUN_DIR/metrics" "$RUN_DIR"/metrics.*; do
			[[ -f $old && $old != "$f" ]] && rm -f -- "$old"
		done
	[[ -e $f ]] || (umask 077; : >"$f")
	(( IS_ROOT )) && chown www-data:www-data -- "$f"
	chmod 0600 -- "$f"
}

# pool_listening SOCK: the pool's socket is there: SOCK, or on a worker
# host its TCP address listening.
pool_listening() {
	if [[ $ROLE == worker ]]; then
		if command -v ss >/dev/null; then
			[[ -n $(ss -ltnH "src $WORKER_LISTEN" 2>/dev/null) ]]
		else
			(exec 3<>"/dev/tcp/${WORKER_LISTEN%:*}/${WORKER_LISTEN##*:}") 2>/dev/null
		fi
	else
		[[ -S $1 ]]
	fi
}

# pool_start GEN N: start a pool of N workers on fcgi.GEN.sock (on a worker
# host: on WORKER_LISTEN, TCP); returns once all N workers run.
pool_start() {
	local gen=$1 n=$2 sock bin pid deadline kids opts
	sock=$(pool_sock "$gen")
	# A leftover of an interrupted run with this generation goes first.
	if pool_pid "$gen" >/dev/null; then pool_retire "$gen"; fi
	rm -f -- "$sock"
	bin=$(exec_path "$WORKER_BIN")
	metrics_file
	if [[ $ROLE == worker ]]; then
		# spawn-fcgi binds the address itself (SO_REUSEADDR, no
		# SO_REUSEPORT: one pool at a time holds it).
		opts=(-n -a "${WORKER_LISTEN%:*}" -p "${WORKER_LISTEN##*:}" -d "$RUN_DIR")
		sock="tcp:$WORKER_LISTEN"
	else
		opts=(-n -s "$sock" -M 0600 -d "$RUN_DIR")
	fi
	(( IS_ROOT )) && opts+=(-U www-data -G www-data -u www-data -g www-data)
	pool_env
	# setsid: own session, so nothing aimed at our terminal reaches the
	# pool.  spawn-fcgi -n binds the socket, puts it on fd 0 and execs
	# multiwatch, so $! is multiwatch's pid.  -r 10 -t 1000: a worker
	# that dies within a second of its start is retried at most 10 times.
	# On SIGTERM multiwatch sends each worker its "graceful" signal (the
	# worker finishes its request and leaves) and exits when all have; a
	# second SIGTERM is passed on as SIGTERM.
	# No "-s TERM": Debian 12's multiwatch 1.0.0 turns the name into the
	# wrong number (-s TERM sends SIGQUIT, which kills a worker mid-request;
	# -s INT sends SIGHUP ...).  Its default, SIGUSR1, is right: libfcgi
	# itself takes SIGUSR1 as "stop after this request", like SIGTERM.
	env -i "${POOL_ENV[@]}" setsid spawn-fcgi "${opts[@]}" -- \
		/usr/bin/multiwatch -f "$n" -r 10 -t 1000 -- "$bin" \
		>>"$LOG_DIR/workers.log" 2>&1 </dev/null 9>&- &
	pid=$!
	write_file "$RUN_DIR/pool.$gen.pid" "$pid"
	deadline=$(( SECONDS + START_TIMEOUT ))
	while (( SECONDS < deadline )); do
		if proc_alive "$pid" multiwatch && pool_listening "$sock"; then
			kids=$(proc_children "$pid" | wc -l)
			(( kids == n )) && break
		fi
		if ! any_alive "$pid"; then
			tail -n 20 "$LOG_DIR/workers.log" >&2 || true
			die "the worker pool did not start (log: $LOG_DIR/workers.log)"
		fi
		sleep 0.1
	done
	if ! proc_alive "$pid" multiwatch || ! pool_listening "$sock" || (( $(proc_children "$pid" | wc -l) != n )); then
		tail -n 20 "$LOG_DIR/workers.log" >&2 || true
		pool_retire "$gen"
		die "the worker pool did not come up with $n workers (log: $LOG_DIR/workers.log)"
	fi
	msg "pool: started (pid $pid, $n workers, $sock)"
}

# pool_retire GEN: stop that pool gracefully, once its queue has drained,
# and remove its socket.
pool_retire() {
	local gen=$1 pid kids
	pid=$(read_file "$RUN_DIR/pool.$gen.pid")
	if proc_alive "$pid" multiwatch; then
		pool_drain "$gen"
		kids=$(proc_children "$pid")
		msg "pool: stopping generation $gen (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		# shellcheck disable=SC2086
		if ! wait_gone 5 "$pid" $kids; then
			# A worker serves the connections nginx kept to it
			# until nginx closes them (2 idle seconds, 100 requests;
			# 10 s at most: cgi-src/serve.c). multiwatch passes a
			# second SIGTERM on as SIGTERM; the worker (or another
			# program run as the pool) takes it as the first.
			kill -TERM "$pid" 2>/dev/null || true
			# shellcheck disable=SC2086
			if ! wait_gone $(( STOP_TIMEOUT - 5 )) "$pid" $kids; then
				warn "pool: still running after ${STOP_TIMEOUT}s; SIGKILL"
				# shellcheck disable=SC2086
				kill -KILL "$pid" $kids 2>/dev/null || true
				# shellcheck disable=SC2086
				wait_gone 5 "$pid" $kids || warn "pool: pid $pid survived SIGKILL"
			fi
		fi
	fi
	rm -f -- "$(pool_sock "$gen")" "$RUN_DIR/pool.$gen.pid"
}

# pool_retire_all [KEEP]: stop every pool but generation KEEP.
pool_retire_all() {
	local f gen keep=${1-}
	for f in "$RUN_DIR"/pool.*.pid; do
		[[ -e $f ]] || continue
		gen=${f##*/pool.}; gen=${gen%.pid}
		[[ $gen =~ ^[0-9]+$ ]] || continue
		[[ $gen == "$keep" ]] && continue
		pool_retire "$gen"
	done
}

# ---------------------------------------------------------------- invalidator

# The invalidator (cgi-src/invalidator.c) LISTENs for what the triggers of
# sql/triggers.sql announce and drops the cache entries that writes made
# outside the service made stale.  multiwatch keeps one running and starts
# it again when it dies, as it does for the workers; RUN_DIR/invalidator.pid
# names that multiwatch.  Same environment and user as the workers; its own
# log.  "scale" leaves it alone.  INVALIDATOR_BIN: see resolve_settings.

# watch_pid PIDFILE: the multiwatch PIDFILE names, when it runs;
# watch_child PIDFILE: the one process it keeps running (the invalidator,
# the TLS tunnel).
watch_pid() {
	local pid
	pid=$(read_file "$1")
	proc_alive "$pid" multiwatch && printf '%s' "$pid"
}

watch_child() {
	local watch kid
	watch=$(watch_pid "$1") || return 1
	kid=$(proc_children "$watch" | head -n 1)
	[[ -n $kid ]] && printf '%s' "$kid"
}

invalidator_watch_pid() { watch_pid "$INVALIDATOR_PIDFILE"; }
invalidator_pid() { watch_child "$INVALIDATOR_PIDFILE"; }

# invalidator_db_url: INV_DB, the invalidator's DATABASE_URL when it is not
# the workers': DATABASE_DIRECT_URL, as the pool got it (POOL_EXTRA).
invalidator_db_url() {
	local e
	INV_DB=()
	for e in ${POOL_EXTRA[@]+"${POOL_EXTRA[@]}"}; do
		[[ $e == DATABASE_DIRECT_URL=?* ]] && INV_DB=("DATABASE_URL=${e#*=}")
	done
	return 0
}

# invalidator_start: start it unless it runs; returns once it does.  Uses
# POOL_EXTRA (LOG_LEVEL & co.), as the pool got it.
invalidator_start() {
	local pid kid bin out deadline runas=()
	if pid=$(invalidator_watch_pid); then
		msg "invalidator: running (pid $(invalidator_pid || printf '%s' "$pid"))"
		return 0
	fi
	pool_env
	# LISTEN needs a session of its own: behind a pooler in transaction
	# mode (DATABASE_POOL_MODE), Postgres itself, DATABASE_DIRECT_URL.
	invalidator_db_url
	if ! out=$(env -i "${POOL_ENV[@]}" ${INV_DB[@]+"${INV_DB[@]}"} "$INVALIDATOR_BIN" --check 2>&1); then
		printf '%s\n' "$out" >&2
		die "$INVALIDATOR_BIN --check failed: not starting the invalidator"
	fi
	bin=$(exec_path "$INVALIDATOR_BIN")
	(( IS_ROOT )) && runas=(setpriv --reuid=www-data --regid=www-data --init-groups --)
	# As the pool's: own session, a clean environment, from / (which
	# www-data can enter).  setsid and setpriv exec, so $! is multiwatch.
	# -r 10 -t 1000: a child that dies within a second of its start is
	# tried again at most 10 times.  Its default stop signal, SIGUSR1, is
	# one the invalidator takes as "stop" (no -s: see pool_start).
	(cd / && exec env -i "${POOL_ENV[@]}" ${INV_DB[@]+"${INV_DB[@]}"} setsid ${runas[@]+"${runas[@]}"} \
		/usr/bin/multiwatch -f 1 -r 10 -t 1000 -- "$bin") \
		>>"$LOG_DIR/invalidator.log" 2>&1 </dev/null 9>&- &
	pid=$!
	write_file "$INVALIDATOR_PIDFILE" "$pid"
	deadline=$(( SECONDS + START_TIMEOUT ))
	while (( SECONDS < deadline )); do
		kid=$(invalidator_pid) && break
		if ! any_alive "$pid"; then
			tail -n 20 "$LOG_DIR/invalidator.log" >&2 || true
			die "the invalidator did not start (log: $LOG_DIR/invalidator.log)"
		fi
		sleep 0.1
	done
	kid=$(invalidator_pid) || {
		tail -n 20 "$LOG_DIR/invalidator.log" >&2 || true
		invalidator_stop
		die "the invalidator did not come up (log: $LOG_DIR/invalidator.log)"
	}
	msg "invalidator: started (pid $kid)"
}

invalidator_stop() {
	local pid
	pid=$(read_file "$INVALIDATOR_PIDFILE")
	# multiwatch passes TERM on as USR1; the invalidator leaves its loop
	# within a second (its longest wait).
	stop_proc invalidator "$pid" multiwatch TERM
	rm -f -- "$INVALIDATOR_PIDFILE"
}

# ---------------------------------------------------------------- TLS to Redis

# REDIS_URL=rediss://[user:password@]host:port[/db] (a managed Redis):
# Debian 12's hiredis has no TLS, so the workers and the invalidator reach
# it through a local stunnel in client mode.  They connect in plain text to
# 127.0.0.1:TUNNEL_PORT (loopback only; Redis still asks for the password),
# and stunnel to host:port over TLS, checking the server's certificate
# against REDIS_TLS_CA (default: the system's CAs) and that it names host
# (checkHost, or checkIP for an address).  multiwatch keeps stunnel
# running, as it does the invalidator; RUN_DIR/tunnel.pid names that
# multiwatch.

is_tls_redis() { [[ $REDIS_URL == rediss://* ]]; }

# tls_redis_target: "host port" of REDIS_URL (rediss://).
tls_redis_target() {
	local rest=${REDIS_URL#rediss://}
	rest=${rest##*@}
	rest=${rest%%/*}
	[[ $rest =~ ^([A-Za-z0-9.-]+):([1-9][0-9]{0,4})$ ]] ||
		die "REDIS_URL: rediss://[user:password@]host:port[/db] expected (host:port: $rest)"
	printf '%s %s' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
}

# worker_redis_url: REDIS_URL as the workers use it: the local Redis over
# its Unix socket when it has one (redis_sockdir), as the same user; for
# rediss://, the same user, password and db through the tunnel.
worker_redis_url() {
	local sock
	if [[ $REDIS_URL == "$(local_redis_url)" ]] && sock=$(redis_socket); then
		printf 'unix://orders@%s?password=%s&db=0' "$sock" "$S_REDIS_APP_PASSWORD"
		return 0
	fi
	if ! is_tls_redis; then
		printf '%s' "$REDIS_URL"
		return 0
	fi
	local rest=${REDIS_URL#rediss://} auth='' path=''
	[[ $rest == *@* ]] && auth=${rest%@*}@ && rest=${rest##*@}
	[[ $rest == */* ]] && path=/${rest#*/}
	printf 'redis://%s127.0.0.1:%s%s' "$auth" "$S_TUNNEL_PORT" "$path"
}

tunnel_watch_pid() { watch_pid "$RUN_DIR/tunnel.pid"; }
tunnel_pid() { watch_child "$RUN_DIR/tunnel.pid"; }

# tunnel_start: the stunnel of a rediss:// REDIS_URL, unless it runs;
# returns once it accepts connections.
tunnel_start() {
	local host port ca check pid deadline runas=() conf=$RUN_DIR/stunnel.conf
	is_tls_redis || return 0
	if pid=$(tunnel_pid); then
		msg "tunnel: running (pid $pid, 127.0.0.1:$S_TUNNEL_PORT to ${REDIS_URL##*@})"
		return 0
	fi
	command -v stunnel4 >/dev/null || die "REDIS_URL is rediss:// and stunnel4 is missing: ./deploy.sh deps"
	host=$(tls_redis_target)
	port=${host#* } host=${host% *}
	ca=${REDIS_TLS_CA:-/etc/ssl/certs/ca-certificates.crt}
	[[ -r $ca ]] || die "REDIS_TLS_CA: cannot read $ca"
	# stunnel runs as www-data, who may not reach the caller's file
	cp -- "$ca" "$RUN_DIR/redis-ca.pem"
	chmod 0644 "$RUN_DIR/redis-ca.pem"
	if [[ $host =~ $IPV4_RE ]]; then
		check=("checkIP = $host")
	else
		check=("checkHost = $host" "sni = $host")
	fi
	write_file "$conf" \
		"; written by deploy.sh: the TLS tunnel to REDIS_URL's Redis" \
		"foreground = yes" "pid =" "syslog = no" "debug = notice" \
		"[redis]" "client = yes" \
		"accept = 127.0.0.1:$S_TUNNEL_PORT" "connect = $host:$port" \
		"verifyChain = yes" "CAfile = $RUN_DIR/redis-ca.pem" "${check[@]}" \
		"TIMEOUTconnect = 5"
	chmod 0644 "$conf"
	(( IS_ROOT )) && runas=(setpriv --reuid=www-data --regid=www-data --init-groups --)
	(cd / && exec env -i PATH=/usr/bin:/bin setsid ${runas[@]+"${runas[@]}"} \
		/usr/bin/multiwatch -f 1 -r 10 -t 1000 -- /usr/bin/stunnel4 "$conf") \
		>>"$LOG_DIR/tunnel.log" 2>&1 </dev/null 9>&- &
	pid=$!
	write_file "$RUN_DIR/tunnel.pid" "$pid"
	deadline=$(( SECONDS + START_TIMEOUT ))
	while (( SECONDS < deadline )); do
		tunnel_pid >/dev/null && port_in_use "$S_TUNNEL_PORT" && break
		any_alive "$pid" || break
		sleep 0.1
	done
	if ! tunnel_pid >/dev/null || ! port_in_use "$S_TUNNEL_PORT"; then
		tail -n 20 "$LOG_DIR/tunnel.log" >&2 || true
		tunnel_stop
		die "the TLS tunnel to Redis did not start (log: $LOG_DIR/tunnel.log)"
	fi
	msg "tunnel: started (pid $(tunnel_pid), 127.0.0.1:$S_TUNNEL_PORT to $host:$port over TLS)"
}

# tunnel_stop: multiwatch passes a first TERM on as USR1, which stunnel
# takes as "reopen the log"; the second is passed on as TERM.
tunnel_stop() {
	local pid kids
	pid=$(tunnel_watch_pid) || { rm -f -- "$RUN_DIR/tunnel.pid"; return 0; }
	kids=$(proc_children "$pid")
	msg "tunnel: stopping (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	sleep 0.2
	kill -TERM "$pid" 2>/dev/null || true
	# shellcheck disable=SC2086
	if ! wait_gone "$STOP_TIMEOUT" "$pid" $kids; then
		# shellcheck disable=SC2086
		kill -KILL "$pid" $kids 2>/dev/null || true
	fi
	rm -f -- "$RUN_DIR/tunnel.pid"
}

# ---------------------------------------------------------------- nginx

nginx_pid() {
	local pid
	pid=$(read_file "$NGINX_PID")
	proc_alive "$pid" nginx && printf '%s' "$pid"
}

nginx_cmd() { nginx -p "$NGINX_DIR/" -c "$NGINX_CONF" -e "$LOG_DIR/nginx-error.log" "$@"; }

# nginx_upstream SOCK: the upstream block of nginx/orders.conf.in, on one
# line: the local pool's socket SOCK, or on an edge the worker hosts.
# nginx keeps up to 64 idle connections to the local pool and closes each
# after 100 requests or 2 idle seconds: so a retired pool, which serves
# the connections it holds until nginx closes them, is done within moments
# (cgi-src/serve.c).  64, as many as one address may have requests in
# flight (limit_conn): with 32, a load of 64 connections had nginx close
# and open connections all the time, and came 2 to 7% slower with a p99
# a millisecond higher (cache hits, turn about, 8 rounds of 5 s).
nginx_upstream() {
	local h line='upstream orders_pool {'
	if [[ $ROLE == edge ]]; then
		line+=' least_conn;'
		for h in $WORKER_HOSTS; do
			line+=" server $h max_fails=$UPSTREAM_MAX_FAILS fail_timeout=${UPSTREAM_FAIL_TIMEOUT}s;"
		done
	else
		line+=" server unix:$1; keepalive 64; keepalive_requests 100;"
		line+=" keepalive_timeout 2s;"
	fi
	printf '%s }' "$line"
}

# limit_exempt_lines: the geo entries of RATE_LIMIT_EXEMPT, on one line.
limit_exempt_lines() {
	local a line=''
	for a in ${RATE_LIMIT_EXEMPT//,/ }; do line+="$a 1; "; done
	printf '%s' "$line"
}

# nginx_conf_text SOCK: the template, filled in.
nginx_conf_text() {
	local user_line='' keep_conn='fastcgi_keep_conn on;'
	(( IS_ROOT )) && user_line='user www-data;'
	[[ $ROLE == edge ]] && keep_conn=''
	sed -e "s|@LISTEN@|$LISTEN_ADDR:$PORT|g" \
		-e "s|@UPSTREAM@|$(nginx_upstream "$1")|g" \
		-e "s|@RUN_DIR@|$RUN_DIR|g" \
		-e "s|@LOG_DIR@|$LOG_DIR|g" \
		-e "s|@USER_LINE@|$user_line|g" \
		-e "s|@LIMIT_EXEMPT@|$(limit_exempt_lines)|g" \
		-e "s|@KEEP_CONN@|$keep_conn|g" \
		-e "s|@PID@|$NGINX_PID|g" \
		"$REPO/nginx/orders.conf.in"
}

# STATUS_FILES: the status page (GET /status), which nginx serves itself.
STATUS_FILES=(status.html status.css status.js)

# status_files_copy: nginx/status.* to RUN_DIR/www, where nginx's worker can
# read them (as root it is www-data, and the repository may be under a 0700
# /root).  nginx reads them at each request: a changed file is served at
# once, without a reload.  Each is replaced by a rename, so a request never
# reads half of one.
status_files_copy() {
	local f dir=$RUN_DIR/www
	mkdir -p "$dir"
	chmod 0755 "$dir"
	for f in "${STATUS_FILES[@]}"; do
		cmp -s "$REPO/nginx/$f" "$dir/$f" && continue
		cp -- "$REPO/nginx/$f" "$dir/.$f.new"
		chmod 0644 "$dir/.$f.new"
		mv -f "$dir/.$f.new" "$dir/$f"
	done
}

# nginx_refresh: a running nginx takes the template's configuration when
# it differs from the one it runs (nginx/orders.conf.in changed, or an
# nginx of an older deploy.sh): nginx -t, then a graceful reload.  Returns
# 1, the running configuration untouched, when nginx refuses it.
nginx_refresh() {
	status_files_copy
	cmp -s <(nginx_conf_text "$(pool_link)") "$NGINX_CONF" && return 0
	nginx_render "$(pool_link)" || return 1	# nginx -t: no; nothing moved
	if nginx_reload; then
		msg "nginx: configuration changed, reloaded"
		return 0
	fi
	[[ -f $NGINX_CONF.prev ]] && mv -f "$NGINX_CONF.prev" "$NGINX_CONF"
	return 1
}

# nginx_render SOCK: write nginx.conf for that socket, checked with nginx -t
# before it replaces the current one (returns 1 when nginx -t says no).  The
# previous one is kept as nginx.conf.prev for a rollback.
nginx_render() {
	local sock=$1 tmp=$NGINX_CONF.new
	status_files_copy
	nginx_conf_text "$sock" >"$tmp"
	if ! nginx -q -t -p "$NGINX_DIR/" -c "$tmp" -e "$LOG_DIR/nginx-error.log"; then
		warn "nginx -t rejects the configuration (kept in $tmp)"
		return 1
	fi
	[[ -f $NGINX_CONF ]] && cp -p "$NGINX_CONF" "$NGINX_CONF.prev"
	mv -f "$tmp" "$NGINX_CONF"
}

nginx_start() {
	local pid deadline
	# nginx forks into the background; the daemon writes the pid file.
	if ! nginx_cmd 9>&-; then
		tail -n 5 "$LOG_DIR/nginx-error.log" >&2 || true
		die "nginx did not start (log: $LOG_DIR/nginx-error.log)"
	fi
	deadline=$(( SECONDS + START_TIMEOUT ))
	while (( SECONDS < deadline )); do
		pid=$(nginx_pid) && (exec 3<>"/dev/tcp/$LISTEN_ADDR/$PORT") 2>/dev/null && break
		sleep 0.1
	done
	pid=$(nginx_pid) || die "nginx: no live master after ${START_TIMEOUT}s (log: $LOG_DIR/nginx-error.log)"
	msg "nginx: started (pid $pid, http://127.0.0.1:$PORT/)"
}

nginx_workers() { proc_children "$1"; }

# nginx_reload: graceful reload, then wait until the workers that ran the
# old configuration have finished their requests and exited.  Returns 1
# when nginx did not take the new configuration (no new workers appeared).
nginx_reload() {
	local master old new w deadline fresh=0
	master=$(nginx_pid) || return 1
	old=$(nginx_workers "$master" | tr '\n' ' ')
	nginx_cmd -s reload
	# On SIGHUP the master starts new workers on the new configuration and
	# asks the old ones to finish gracefully.  Tracking the old pids
	# ("worker process is shutting down" in ps) tells when they are gone.
	deadline=$(( SECONDS + DRAIN_TIMEOUT ))
	while (( SECONDS < deadline )); do
		if (( ! fresh )); then
			new=$(nginx_workers "$master")
			for w in $new; do
				[[ " $old " == *" $w "* ]] || fresh=1
			done
		fi
		# shellcheck disable=SC2086
		if (( fresh )) && ! any_alive $old; then
			return 0
		fi
		sleep 0.1
	done
	(( fresh )) || return 1
	warn "nginx: old workers still busy after ${DRAIN_TIMEOUT}s; going on"
	return 0
}

# point_nginx_at GEN: the running nginx moves to pool GEN: the link moves.
# An nginx whose configuration is not the template's (an older deploy.sh's
# named a pool's socket itself) takes it with a graceful reload; when it
# refuses it, the link moves back, pool GEN is retired, and we stop there.
point_nginx_at() {
	local gen=$1 old
	old=$(pool_gen)
	pool_switch "$gen"
	nginx_refresh && return 0
	pool_switch "$old"
	pool_retire "$gen"
	die "nginx did not take the configuration for pool generation $gen (log: $LOG_DIR/nginx-error.log); nothing changed"
}

nginx_stop() {
	local pid
	pid=$(read_file "$NGINX_PID")
	# QUIT: graceful, requests in hand are answered first.
	stop_proc nginx "$pid" nginx QUIT
}

# ---------------------------------------------------------------- settings

# resolve_settings: every setting from the environment, else the env file,
# else the default.  Also decides local or external for Postgres and Redis.
resolve_settings() {
	PORT=${PORT:-${F_PORT:-8080}}
	CACHE_TTL=${CACHE_TTL:-${F_CACHE_TTL:-60}}
	CACHE_PREFIX=${CACHE_PREFIX:-${F_CACHE_PREFIX:-orders:}}
	ORDERS_ROWS=${ORDERS_ROWS:-12000}
	WORKERS=${WORKERS:-$(read_file "$STATE_DIR/workers" 6)}
	WORKER_BIN=${WORKER_BIN:-$REPO/build/orders-worker}
	[[ $WORKER_BIN == /* ]] || WORKER_BIN=$REPO/$WORKER_BIN
	INVALIDATOR_BIN=${INVALIDATOR_BIN:-$REPO/build/orders-invalidator}
	[[ $INVALIDATOR_BIN == /* ]] || INVALIDATOR_BIN=$REPO/$INVALIDATOR_BIN
	[[ $PORT =~ ^[1-9][0-9]{0,4}$ ]] && (( PORT < 65536 )) || die "PORT must be a port number: $PORT"
	[[ $CACHE_TTL =~ ^[1-9][0-9]*$ ]] || die "CACHE_TTL must be a positive integer: $CACHE_TTL"
	# It is also the key pattern of the service's Redis user (redis_acl).
	[[ $CACHE_PREFIX =~ ^[A-Za-z0-9:_./-]{0,64}$ ]] ||
		die "CACHE_PREFIX may hold letters, digits and : _ . / - (64 at most): $CACHE_PREFIX"
	[[ $ORDERS_ROWS =~ ^(0|[1-9][0-9]*)$ ]] || die "ORDERS_ROWS must be an integer: $ORDERS_ROWS"
	[[ $WORKERS =~ ^[1-9][0-9]*$ ]] && (( WORKERS >= 1 && WORKERS <= 256 )) || die "WORKERS must be 1..256: $WORKERS"

	DATABASE_URL=${DATABASE_URL:-$F_DATABASE_URL}
	if [[ -z $DATABASE_URL ]] || { [[ -n $S_PG_PASSWORD ]] && is_local_db_url "$DATABASE_URL"; }; then
		DB_MODE=local
	else
		DB_MODE=external
	fi
	REDIS_URL=${REDIS_URL:-$F_REDIS_URL}
	if [[ -z $REDIS_URL ]] || is_local_redis_url "$REDIS_URL"; then
		REDIS_MODE=local
	else
		REDIS_MODE=external
	fi
}

# resolve_role: ROLE, the part of a deployment this STATE_DIR runs: the one
# asked for (worker, edge; "" for up), else the one it was deployed as,
# else all (everything on this machine).  A STATE_DIR keeps its role.
resolve_role() {
	local asked=$1
	ROLE=${asked:-${S_ROLE:-all}}
	[[ -z $S_ROLE || $S_ROLE == "$ROLE" ]] ||
		die "$STATE_DIR runs the $S_ROLE role, not $ROLE: use another STATE_DIR (or ./deploy.sh stop and remove it)"
}

# IPv4 address, and address:port (a host name is fine where nginx resolves it).
IPV4_RE='^([0-9]{1,3}\.){3}[0-9]{1,3}$'
HOSTPORT_RE='^[A-Za-z0-9.-]+:[1-9][0-9]{0,4}$'

# resolve_role_settings: the settings only a role has (usage, above),
# from the environment, else the env file, else the default; checked.
resolve_role_settings() {
	local h a hosts=()
	LISTEN_ADDR=${LISTEN_ADDR:-${F_LISTEN_ADDR:-127.0.0.1}}
	[[ $LISTEN_ADDR =~ $IPV4_RE ]] || die "LISTEN_ADDR must be an IPv4 address: $LISTEN_ADDR"
	RATE_LIMIT_EXEMPT=${RATE_LIMIT_EXEMPT:-$F_RATE_LIMIT_EXEMPT}
	for a in ${RATE_LIMIT_EXEMPT//,/ }; do
		[[ $a =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}(/[0-9]{1,2})?$ ]] ||
			die "RATE_LIMIT_EXEMPT: not an IPv4 address or CIDR: $a"
	done
	case $ROLE in
	worker)
		[[ $DB_MODE == external && $REDIS_MODE == external ]] ||
			die "worker: DATABASE_URL and REDIS_URL must name the deployment's shared Postgres and Redis"
		WORKER_LISTEN=${WORKER_LISTEN:-${F_WORKER_LISTEN:-127.0.0.1:9000}}
		[[ ${WORKER_LISTEN%:*} =~ $IPV4_RE && $WORKER_LISTEN =~ $HOSTPORT_RE ]] ||
			die "WORKER_LISTEN must be IPv4-address:port: $WORKER_LISTEN"
		EDGE_ADDRS=${EDGE_ADDRS:-${F_EDGE_ADDRS:-127.0.0.1}}
		for a in ${EDGE_ADDRS//,/ }; do
			[[ $a =~ $IPV4_RE ]] || die "EDGE_ADDRS: not an IPv4 address: $a"
		done
		;;
	edge)
		WORKER_HOSTS=${WORKER_HOSTS:-$F_WORKER_HOSTS}
		for h in ${WORKER_HOSTS//,/ }; do
			[[ $h =~ $HOSTPORT_RE ]] || die "WORKER_HOSTS: not host:port: $h"
			hosts+=("$h")
		done
		(( ${#hosts[@]} > 0 )) || die "edge: WORKER_HOSTS must name the worker hosts (address:port ...)"
		WORKER_HOSTS=${hosts[*]}
		UPSTREAM_MAX_FAILS=${UPSTREAM_MAX_FAILS:-${F_UPSTREAM_MAX_FAILS:-2}}
		UPSTREAM_FAIL_TIMEOUT=${UPSTREAM_FAIL_TIMEOUT:-${F_UPSTREAM_FAIL_TIMEOUT:-5}}
		[[ $UPSTREAM_MAX_FAILS =~ ^[1-9][0-9]{0,2}$ ]] || die "UPSTREAM_MAX_FAILS must be 1..999: $UPSTREAM_MAX_FAILS"
		[[ $UPSTREAM_FAIL_TIMEOUT =~ ^[1-9][0-9]{0,3}$ ]] || die "UPSTREAM_FAIL_TIMEOUT must be seconds, 1..9999: $UPSTREAM_FAIL_TIMEOUT"
		;;
	esac
	# What the role does not use is not kept in the env file.
	[[ $ROLE == worker ]] || WORKER_LISTEN='' EDGE_ADDRS=''
	[[ $ROLE == edge ]] || WORKER_HOSTS='' UPSTREAM_MAX_FAILS='' UPSTREAM_FAIL_TIMEOUT=''
}

# ensure_local_credentials: ports and passwords for the local servers,
# made once (the caller saves them in deploy.state).
ensure_local_credentials() {
	if [[ $DB_MODE == local && -z $S_PG_PASSWORD ]]; then
		S_PG_PASSWORD=$(randhex)
		S_PG_PORT=$(pick_port "$PORT" "$S_REDIS_PORT")
	fi
	if [[ $REDIS_MODE == local && -z $S_REDIS_PASSWORD ]]; then
		S_REDIS_PASSWORD=$(randhex)
		S_REDIS_PORT=$(pick_port "$PORT" "$S_PG_PORT")
	fi
	if [[ $REDIS_MODE == local && -z $S_REDIS_APP_PASSWORD ]]; then
		S_REDIS_APP_PASSWORD=$(randhex)
	fi
	if [[ $REDIS_URL == rediss://* && -z $S_TUNNEL_PORT ]]; then
		S_TUNNEL_PORT=$(pick_port "$PORT" "$S_PG_PORT" "$S_REDIS_PORT")
	fi
	[[ $DB_MODE == local ]] && DATABASE_URL=$(local_db_url)
	REDIS_ADMIN_URL=''
	if [[ $REDIS_MODE == local ]]; then
		REDIS_URL=$(local_redis_url)
		REDIS_ADMIN_URL=$(local_redis_admin_url)
	fi
	S_DB_MODE=$DB_MODE
	S_REDIS_MODE=$REDIS_MODE
}

# refuse_running_changes: a running pool or nginx keeps the settings it was
# started with; a rerun that asks for others must stop first.
refuse_running_changes() {
	local what=()
	if { pool_pid >/dev/null || invalidator_watch_pid >/dev/null; } && [[ -f $ENV_FILE ]]; then
		[[ $DATABASE_URL == "$F_DATABASE_URL" ]] || what+=(DATABASE_URL)
		if [[ $REDIS_URL != "$F_REDIS_URL" ]]; then
			# A pool of an older deploy.sh uses the local Redis as its
			# administrator; the next pool (restart, scale) gets the
			# service's own user.
			if [[ $REDIS_MODE == local && $F_REDIS_URL == "$(local_redis_admin_url)" ]]; then
				warn "the running pool uses Redis as its administrator: ./deploy.sh restart gives it the service's own user"
			else
				what+=(REDIS_URL)
			fi
		fi
		[[ $CACHE_TTL == "$F_CACHE_TTL" ]] || what+=(CACHE_TTL)
		[[ $CACHE_PREFIX == "$F_CACHE_PREFIX" ]] || what+=(CACHE_PREFIX)
	fi
	if nginx_pid >/dev/null && [[ -n $F_PORT && $PORT != "$F_PORT" ]]; then
		what+=(PORT)
	fi
	(( ${#what[@]} == 0 )) ||
		die "running with other ${what[*]} than asked (see $ENV_FILE); ./deploy.sh stop first"
}

# ---------------------------------------------------------------- commands

build() {
	if [[ -f $REPO/Makefile ]]; then
		msg "build: make -s"
		make -s -C "$REPO" || die "build failed (make -s)"
	elif [[ $WORKER_BIN != "$REPO/build/orders-worker" ]]; then
		msg "build: no Makefile; using WORKER_BIN=$WORKER_BIN as it is"
	else
		die "no Makefile in $REPO: cannot build build/orders-worker"
	fi
	[[ -x $WORKER_BIN ]] || die "no executable worker at $WORKER_BIN"
	[[ -x $INVALIDATOR_BIN ]] || die "no executable invalidator at $INVALIDATOR_BIN"
}

# leftovers_stop: servers that a deploy of this STATE_DIR left running
# when its state went (the directory removed without ./deploy.sh stop,
# say), stopped: their pid files are in RUN_DIR, which is named after
# STATE_DIR's path (/run/orders-ID) and outlives it, but their ports and
# passwords went with the state. (Its Postgres cluster, also outside it,
# keeps its orders: see pg_adopt.)
leftovers_stop() {
	local any='' f
	for f in "$RUN_DIR"/*.pid "$NGINX_PID"; do
		[[ -e $f ]] && any=1
	done
	[[ -n $any ]] || return 0
	msg "STATE_DIR $STATE_DIR has no state: stopping what an earlier deploy of it left running"
	servers_stop
}

# cmd_up [ROLE]: ./deploy.sh (all), ./deploy.sh worker, ./deploy.sh edge.
cmd_up() {
	local pid new_gen=''
	cmd_deps
	setup_paths 1
	mkdir -p "$LOG_DIR"
	lock_state
	FRESH_STATE=0
	[[ -e $STATE_FILE ]] || FRESH_STATE=1
	load_state
	resolve_role "${1-}"
	resolve_settings
	resolve_role_settings
	[[ $ROLE == edge ]] || build
	setup_run_dir 1
	(( FRESH_STATE )) && leftovers_stop
	if [[ $ROLE == edge ]]; then
		# nginx alone: no Postgres, Redis or pool of its own
		DB_MODE=none REDIS_MODE=none DATABASE_URL='' REDIS_URL='' REDIS_ADMIN_URL=''
		S_DB_MODE=none S_REDIS_MODE=none
	else
		ensure_local_credentials
	fi
	S_ROLE=$ROLE
	refuse_running_changes
	save_state

	if [[ $ROLE == edge ]]; then
		write_env_file
	else
		up_backend
	fi
	if [[ $ROLE == worker ]]; then
		print_summary
		return 0
	fi

	# nginx: start it, or point the running one at a new pool.
	if pid=$(nginx_pid); then
		if [[ -n $new_gen ]]; then
			point_nginx_at "$new_gen"
			msg "nginx: running (pid $pid), now on pool generation $new_gen"
		else
			msg "nginx: running (pid $pid)"
			nginx_refresh || warn "nginx: kept its running configuration (nginx -t refused the new one)"
		fi
	else
		[[ $ROLE == edge ]] || pool_switch "${new_gen:-$(pool_gen)}"
		nginx_render "$(pool_link)" || die "not starting nginx"
		nginx_start
	fi
	# Pools of other generations (an interrupted scale) serve nobody now.
	[[ $ROLE == edge ]] || pool_retire_all "$(pool_gen)"

	print_summary
}

# up_backend: Postgres and Redis (local ones started, external ones
# checked), the pool and the invalidator; sets new_gen (cmd_up's) when it
# started a new pool generation.
up_backend() {
	local pid gen cur_workers
	if [[ $DB_MODE == local ]]; then
		setup_pg_paths 1
		pg_adopt
		pg_init
		pg_start
		pg_load_local
		pg_triggers_local
	else
		msg "postgres: external (DATABASE_URL is not the local one: not starting Postgres)"
		pg_load_external
		pg_triggers_external
	fi
	if [[ $REDIS_MODE == local ]]; then
		redis_start
	else
		msg "redis: external (REDIS_URL is not the local one: not starting Redis)"
		tunnel_start
	fi
	write_env_file

	# The pool: keep a running one, else start a new generation.
	gen=$(pool_gen)
	if pid=$(pool_pid "$gen"); then
		cur_workers=$(read_file "$STATE_DIR/workers" "$WORKERS")
		msg "pool: running (pid $pid, $cur_workers workers)"
		[[ $cur_workers == "$WORKERS" ]] ||
			warn "pool runs $cur_workers workers, WORKERS=$WORKERS: use ./deploy.sh scale $WORKERS"
		new_gen=''
		worker_extra_saved
	else
		worker_extra_from_env
		worker_check
		new_gen=$(( gen + 1 ))
		pool_start "$new_gen" "$WORKERS"
		write_file "$STATE_DIR/workers" "$WORKERS"
	fi
	invalidator_start
	# A worker host has no nginx to switch: its pool is the current one.
	if [[ $ROLE == worker && -n $new_gen ]]; then
		write_file "$STATE_DIR/pool.gen" "$new_gen"
		pool_retire_all "$new_gen"
	fi
}

print_summary() {
	local url=http://$LISTEN_ADDR:$PORT
	if [[ $ROLE == worker ]]; then
		cat <<-EOF

		orders worker host: FastCGI on $WORKER_LISTEN, for the edges at $EDGE_ADDRS

		  on the edge: WORKER_HOSTS="$WORKER_LISTEN ..." ./deploy.sh edge
		  . $ENV_FILE        # DATABASE_URL, REDIS_URL, ... in your shell
		  ./deploy.sh status | ./deploy.sh scale N | ./deploy.sh stop
		  logs: $LOG_DIR/
		EOF
		return 0
	fi
	if [[ $ROLE == edge ]]; then
		cat <<-EOF

		orders service (edge): $url/ over the worker hosts $WORKER_HOSTS

		  curl -s $url/orders/count
		  status page: $url/status (the figures of the worker host that answers)
		  ./deploy.sh status | ./deploy.sh stop
		  logs: $LOG_DIR/
		EOF
		return 0
	fi
	cat <<-EOF

	orders service: $url/

	  . $ENV_FILE        # DATABASE_URL, REDIS_URL, PORT, ... in your shell
	  curl -s $url/orders/count
	  curl -s -X POST $url/orders -H 'Content-Type: application/json' -d '{"customerid": 42, "netamount": 12.5, "tax": 1.03}'
	  psql "\$DATABASE_URL" -c 'SELECT count(*) FROM orders'
	  redis-cli --no-auth-warning -u "\$REDIS_ADMIN_URL" --scan --pattern '${CACHE_PREFIX}*'
	  redis-cli --no-auth-warning -u "\$REDIS_ADMIN_URL" TTL ${CACHE_PREFIX}count:all

	  status page: $url/status (live figures from /metrics and /healthz)
	  ./deploy.sh status | ./deploy.sh scale N | ./deploy.sh stop
	  logs: $LOG_DIR/
	EOF
}

cmd_stop() {
	setup_paths 0 || { msg "nothing to stop: no $(state_dir_path)"; return 0; }
	lock_state
	setup_run_dir 0
	servers_stop
	pg_stop
	msg "stopped"
}

# servers_stop: all but Postgres, by their pid files in RUN_DIR. Front to
# back: nginx answers what it holds, then the workers finish.
servers_stop() {
	nginx_stop
	pool_retire_all
	rm -f -- "$(pool_link)"
	invalidator_stop
	tunnel_stop
	redis_stop
}

cmd_status() {
	local ok=0 pid kid db_mode=local redis_mode=local want_workers
	if ! setup_paths 0; then
		printf '%s - stopped\n' postgres redis nginx pool invalidator
		return 1
	fi
	load_state
	setup_run_dir 0
	[[ -n $S_DB_MODE ]] && db_mode=$S_DB_MODE
	[[ -n $S_REDIS_MODE ]] && redis_mode=$S_REDIS_MODE
	ROLE=${S_ROLE:-all}

	# An edge runs nginx alone, a worker host everything but nginx.
	if [[ $ROLE == edge ]]; then
		if pid=$(nginx_pid); then
			echo "nginx $pid running"
			return 0
		fi
		echo "nginx - stopped"
		return 1
	fi
	if [[ $db_mode == external ]]; then
		echo "postgres - external"
	elif setup_pg_paths 0 && pid=$(pg_pid); then
		echo "postgres $pid running"
	else
		echo "postgres - stopped"; ok=1
	fi
	if [[ $redis_mode == external ]]; then
		echo "redis - external"
		if [[ -f $RUN_DIR/stunnel.conf ]]; then
			if pid=$(tunnel_pid); then echo "tunnel $pid running"; else echo "tunnel - stopped"; ok=1; fi
		fi
	elif pid=$(redis_pid); then
		echo "redis $pid running"
	else
		echo "redis - stopped"; ok=1
	fi
	if [[ $ROLE == worker ]]; then
		:
	elif pid=$(nginx_pid); then
		echo "nginx $pid running"
	else
		echo "nginx - stopped"; ok=1
	fi
	if pid=$(pool_pid); then
		echo "pool $pid running"
		want_workers=$(read_file "$STATE_DIR/workers" 0)
		local n=0
		for kid in $(proc_children "$pid"); do
			echo "worker $kid running"
			n=$(( n + 1 ))
		done
		(( n == want_workers )) || ok=1
	else
		echo "pool - stopped"; ok=1
	fi
	if pid=$(invalidator_pid); then
		echo "invalidator $pid running"
	elif invalidator_watch_pid >/dev/null; then
		# multiwatch runs, its child died and is not back yet
		echo "invalidator - restarting"; ok=1
	else
		echo "invalidator - stopped"; ok=1
	fi
	return "$ok"
}

cmd_scale() {
	local n=${1-} old_gen new_gen
	[[ $n =~ ^[1-9][0-9]*$ ]] && (( n >= 1 && n <= 256 )) || die "usage: ./deploy.sh scale N (1..256)"
	setup_paths 0 || die "not deployed (no $(state_dir_path)): run ./deploy.sh first"
	lock_state
	load_state
	WORKERS=$n
	resolve_role ""
	[[ $ROLE != edge ]] || die "scale: an edge has no pool; scale its worker hosts"
	resolve_settings
	[[ $ROLE == worker ]] && DB_MODE=external REDIS_MODE=external
	resolve_role_settings
	setup_run_dir 0
	if [[ $ROLE == worker ]]; then
		scale_worker_host "$n"
		return 0
	fi
	if [[ ! -f $ENV_FILE ]] || ! nginx_pid >/dev/null || ! pool_pid >/dev/null; then
		write_file "$STATE_DIR/workers" "$n"
		msg "scale: the service is not running; $n workers from the next ./deploy.sh"
		return 0
	fi
	# The pool runs with what the env file says, and so will the new one.
	DATABASE_URL=$F_DATABASE_URL REDIS_URL=$F_REDIS_URL
	CACHE_TTL=$F_CACHE_TTL CACHE_PREFIX=$F_CACHE_PREFIX PORT=$F_PORT

	# Blue/green: the new pool listens on a new socket before the link
	# nginx connects through moves to it; the old pool serves what reached
	# it before, its accept queue drains, and only then is it retired.  No
	# request meets a closed socket, and nginx is not even reloaded.
	old_gen=$(pool_gen)
	new_gen=$(( old_gen + 1 ))
	worker_extra_saved
	worker_check
	pool_start "$new_gen" "$n"
	point_nginx_at "$new_gen"
	write_file "$STATE_DIR/workers" "$n"
	pool_retire "$old_gen"
	msg "scale: $n workers (pool generation $new_gen)"
}

# scale_worker_host N: a worker host's pool holds its TCP address alone, so
# the old pool goes before the new one starts: for that moment the edges
# send this host's requests to the others (a refused connection is retried
# on the next worker host, whatever the method: nothing was sent).
scale_worker_host() {
	local n=$1 old_gen new_gen
	if [[ ! -f $ENV_FILE ]] || ! pool_pid >/dev/null; then
		write_file "$STATE_DIR/workers" "$n"
		msg "scale: the pool is not running; $n workers from the next ./deploy.sh worker"
		return 0
	fi
	DATABASE_URL=$F_DATABASE_URL REDIS_URL=$F_REDIS_URL
	CACHE_TTL=$F_CACHE_TTL CACHE_PREFIX=$F_CACHE_PREFIX
	old_gen=$(pool_gen)
	new_gen=$(( old_gen + 1 ))
	worker_extra_saved
	worker_check
	pool_retire "$old_gen"
	pool_start "$new_gen" "$n"
	write_file "$STATE_DIR/pool.gen" "$new_gen"
	write_file "$STATE_DIR/workers" "$n"
	msg "scale: $n workers (pool generation $new_gen, $WORKER_LISTEN)"
}

# cmd_restart: a rolling restart, e.g. onto a rebuilt worker: a new pool of
# as many workers takes over as "scale" does, dropping no request; then the
# invalidator is restarted (its full invalidation at start covers the gap).
cmd_restart() {
	local n
	setup_paths 0 || die "not deployed (no $(state_dir_path)): run ./deploy.sh first"
	n=$(read_file "$STATE_DIR/workers" 6)
	[[ $n =~ ^[1-9][0-9]*$ ]] || n=6
	cmd_scale "$n"
	[[ ${S_ROLE:-all} == worker ]] || nginx_pid >/dev/null || return 0
	pool_pid >/dev/null || return 0
	invalidator_stop
	invalidator_start
	msg "restart: done"
}

usage() {
	sed -n '3,30p' "$REPO/deploy.sh" | sed 's/^# \{0,1\}//'
}

# sched_batch: this script's scheduling policy, which everything it starts
# inherits across fork and exec (Postgres, Redis, nginx, the pool and the
# invalidator; a server already running keeps its own): SCHED_BATCH unless
# SCHED_BATCH=0.  Same share of the CPU as SCHED_OTHER, at the same nice;
# the difference is that a SCHED_BATCH process that wakes up does not
# preempt the one running, it waits until that one blocks or its slice
# ends.  A request here is a relay through four or five processes (nginx,
# a worker, Redis, Postgres), each of which runs some tens of microseconds
# and then blocks on the next: with wakeup preemption each handoff can cost
# a context switch more, and on 2 cores in a virtual machine a switch costs
# about what a cache hit's own work does.  Turn about on one stack (README,
# "Scheduling"), the whole stack SCHED_BATCH against SCHED_OTHER: hits 23%
# and misses 12% more a second, p99 alike.
sched_batch() {
	case ${SCHED_BATCH:-1} in
	1) chrt --batch --pid 0 $$ 2>/dev/null ||
		warn "SCHED_BATCH: chrt could not set it; the stack runs SCHED_OTHER" ;;
	0) chrt --other --pid 0 $$ 2>/dev/null || true ;;
	*) die "SCHED_BATCH=${SCHED_BATCH}: 1 or 0" ;;
	esac
}

main() {
	local cmd=${1:-up}
	[[ $# -gt 0 ]] && shift
	sched_batch
	case $cmd in
	up)     cmd_up "" "$@" ;;
	worker|edge) cmd_up "$cmd" "$@" ;;
	stop)   cmd_stop ;;
	status) cmd_status ;;
	scale)  cmd_scale "$@" ;;
	restart) cmd_restart ;;
	deps)   cmd_deps "$@" ;;
	-h|--help|help) usage ;;
	*) usage >&2; exit 2 ;;
	esac
}

main "$@"
