# Front door. `make run` builds and serves on :3000 with data in ./data; `make test` builds and
# runs every test. Both install missing Debian packages first (scripts/install-deps.sh).
.PHONY: deps build run test test-asan test-tsan format clean bench

PRESET ?= release
JOBS ?= 2

deps:
	@scripts/install-deps.sh

build: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS)

run: build
	build/release/bin/wallex serve --port $${PORT:-3000} --data-dir ./data

test: build
	ctest --preset release -j 1

test-asan: deps
	cmake --preset asan
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j 1

test-tsan: deps
	cmake --preset tsan
	cmake --build --preset tsan -j $(JOBS)
	ctest --preset tsan -j 1

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf build

# The benchmark: a release server on a temp data dir, the same-run GET /health ceiling and the
# scenarios (see scripts/bench.sh, BENCHMARKS.md).
bench: build
	scripts/bench.sh
