// The human report (a few tables on stdout) and the machine report (--json FILE) of a run.
// Both carry the same numbers: throughput per phase, latency p50/p90/p99/p99.9/max per operation
// type (microseconds in JSON, milliseconds in text), outcome counts by status and error code with
// insufficient-funds rejections apart from failures, and the verification summary.
#pragma once

#include <cstdio>
#include <string>

#include "bench/bench_run.h"

namespace wallex::bench {

void print_report(std::FILE* out, const BenchReport& report);
std::string report_json(const BenchReport& report);

}  // namespace wallex::bench
