# Thin wrapper around CMake. `make demo` and `make test` are all a newcomer
# needs: both install missing Debian packages first (scripts/deps.sh).
BUILD ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_SECONDS ?= 60
CTEST_ARGS ?=
# cmake --build runs make again underneath: keep its directory lines out of the output.
MAKEFLAGS += --no-print-directory

.PHONY: all deps build test unit integration fault demo asan valgrind fuzz bench format clean

all: build

deps:
	@./scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure $(CTEST_ARGS)

unit: build
	@cd $(BUILD) && ctest --output-on-failure -L unit

integration: build
	@cd $(BUILD) && ctest --output-on-failure -L integration

# The long fault scenarios of tests/fault (network namespaces, needs root;
# about 15 minutes): the leader killed 20 times, five 30 s partitions, 5
# minutes of 10 % loss, pauses, kill-all, a full disk. The results table
# is printed and written to $(BUILD)/fault-results.md.
fault: build
	@cd tests/fault && DMKV_BIN=$(abspath $(BUILD))/dmkv DMKV_FAULT_MODE=long \
		DMKV_FAULT_RESULTS=$(abspath $(BUILD))/fault-results.md PYTHONDONTWRITEBYTECODE=1 \
		/usr/bin/python3 -m pytest -v -s -p no:cacheprovider .

demo: build
	@./scripts/demo.sh $(BUILD)/dmkv

# Unit and integration tests under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: deps
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DDMKV_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	@cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure $(CTEST_ARGS)

# Every unit test program under valgrind memcheck (leaks included); the
# suppressions cover only libraft's own uninitialised padding.
valgrind: build
	@./scripts/valgrind.sh $(BUILD)

# Each libFuzzer target runs FUZZ_SECONDS from its committed seed corpus.
fuzz: deps
	@cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DDMKV_FUZZ=ON >/dev/null
	@cmake --build $(BUILD_FUZZ) -j $(JOBS)
	@./scripts/fuzz.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

bench: build
	@./bench/single_node.sh $(BUILD)/dmkv

format:
	@clang-format -i src/*/*.[ch] src/main.c tests/unit/*.c tests/fuzz/*.c

clean:
	@rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
