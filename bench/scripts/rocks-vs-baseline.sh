#!/usr/bin/env bash
# RocksStorage against omnipaxos_storage's PersistentStorage, on this machine, in one go.
#
# Builds and runs the same workloads (`bench/workloads`, crate `paxstore-workloads`) on both
# backends and prints each ratio next to the bar of issue 4. The two backends run alternately, ROUNDS
# times (baseline first in odd rounds, RocksStorage first in even ones); each figure is the
# median over the rounds of the median time of one call within a round (for throughput
# workloads timed as a whole, the median over the rounds of the throughput). Ratios, not
# absolute numbers, are what to compare: these machines are shared and noisy.
#
#   bench/scripts/rocks-vs-baseline.sh              # the issue's sizes (1M-entry log), 3 rounds
#   bench/scripts/rocks-vs-baseline.sh --rounds 5   # more rounds
#   bench/scripts/rocks-vs-baseline.sh --quick      # small sizes, to check that everything runs
#
# Environment:
#   PAXSTORE_BENCH_DIR             where the stores are created (default: the system temporary
#                                  directory; must be a real disk, fsync matters)
#   PAXSTORE_BASELINE_TARGET_DIR   target directory of the baseline build (default:
#                                  target/baseline; the baseline builds RocksDB 0.21's C++,
#                                  which must not share a target directory with the workspace)
#   PAXSTORE_RESULTS_DIR           where the raw RESULT lines are kept (default: target/bench)
set -euo pipefail
cd "$(dirname "$0")/../.."

mode=()
rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) mode=(--quick) ;;
        --rounds) rounds="$2"; shift ;;
        *) echo "usage: $0 [--quick] [--rounds N]" >&2; exit 2 ;;
    esac
    shift
done
baseline_target="${PAXSTORE_BASELINE_TARGET_DIR:-$PWD/target/baseline}"
results="${PAXSTORE_RESULTS_DIR:-$PWD/target/bench}"
mkdir -p "$results"
# where cargo puts the workspace's build (the runner below), as cargo itself decides it
target="${CARGO_TARGET_DIR:-$PWD/target}"

echo "building the RocksStorage workloads (release)..." >&2
cargo build --quiet --release -p paxstore-bench --features rocks --example rocks_workloads
echo "building the baseline (release, own target directory)..." >&2
(cd bench/baseline && CARGO_TARGET_DIR="$baseline_target" cargo build --quiet --release --locked)

run_baseline() {
    echo "round $1: baseline..." >&2
    "$baseline_target/release/paxstore-baseline" "${mode[@]}" | sed "s/^RESULT /RESULT round=$1 /"
}
run_rocks() {
    echo "round $1: RocksStorage..." >&2
    "$target/release/examples/rocks_workloads" "${mode[@]}" | sed "s/^RESULT /RESULT round=$1 /"
}
: > "$results/all.txt"
for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then
        run_baseline "$r" >> "$results/all.txt"
        run_rocks "$r" >> "$results/all.txt"
    else
        run_rocks "$r" >> "$results/all.txt"
        run_baseline "$r" >> "$results/all.txt"
    fi
done
echo "raw results: $results/all.txt" >&2
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end, $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "rounds: $rounds; per-call figures are medians (mean in brackets: total time / calls)"
echo

awk '
function field(line, key,    n, i, kv, parts) {
    n = split(line, parts, " ")
    for (i = 1; i <= n; i++) {
        split(parts[i], kv, "=")
        if (kv[1] == key) return kv[2]
    }
    return ""
}
function add(arr, k, v) { arr[k, ++arr[k, "n"]] = v }
# median of the values recorded under k
function median(arr, k,    n, i, j, t, v) {
    n = arr[k, "n"] + 0
    if (n == 0) return ""
    for (i = 1; i <= n; i++) v[i] = arr[k, i] + 0
    for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
    return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
/^RESULT / {
    w = field($0, "workload")
    k = field($0, "backend") ":" w
    ops = field($0, "ops"); nanos = field($0, "nanos")
    if (ops > 0) {
        add(med, k, field($0, "median_nanos"))
        add(mean, k, nanos / ops)
        add(rate, k, field($0, "elements") * 1e9 / nanos)
    }
    add(bytes, k, field($0, "bytes"))
    if (w ~ /^trim_[0-9]+$/) trim = w
}
function us(ns) { return ns == "" ? "n/a" : (ns < 1000 ? sprintf("%.1f ns", ns) : sprintf("%.1f us", ns / 1000)) }
function row(what, base, ours, ratio, bar, ok) {
    printf "%-46s %22s %22s %9s  %-8s %s\n", what, base, ours, ratio, bar, ok
}
function verdict(ratio, bar, at_most) {
    if (ratio == "") return "n/a"
    if (at_most) return ratio + 0 <= bar ? "MET" : "MISSED"
    return ratio + 0 >= bar ? "MET" : "MISSED"
}
# speed-up of rocks over the baseline on the median time of one call
function speedup(w, bar, label,    b, r, x) {
    b = median(med, "baseline:" w); r = median(med, "rocks:" w)
    x = (b > 0 && r > 0) ? sprintf("%.2f", b / r) : ""
    row(label, us(b) " [" us(median(mean, "baseline:" w)) "]",
        us(r) " [" us(median(mean, "rocks:" w)) "]", x "x",
        bar == "" ? "-" : ">= " bar "x", bar == "" ? "" : verdict(x, bar, 0))
}
END {
    printf "%-46s %22s %22s %9s  %-8s %s\n", "workload (time per call)", "baseline", "rocks", "ratio", "bar", ""
    speedup("durable_append", "1.0", "durable append, 64 x 128 B")
    speedup(trim, "1.0", "trim of " substr(trim, 6) " entries")
    speedup("read_windows_trimmed", "5", "get_entries 64-window, 90% of 1M trimmed")
    speedup("get_log_len", "100", "get_log_len")
    speedup("get_compacted_idx", "100", "get_compacted_idx")
    ub = median(bytes, "baseline:disk_untrimmed"); tb = median(bytes, "baseline:disk_trimmed")
    ur = median(bytes, "rocks:disk_untrimmed"); tr = median(bytes, "rocks:disk_trimmed")
    fb = ub > 0 ? sprintf("%.1f%%", 100 * tb / ub) : "n/a"
    fr = ur > 0 ? sprintf("%.3f", tr / ur) : ""
    row("disk after trimming 90% of 1M + reclaim", fb, (fr == "" ? "n/a" : sprintf("%.1f%%", 100 * fr)), "", "<= 25%", verdict(fr, 0.25, 1))
    printf "    (bytes: baseline %d -> %d, rocks %d -> %d)\n", ub, tb, ur, tr
    b1 = median(rate, "rocks:parallel_append_1"); b8 = median(rate, "rocks:parallel_append_8")
    x = (b1 > 0) ? sprintf("%.2f", b8 / b1) : ""
    row("8 threads x 8 logs vs 1 x 1 (rocks, entries/s)", sprintf("%.0f", b1), sprintf("%.0f", b8), x "x", ">= 3x", verdict(x, 3, 0))
    c1 = median(rate, "baseline:parallel_append_1"); c8 = median(rate, "baseline:parallel_append_8")
    if (c1 > 0) printf "    (baseline, eight databases: %.0f -> %.0f entries/s, %.2fx)\n", c1, c8, c8 / c1
    print ""
    print "no bar (for information):"
    speedup("snapshot_truncate", "", "snapshot-plus-truncate, 1 MiB snapshot")
    speedup("reopen", "", "reopen of a 1M-entry log")
    speedup("read_windows_full", "", "get_entries 64-window, untrimmed 1M log")
    speedup("trim_steps", "", "trim steps of 10,000 (90 steps)")
    speedup("trim_half", "", "trim of half a 200,000-entry log")
    speedup("reopen_half_trimmed", "", "reopen of a half-trimmed 200,000-entry log")
    printf "reclaim after the 90%% trim (rocks only, off the trim path): %.1f ms\n", median(med, "rocks:reclaim") / 1e6
}' "$results/all.txt"
