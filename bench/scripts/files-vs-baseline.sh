#!/usr/bin/env bash
# FilesStorage against omnipaxos_storage's PersistentStorage (RocksDB 0.21), on this machine,
# in one go: the same workloads (`bench/workloads`, crate `paxstore-workloads`) on both, then
# each ratio next to the bar of the segment-file issue. Ratios, not absolute numbers, are what
# to compare: these machines are shared and noisy.
#
#   bench/scripts/files-vs-baseline.sh            # the issue's sizes (~10 minutes)
#   bench/scripts/files-vs-baseline.sh --quick    # small sizes, to check that everything runs
#
# Environment: PAXSTORE_BENCH_DIR (where stores are created), PAXSTORE_BASELINE_TARGET_DIR
# (target directory of the baseline build, default target/baseline), PAXSTORE_RESULTS_DIR
# (raw RESULT lines, default target/bench), PAXSTORE_FILES_SEGMENT_MIB (FilesStorage segment
# size, default 64), PAXSTORE_REUSE_BASELINE=1 (keep the baseline results of the last run).
set -euo pipefail
cd "$(dirname "$0")/../.."

mode=()
if [ "${1:-}" = "--quick" ]; then
    mode=(--quick)
fi
baseline_target="${PAXSTORE_BASELINE_TARGET_DIR:-$PWD/target/baseline}"
results="${PAXSTORE_RESULTS_DIR:-$PWD/target/bench}"
mkdir -p "$results"
# where cargo puts the workspace's build (the runner below), as cargo itself decides it
target="${CARGO_TARGET_DIR:-$PWD/target}"

echo "building the FilesStorage workloads (release)..." >&2
cargo build --quiet --release -p paxstore-bench --example files_workloads
echo "building the baseline (release, own target directory)..." >&2
(cd bench/baseline && CARGO_TARGET_DIR="$baseline_target" cargo build --quiet --release --locked)

if [ -n "${PAXSTORE_REUSE_BASELINE:-}" ] && [ -s "$results/baseline-for-files.txt" ]; then
    echo "reusing the baseline results of the last run ($results/baseline-for-files.txt)" >&2
else
    echo "running the baseline..." >&2
    "$baseline_target/release/paxstore-baseline" "${mode[@]}" | tee "$results/baseline-for-files.txt" >&2
fi
echo "running FilesStorage..." >&2
"$target/release/examples/files_workloads" "${mode[@]}" | tee "$results/files.txt" >&2

cat "$results/baseline-for-files.txt" "$results/files.txt" | awk '
function field(line, key,    n, i, kv) {
    n = split(line, parts, " ")
    for (i = 1; i <= n; i++) {
        split(parts[i], kv, "=")
        if (kv[1] == key) return kv[2]
    }
    return ""
}
/^RESULT / {
    k = field($0, "backend") ":" field($0, "workload")
    ops[k] = field($0, "ops"); elements[k] = field($0, "elements")
    nanos[k] = field($0, "nanos"); bytes[k] = field($0, "bytes")
    if (field($0, "workload") ~ /^trim_[0-9]+$/) trim = field($0, "workload")
}
function per_op(k) { return ops[k] > 0 ? nanos[k] / ops[k] : 0 }
function rate(k) { return nanos[k] > 0 ? elements[k] * 1e9 / nanos[k] : 0 }
function row(what, base, ours, ratio, bar, ok) {
    printf "%-48s %14s %14s %9s  %-10s %s\n", what, base, ours, ratio, bar, ok
}
function verdict(ratio, bar, at_most) {
    if (ratio == "") return "n/a"
    if (at_most) return (ratio + 0) <= (bar + 0) ? "MET" : "MISSED"
    return (ratio + 0) >= (bar + 0) ? "MET" : "MISSED"
}
# how many times faster files is than the baseline (baseline time / files time)
function speedup(w, bar, label,    b, r, x) {
    b = per_op("baseline:" w); r = per_op("files:" w)
    x = (b > 0 && r > 0) ? sprintf("%.2f", b / r) : ""
    row(label, sprintf("%.1f us", b / 1000), sprintf("%.1f us", r / 1000), x "x",
        bar == "" ? "-" : ">= " bar "x", bar == "" ? "" : verdict(x, bar, 0))
}
END {
    printf "%-48s %14s %14s %9s  %-10s %s\n", "workload (per call)", "baseline", "files", "ratio", "bar", ""
    b = rate("baseline:durable_append"); r = rate("files:durable_append")
    x = (b > 0) ? sprintf("%.2f", r / b) : ""
    row("durable append+decided, 64 x 128 B (entries/s)", sprintf("%.0f", b), sprintf("%.0f", r), x "x", ">= 1.5x", verdict(x, 1.5, 0))
    speedup("read_windows_full", "3", "random 64-entry windows (1M-entry log)")
    b = per_op("baseline:" trim); r = per_op("files:" trim)
    x = (b > 0) ? sprintf("%.2f", r / b) : ""
    row("trim of " substr(trim, 6) " entries (files time / baseline)", sprintf("%.1f us", b / 1000), sprintf("%.1f us", r / 1000), x "x", "<= 2x", verdict(x, 2, 1))
    printf "    disk before/after trimming half of the 200k log: baseline %d -> %d, files %d -> %d bytes\n", \
        bytes["baseline:disk_before_half_trim"], bytes["baseline:disk_half_trimmed"], \
        bytes["files:disk_before_half_trim"], bytes["files:disk_half_trimmed"]
    speedup("reopen_half_trimmed", "10", "reopen, 200k-entry log half trimmed")
    print ""
    print "no bar (for information):"
    speedup("snapshot_truncate", "", "snapshot-plus-truncate, 1 MiB snapshot")
    speedup("read_windows_trimmed", "", "64-entry windows after 90% trimmed")
    speedup("reopen", "", "reopen of a 1M-entry log")
    speedup("get_log_len", "", "get_log_len")
}'
