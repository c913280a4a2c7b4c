#!/usr/bin/env bash
# The many-logs figures of issue 12, from one run on this machine: ROUNDS rounds (default 5),
# each running the files runner (FilesStore and FilesStorage: parallel_append_1/_8, open of
# 1,000 logs x 100 entries and of 1 log x 100,000) and the RocksDB runner (parallel_append_1/_8)
# back to back, so that the ratios compare figures taken minutes apart on the same disk.
# Prints every RESULT line, then the per-round ratios and their medians.
#
#   bash bench/scripts/many-logs.sh [ROUNDS]
#
# PAXSTORE_BENCH_DIR: where the stores go (default /var/tmp; a real disk, not tmpfs).
set -euo pipefail
rounds="${1:-5}"
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p paxstore-bench --features rocks --example files_workloads --example rocks_workloads >&2
export PAXSTORE_BENCH_DIR="${PAXSTORE_BENCH_DIR:-/var/tmp}"
out=$(mktemp)
for r in $(seq 1 "$rounds"); do
    PAXSTORE_BENCH_ONLY_MANY=1 "$target/release/examples/files_workloads" 2>/dev/null | sed "s/^/round=$r /" | tee -a "$out"
    "$target/release/examples/rocks_workloads" --only parallel 2>/dev/null | sed "s/^/round=$r /" | tee -a "$out"
done
awk '
function rate(k) { return ops[k] / nanos[k] * 1e9 }
{
    split($1, a, "="); r = a[2]
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    k = r ":" f["backend"] ":" f["workload"]
    ops[k] = f["ops"]; nanos[k] = f["nanos"]; rounds[r] = 1
}
function median(arr, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
    return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
}
END {
    n = 0
    for (r in rounds) {
        n++
        m1 = rate(r ":files-multi:parallel_append_1"); m8 = rate(r ":files-multi:parallel_append_8")
        s1 = rate(r ":files:parallel_append_1"); s8 = rate(r ":files:parallel_append_8")
        k8 = rate(r ":rocks:parallel_append_8")
        o1000 = nanos[r ":files-multi:open_logs_1000x100"]; o1 = nanos[r ":files-multi:open_logs_1x100000"]
        a[n] = m8 / m1; b[n] = m8 / k8; c[n] = m1 / s1; d[n] = o1000 / o1; e[n] = m8; g[n] = k8; h[n] = s8 / s1
        printf "round %s: store 8x8 %.0f/s, 1 log %.0f/s (%.2fx); FilesStorage 1 %.0f/s, 8 dirs %.0f/s (%.2fx); rocks 8x8 %.0f/s; store/rocks 8x8 %.2fx; store 1 log / FilesStorage %.2fx; open 1000x100 / 1x100000 = %.2fx\n", r, m8, m1, a[n], s1, s8, h[n], k8, b[n], c[n], d[n]
    }
    printf "MEDIAN over %d rounds: store 8x8 / store 1 log = %.2fx (bar >= 4); store 8x8 / rocks 8x8 = %.2fx (bar >= 1.5); store 1 log / FilesStorage = %.2fx (bar >= 0.9); open 1000x100 / 1x100000 = %.2fx (bar <= 2); FilesStorage 8 dirs / 1 = %.2fx; store 8x8 %.0f/s; rocks 8x8 %.0f/s\n", n, median(a, n), median(b, n), median(c, n), median(d, n), median(h, n), median(e, n), median(g, n)
}' "$out"
rm -f "$out"
