# The orders service. `make` builds the worker and the invalidator, `make
# test` runs every test against real servers, `make check` only the unit
# tests, `make fuzz` each libFuzzer target for FUZZ_SECONDS (60).
# `make asan` builds both programs again with ASan and UBSan (build/asan/).
# `make bench` measures the service against its floors (bench/run-bench.sh).

CC	?= cc
PKGS	= fcgi libpq hiredis json-c
WARN	= -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	  -Wpointer-arith -Wformat=2 -Wno-unused-parameter
ifdef USE_WERROR
WARN	+= -Werror
endif
OPT	?= -O2 -g
# The language, the libraries' headers: what every build of the code shares
# (this one, the sanitizer build, the fuzz targets).
BASE_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
	   $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -I/usr/include/postgresql
CFLAGS	+= $(OPT) $(WARN) $(BASE_CFLAGS)
LDLIBS	+= -lfcgi $(shell pkg-config --libs libpq hiredis json-c 2>/dev/null || \
	   echo -lpq -lhiredis -ljson-c)

BUILD	= build
SRC	= $(wildcard cgi-src/*.c)
# What both programs link: configuration, logging, the Redis layer, the
# caching module (with the hash it shares with ETags) and what a write
# makes stale.
COMMON	= buf valid log config breaker kv kv_url cache etag keys
# The invalidator's own: its main loop and the Postgres layer's LISTEN side.
INVALIDATOR = invalidator db_notify
# The worker: every other file (the FastCGI loop, HTTP, routing, handlers,
# the Postgres layer), so a new module of the worker joins it by existing.
WORKER	= $(filter-out $(COMMON) $(INVALIDATOR),$(SRC:cgi-src/%.c=%))
obj	= $(1:%=$(BUILD)/obj/%.o)
# Modules the unit tests link against: pure code, no servers (http.c: the
# FastCGI stream only in http_send and http_read_body, which no test calls).
PURE	= buf valid query order route cache breaker kv kv_url log config keys etag metrics \
	  http
UNIT	= $(patsubst tests/unit/%.c,$(BUILD)/%,$(wildcard tests/unit/test_*.c))

.PHONY: all check test clean deps asan fuzz fuzz-build faults soak test-cluster

all: $(BUILD)/orders-worker $(BUILD)/orders-invalidator

$(BUILD)/orders-worker: $(call obj,$(COMMON) $(WORKER))
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# It speaks neither FastCGI nor JSON.
$(BUILD)/orders-invalidator: $(call obj,$(COMMON) $(INVALIDATOR))
	$(CC) $(LDFLAGS) -o $@ $^ $(filter-out -lfcgi -ljson-c,$(LDLIBS))

$(BUILD)/obj/%.o: cgi-src/%.c $(wildcard cgi-src/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj:
	mkdir -p $@

$(BUILD)/test_%: tests/unit/test_%.c $(PURE:%=$(BUILD)/obj/%.o)
	$(CC) $(CFLAGS) -Icgi-src -o $@ $(filter-out %.h cgi-src/%.c,$^) $(LDLIBS) -lcmocka
# test_group.c includes group.c itself (its Postgres is a fake).
$(BUILD)/test_group: cgi-src/group.c cgi-src/group.h

# The payload parser is pure; its file also holds the LISTEN connection.
$(BUILD)/test_notify: $(BUILD)/obj/db_notify.o

# Unit tests: pure code, no servers.
check: $(UNIT)
	@tests/run-unit.sh $(UNIT)

# Everything: installs what is missing (as root) or says what to install,
# then the unit tests, the integration suite on real servers (against this
# build, then against the sanitizer build) and a short fuzz run (20 s per
# target, unless FUZZ_SECONDS says otherwise).
test:
	@./deploy.sh deps --check --test >/dev/null 2>&1 || ./deploy.sh deps --test
	@$(MAKE) --no-print-directory all asan fuzz-build $(UNIT)
	@tests/run-all.sh $(UNIT)

# The fault suite: Redis, Postgres and workers failing under load, with a
# table of what it measured. Minutes; not part of make test.
faults: all
	@./deploy.sh deps --check --test >/dev/null 2>&1 || ./deploy.sh deps --test
	@tests/run-integration.sh --suite faults

# The soak: one worker through 100,000 mixed requests, good and bad (its
# RSS must grow under 1 % from the 10,000th to the 100,000th), then under
# valgrind (no definite leak, no memory error). Minutes; not part of make
# test.
soak: all
	@./deploy.sh deps --check --test >/dev/null 2>&1 || ./deploy.sh deps --test
	@command -v valgrind >/dev/null || { echo "make soak needs valgrind: apt-get install valgrind" >&2; exit 1; }
	@tests/run-integration.sh --suite soak

# Several machines in network namespaces (needs root): two worker hosts, an
# edge, a Postgres primary and streaming replica, a Redis master, replica
# and three sentinels; under load through a worker host cut off, a Redis
# master killed and replay paused on the replica (tests/cluster/).
test-cluster: all
	@./deploy.sh deps --check --test >/dev/null 2>&1 || ./deploy.sh deps --test
	@tests/cluster/run-cluster.sh

deps:
	./deploy.sh deps --test

# The benchmark: builds, starts a private stack with ORDERS_ROWS (BENCH_ROWS,
# 1,000,000) orders on free loopback ports, measures the two floors
# (bench/floor.c, bench/floor-redis.c) and the service in alternation, then
# the sweeps (BENCH_SWEEPS: pool sizes 1 to 8, and 100,000 to 10,000,000
# orders, a stack each), stops everything and prints its tables
# (bench/run-bench.sh; TSV and PNG in bench/out/). Then the service and
# the tutorial's own Python app (bench/tutorial/app.py) back to back, case
# by case, and a table "service vs the tutorial app" (BENCH_TUTORIAL=0:
# without; its packages come with deps --bench). About 30 minutes;
# BENCH_SWEEPS= make bench: the main table alone, 16. It prints, it
# asserts nothing about speed.
.PHONY: bench bench-build
bench-build: $(BUILD)/floor $(BUILD)/floor-redis $(BUILD)/rss-libpq

# The floors serve through the worker's own loop (serve.c), as they must
# behind the same nginx configuration.
FLOOR_OBJ = $(BUILD)/obj/serve.o $(BUILD)/obj/log.o

$(BUILD)/floor: bench/floor.c $(FLOOR_OBJ) | $(BUILD)/obj
	$(CC) $(CFLAGS) -Icgi-src -o $@ $< $(FLOOR_OBJ) -lfcgi

$(BUILD)/rss-libpq: bench/rss-libpq.c | $(BUILD)/obj
	$(CC) $(CFLAGS) $(shell pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql) -o $@ $< $(shell pkg-config --libs libpq 2>/dev/null || echo -lpq)

$(BUILD)/floor-redis: bench/floor-redis.c $(FLOOR_OBJ) $(BUILD)/obj/kv_url.o $(BUILD)/obj/valid.o | $(BUILD)/obj
	$(CC) $(CFLAGS) -Icgi-src -o $@ $< $(FLOOR_OBJ) $(BUILD)/obj/kv_url.o $(BUILD)/obj/valid.o -lfcgi $(shell pkg-config --libs hiredis 2>/dev/null || echo -lhiredis)

BENCH_DEPS = $(if $(filter 0,$(BENCH_TUTORIAL)),--test,--bench)
bench: all bench-build
	@./deploy.sh deps --check $(BENCH_DEPS) >/dev/null 2>&1 || ./deploy.sh deps $(BENCH_DEPS)
	@bench/run-bench.sh

# ---------------------------------------------------------------- hardening

# The same worker and invalidator with AddressSanitizer and UBSan, for the
# integration suite (tests/run-integration.sh --asan). Its own objects: a
# sanitizer build must not mix with the plain one. clang, as for the fuzz
# targets: with gcc 12, UBSan's reports go to stderr, not to the log_path of
# UBSAN_OPTIONS, when ASan is linked too.
ASAN_CC	?= clang
ASAN	= $(BUILD)/asan
SAN	= -fsanitize=address,undefined -fno-omit-frame-pointer
asan_obj = $(1:%=$(ASAN)/obj/%.o)

asan: $(ASAN)/orders-worker $(ASAN)/orders-invalidator

$(ASAN)/orders-worker: $(call asan_obj,$(COMMON) $(WORKER))
	$(ASAN_CC) $(SAN) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(ASAN)/orders-invalidator: $(call asan_obj,$(COMMON) $(INVALIDATOR))
	$(ASAN_CC) $(SAN) $(LDFLAGS) -o $@ $^ $(filter-out -lfcgi -ljson-c,$(LDLIBS))

$(ASAN)/obj/%.o: cgi-src/%.c $(wildcard cgi-src/*.h) | $(ASAN)/obj
	$(ASAN_CC) $(CFLAGS) $(SAN) -c -o $@ $<

$(ASAN)/obj:
	mkdir -p $@

# libFuzzer targets (tests/fuzz/fuzz_*.c), one per parser of untrusted
# input, linked against the pure modules compiled by clang with the same
# flags. UB aborts like a memory error does (-fno-sanitize-recover).
FUZZ_CC	?= clang
FUZZ_SAN = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	   -fno-omit-frame-pointer
FUZZ_CFLAGS = -O1 -g $(WARN) $(BASE_CFLAGS) -Icgi-src $(FUZZ_SAN)
FUZZ_DIR = $(BUILD)/fuzz
FUZZ	= $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60

fuzz-build: $(FUZZ)
# Kept between runs, like the unit tests' objects.
.SECONDARY: $(PURE:%=$(FUZZ_DIR)/obj/%.o)

# Each target for FUZZ_SECONDS on a copy of its seed corpus; one TAP line
# per target, a crash's reproducer under build/fuzz/artifacts/.
fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/run-fuzz.sh $(FUZZ)

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(PURE:%=$(FUZZ_DIR)/obj/%.o)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^ $(LDLIBS)

$(FUZZ_DIR)/obj/%.o: cgi-src/%.c $(wildcard cgi-src/*.h) | $(FUZZ_DIR)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_DIR)/obj:
	mkdir -p $@

clean:
	rm -rf $(BUILD)
