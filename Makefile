# AgentProvision build.  `make` builds ./agentprov; `make run` starts the
# platform; `make test` runs every test; `make bench` runs the benchmarks.
# GNU Make + pkg-config, C17, warnings are errors.

CC      ?= cc
MAKEFLAGS += --no-print-directory
PKGS    := libmicrohttpd jansson sqlite3 libpq libsodium libcurl
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
CFLAGS_COMMON := -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wvla \
                 -Wno-missing-field-initializers -Isrc -Ibuild/gen \
                 $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

REL_CFLAGS  := $(CFLAGS_COMMON) -O2 -g -MMD -MP
SAN_FLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
TEST_CFLAGS := $(CFLAGS_COMMON) -O1 -g $(SAN_FLAGS) -DAP_TESTING -MMD -MP

LIB_SRC  := $(filter-out src/main.c,$(shell find src -name '*.c' | sort))
MIGS     := $(sort $(wildcard src/store/migrations/*.sql))
GEN      := build/gen/migrations.c

REL_OBJ  := $(patsubst src/%.c,build/rel/%.o,$(LIB_SRC)) build/rel/gen/migrations.o build/rel/gen/version.o
TEST_OBJ := $(patsubst src/%.c,build/asan/%.o,$(LIB_SRC)) build/asan/gen/migrations.o build/asan/gen/version.o

UNIT_SRC   := $(sort $(wildcard tests/unit/*_test.c))
UNIT_BINS  := $(patsubst tests/unit/%.c,build/asan/tests/%,$(UNIT_SRC))
FUZZ_SRC   := $(sort $(wildcard tests/fuzz/*_fuzz.c))

-include $(REL_OBJ:.o=.d) $(TEST_OBJ:.o=.d)

.PHONY: FORCE all run test deps test-deps unit e2e bench bench-vec fuzz lint clean

all: agentprov

$(GEN): $(MIGS) scripts/embed-sql.sh
	@mkdir -p $(dir $@)
	bash scripts/embed-sql.sh src/store/migrations $@

build/rel/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -c $< -o $@

# The version lives in one generated file, rewritten only when it changes,
# so every object of a build agrees on it.
build/gen/version.c: FORCE
	@mkdir -p $(dir $@)
	@v='const char ap_version[] = "$(VERSION)";'; \
	  [ "$$(cat $@ 2>/dev/null)" = "$$v" ] || echo "$$v" >$@

build/rel/gen/version.o: build/gen/version.c
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -c $< -o $@

build/asan/gen/version.o: build/gen/version.c
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -c $< -o $@

build/rel/gen/migrations.o: $(GEN)
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -c $< -o $@

build/asan/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -c $< -o $@

build/asan/gen/migrations.o: $(GEN)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -c $< -o $@

agentprov: $(REL_OBJ) src/main.c
	$(CC) $(REL_CFLAGS) src/main.c $(REL_OBJ) -o $@ $(LDLIBS)

build/asan/agentprov: $(TEST_OBJ) src/main.c
	$(CC) $(TEST_CFLAGS) src/main.c $(TEST_OBJ) -o $@ $(LDLIBS)

build/asan/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(TEST_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -Itests/unit $< $(TEST_OBJ) -o $@ $(LDLIBS) -lcmocka

# The fake LLM upstream for tests and benchmarks (tests/fake/README.md):
# release flags, a few core objects, no server code.
FAKE_OBJ := build/rel/core/alloc.o build/rel/core/buf.o build/rel/core/crypto.o
build/fake-upstream: tests/fake/fake_upstream.c tests/fake/fake_wire.c tests/fake/fake_wire.h $(FAKE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) $(filter %.c,$^) $(FAKE_OBJ) -o $@ $(LDLIBS)

# The task runner benchmark (bench/tasks.sh): release flags, the library objects.
build/bench/tasks_bench: bench/tasks/tasks_bench.c $(REL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) $< $(REL_OBJ) -o $@ $(LDLIBS)

# The memory index's graph path against its scan, in process (bench/memory/blend.sh).
build/bench/mem_blend_bench: bench/memory/blend_bench.c $(REL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) $< $(REL_OBJ) -o $@ $(LDLIBS)

# The hot tier's latency with many conversations (bench/memory/hot.sh).
build/bench/mem_hot_bench: bench/memory/hot_bench.c $(REL_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) $< $(REL_OBJ) -o $@ $(LDLIBS)

deps:
	@bash scripts/deps.sh --build-only

test-deps:
	@bash scripts/deps.sh

# Starts the platform: embedded SQLite under ./var on 127.0.0.1:8080.
run: deps
	@$(MAKE) --no-print-directory agentprov
	./agentprov serve --listen 127.0.0.1:8080 --data-dir ./var

# Every test, on both backends, under ASan/UBSan.  scripts/test.sh starts
# the private PostgreSQL it needs and stops it.
test: test-deps
	@$(MAKE) --no-print-directory build/asan/agentprov $(UNIT_BINS) agentprov build/fake-upstream
	bash scripts/test.sh $(UNIT_BINS)

unit: $(UNIT_BINS)
	@for t in $(UNIT_BINS); do $$t || exit 1; done

fuzz:
	bash scripts/fuzz.sh $(FUZZ_SRC)

bench: test-deps agentprov
	bash bench/run.sh

# The vector index against hnswlib alone (make bench runs it too, unless
# BENCH_SKIP_VEC=1); writes the "Vector index" section of bench/RESULTS.md.
bench-vec:
	bash bench/vec/run.sh

clean:
	rm -rf build agentprov
