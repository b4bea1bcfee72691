#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan) and runs each one for a
# bounded time on a copy of its committed seed corpus. Fails when any target finds a crash, a
# sanitizer report, a broken property (FUZZ_CHECK) or a timeout; the reproducer is then kept in
# <build-dir>/artifacts/. The main build uses g++; this script compiles only the few sources each
# target needs (no Beast, no SQLite), so it stays independent of the CMake build.
#
# Usage: tests/fuzz/run.sh [build-dir]          (default: build/fuzz)
# Environment:
#   WALLEX_FUZZ_SECONDS   seconds per target (default 20; e.g. 3600 for a long run)
#   WALLEX_FUZZ_TARGETS   space-separated subset of: money body_decoder command_decoder
#   WALLEX_FUZZ_CXX       the clang++ to use (default clang++-14, else clang++)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="$(mkdir -p "${1:-$root/build/fuzz}" && cd "${1:-$root/build/fuzz}" && pwd)"
seconds="${WALLEX_FUZZ_SECONDS:-20}"
targets=(${WALLEX_FUZZ_TARGETS:-money body_decoder command_decoder})

cxx="${WALLEX_FUZZ_CXX:-}"
if [[ -z "$cxx" ]]; then
  if command -v clang++-14 >/dev/null; then cxx=clang++-14; else cxx=clang++; fi
fi
if ! command -v "$cxx" >/dev/null; then
  echo "fuzz: $cxx not found (scripts/install-deps.sh installs clang-14)" >&2
  exit 1
fi

# The sources each target links, besides its own tests/fuzz/<target>_fuzzer.cc. common/ is
# there for WALLEX_CHECK (log.cc), which Result uses.
common=(src/common/log.cc src/common/clock.cc src/common/time_format.cc)
declare -A sources=(
  [money]="src/domain/money.cc ${common[*]}"
  [body_decoder]="src/json/body_decoder.cc src/json/json_writer.cc ${common[*]}"
  [command_decoder]="src/http/command_decoder.cc src/json/body_decoder.cc src/domain/money.cc
                     src/domain/ids.cc src/domain/errors.cc ${common[*]}"
)
declare -A libraries=([money]="" [body_decoder]="-lboost_json" [command_decoder]="-lboost_json")

flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -Wall -Wextra -Werror
       -fsanitize=address,undefined -fno-sanitize-recover=all
       -I"$root/src" -I"$here")

# Rebuild only when a compiler flag, a source or a header changed since the last build.
fingerprint="$( { echo "$cxx ${flags[*]}"; "$cxx" --version | head -1;
                  cd "$root" && find src tests/fuzz -name '*.h' -o -name '*.cc' | sort |
                  xargs cat; } | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$build/fingerprint" 2>/dev/null)" != "$fingerprint" ]]; then
  rm -f "$build/fingerprint"
  mkdir -p "$build/obj"
  declare -A compiled=()
  for target in "${targets[@]}"; do
    objects=()
    for source in ${sources[$target]}; do
      object="$build/obj/$(echo "$source" | tr / _).o"
      if [[ -z "${compiled[$source]:-}" ]]; then
        echo "fuzz: compiling $source"
        "$cxx" "${flags[@]}" -fsanitize=fuzzer-no-link -c "$root/$source" -o "$object"
        compiled[$source]=1
      fi
      objects+=("$object")
    done
    echo "fuzz: linking ${target}_fuzzer"
    "$cxx" "${flags[@]}" -fsanitize=fuzzer "$here/${target}_fuzzer.cc" "${objects[@]}" \
      ${libraries[$target]} -o "$build/${target}_fuzzer"
  done
  [[ -n "${WALLEX_FUZZ_TARGETS:-}" ]] || echo "$fingerprint" > "$build/fingerprint"
fi

# Each run starts from the committed seeds; what it discovers goes to a scratch corpus that is
# thrown away, so the repository's corpus changes only when someone commits inputs on purpose.
mkdir -p "$build/artifacts"
failed=()
summary=()
for target in "${targets[@]}"; do
  scratch="$build/corpus/$target"
  rm -rf "$scratch" && mkdir -p "$scratch"
  dictionary=()
  [[ -f "$here/dictionaries/$target.dict" ]] && dictionary=(-dict="$here/dictionaries/$target.dict")
  log="$build/$target.log"
  echo "fuzz: running ${target}_fuzzer for ${seconds}s"
  status=0
  "$build/${target}_fuzzer" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
    -rss_limit_mb=2048 -max_len=4096 "${dictionary[@]}" \
    -artifact_prefix="$build/artifacts/${target}-" "$scratch" "$here/corpus/$target" \
    >"$log" 2>&1 || status=$?
  # Either may be missing: a seed that crashes stops the run before any statistics.
  executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  coverage="$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' "$log" | tail -1)"
  summary+=("$(printf '%-16s %10s executions in %ss, coverage %s edges, exit %d' \
               "$target" "${executions:-?}" "$seconds" "${coverage:-?}" "$status")")
  if [[ $status -ne 0 || -z "$executions" ]]; then
    failed+=("$target")
    echo "fuzz: ${target}_fuzzer FAILED (exit $status); last lines of $log:" >&2
    tail -40 "$log" >&2
  fi
done

echo "fuzz summary:"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: FAILED: ${failed[*]} (reproducers in $build/artifacts/)" >&2
  exit 1
fi
