#!/usr/bin/env bash
# The benchmark cannot rot: run it at a smoke size (2,000 events, one repetition, the
# concurrent writers for 3 s) against the test cluster and check that it ran and printed
# every figure line. No timing checks; the bench itself fails (exit 1) when two contenders
# of a figure disagree.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(BENCH_EXISTING=1 BENCH_N=2000 BENCH_REPS=1 BENCH_MEMORY_N=2000 BENCH_SCALING=1 BENCH_PLPGSQL_COPY=1 \
	BENCH_SCALING_N=4000 BENCH_CONC_SECONDS=3 BENCH_DB=meter_bench_smoke_$$ scripts/bench.sh 2>&1) || {
	echo "$out"; echo "bench.sh failed"; exit 1; }
echo "$out"
status=0
for f in ingest_100_vs_20_meters ingest_100_vs_20_meters_same_matches ingest_expression_vs_field \
	ingest_batch_vs_plain ingest_copy_vs_plain ingest_batch_vs_plpgsql ingest_copy_vs_plpgsql rollup_size \
	match_filter_vs_sql matching_meters_vs_join \
	usage_largest_sum usage_largest_count_unique usage_median_sum usage_median_count_unique \
	usage_all_sum usage_all_count_unique \
	usage_by_customer_sum usage_by_customer_vs_loop_sum \
	usage_by_customer_count_unique usage_by_customer_vs_loop_count_unique \
	usage_by_group_largest_sum usage_by_group_all_sum \
	aggregate_sum_vs_builtin aggregate_parallel_speedup \
	usage_pending_largest_sum usage_pending_largest_count_unique \
	usage_pending_all_sum usage_pending_all_count_unique concurrent_writers \
	memory_copy_growth memory_copy_vs_plain \
	usage_scaling_largest_sum usage_scaling_largest_count_unique \
	usage_scaling_all_sum usage_scaling_all_count_unique; do
	# A here-string, not a pipe: grep -q exits at the first match and, under pipefail,
	# the writer's SIGPIPE would read as a missing line.
	if ! grep -qE "^$f: .* \(target .*\) (ok|MISS|info)  \[" <<<"$out"; then
		echo "missing figure line: $f"; status=1
	fi
done
grep -q '^WARNING' <<<"$out" && { echo "the contenders disagree"; status=1; }
exit $status
