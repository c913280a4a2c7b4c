#!/usr/bin/env bash
# Power loss, for real: `paxstore torture --power-loss` on a LazyFS mount, for the files and
# rocks backends, then the check that the simulation bites (a store that never syncs must lose
# acknowledged batches).
#
#   scripts/power-loss.sh [ITERATIONS]      # default 100 iterations per backend
#
# Each iteration runs a child that writes OmniPaxos-shaped batches into a fresh store on the
# mount (in the `-4-logs` jobs, into four logs of one store from four threads at once), kills
# it with SIGKILL, drops every unsynced write through LazyFS's fault FIFO (in half of the
# iterations after a reopen and close of the store) and checks that the reopened store (each
# log) holds every acknowledged batch and no half-applied one. Fails on any lost acknowledged batch,
# half-applied batch or store that will not open; prints per backend the kills, power losses,
# acknowledged batches checked and lost batches.
#
# LazyFS is a research prototype and can die under load. A dead or hung LazyFS (torture exit
# code 4, the mount gone or answering "Transport endpoint is not connected", the daemon gone)
# is not a store failure: the script shows LazyFS's log, remounts and runs the remaining
# iterations, and fails only if LazyFS dies more than PAXSTORE_LAZYFS_MAX_DEATHS times (3).
#
# Two LazyFS bugs are worked around here, in the test setup (the stores are not changed):
# - LazyFS runs single-threaded (FUSE `-s`). Its cache library reads its item maps
#   (`Cache::unlockItem`, `has_content_cached`) without a lock while another request thread
#   erases from them (`lfs_unlink` -> `remove_cached_item`) or inserts into them (a file's
#   first access), so a store that writes and syncs from one thread while another deletes
#   files (paxstore-files' background purge) crashed LazyFS (SIGSEGV/GPF in the map lookup or
#   the key's memcpy) after a few thousand power losses; helgrind shows the race. One request
#   at a time removes it (the fault thread takes the cache's exclusive lock).
# - LazyFS is built from a patched copy of its sources: `lfs_truncate` returns its `res`
#   uninitialized unless it truncated an uncached file, so an ftruncate that keeps the size or
#   shrinks a cached file fails at random with a stale errno (always, single-threaded).
#
# Environment:
#   LAZYFS_DIR                   LazyFS's sources with build.sh (default: ../shared/tools/lazyfs
#                                next to the project)
#   LAZYFS_BUILD_DIR             where LazyFS is built (default: $CARGO_TARGET_DIR/lazyfs)
#   LAZYFS_CACHE                 LazyFS's cache size (default: 256mb)
#   LAZYFS_LOG_ALL_OPERATIONS    true: LazyFS logs every file operation (large logs)
#   PAXSTORE_CI_TARGET_DIR       cargo's target directory (default: /var/tmp/paxstore-ci-target)
#   PAXSTORE_POWER_LOSS_PROFILE  dev (default) or release
#   PAXSTORE_POWER_LOSS_DIR      where the mount and its backing directory go (default:
#                                /var/tmp; must be a real disk)
#   PAXSTORE_POWER_LOSS_SEED     the first seed (default: from the clock; every run prints its
#                                seed, and `paxstore torture --seed` repeats its kill points)
#   PAXSTORE_LAZYFS_MAX_DEATHS   how many LazyFS deaths are tolerated (default: 3)
#   PAXSTORE_POWER_LOSS_LIMIT    seconds one torture run may take before it counts as hung
#                                (default: 120 + 2 per iteration)
set -euo pipefail
cd "$(dirname "$0")/.."
project="$PWD"

iterations="${1:-100}"
if ! [[ "$iterations" =~ ^[1-9][0-9]*$ ]] || [ "$#" -gt 1 ]; then
    echo "usage: $0 [ITERATIONS]" >&2
    exit 2
fi
never_iterations=60 # a store that never syncs must lose data within a few dozen power losses

export CARGO_TARGET_DIR="${PAXSTORE_CI_TARGET_DIR:-/var/tmp/paxstore-ci-target}"
lazyfs_src="${LAZYFS_DIR:-$(dirname "$project")/shared/tools/lazyfs}"
lazyfs_build="${LAZYFS_BUILD_DIR:-$CARGO_TARGET_DIR/lazyfs}"
cache="${LAZYFS_CACHE:-256mb}"
log_ops="${LAZYFS_LOG_ALL_OPERATIONS:-false}"
profile="${PAXSTORE_POWER_LOSS_PROFILE:-dev}"
max_deaths="${PAXSTORE_LAZYFS_MAX_DEATHS:-3}"
seed="${PAXSTORE_POWER_LOSS_SEED:-$(date +%s)}"

if [ ! -x "$lazyfs_src/build.sh" ]; then
    echo "power-loss: no LazyFS at $lazyfs_src (set LAZYFS_DIR)" >&2
    exit 2
fi
if [ ! -e /dev/fuse ]; then
    echo "power-loss: /dev/fuse is missing: LazyFS needs FUSE" >&2
    exit 2
fi

started=$SECONDS
# LazyFS, from a patched copy of its sources: lfs_truncate returns its `res` uninitialized
# when the size does not change or shrinks a cached file, so an ftruncate to the current size
# (paxstore-files seals a segment with set_len to its end) fails with whatever errno was left
# over (ENOENT, EPERM...) whenever the stack held -1 there; always, in single-threaded mode.
mkdir -p "$lazyfs_build"
stamp="patch-1 $(cd "$lazyfs_src" && find . -type f -not -path './.git/*' | LC_ALL=C sort |
    xargs sha256sum | sha256sum | cut -c 1-16)"
if [ ! -x "$lazyfs_build/lazyfs" ] || [ "$(cat "$lazyfs_build/stamp" 2>/dev/null)" != "$stamp" ]; then
    echo "power-loss: building LazyFS ($lazyfs_src, patched, -> $lazyfs_build)" >&2
    rm -rf "$lazyfs_build/src" "$lazyfs_build/stamp"
    cp -a "$lazyfs_src" "$lazyfs_build/src"
    sed -i '/^int LazyFS::lfs_truncate/,/^}/ s/^    int res;$/    int res = 0;/' \
        "$lazyfs_build/src/lazyfs/src/lazyfs.cpp"
    if ! sed -n '/^int LazyFS::lfs_truncate/,/^}/p' "$lazyfs_build/src/lazyfs/src/lazyfs.cpp" |
        grep -q '^    int res = 0;$'; then
        echo "power-loss: could not patch LazyFS's lfs_truncate (sources changed?)" >&2
        exit 2
    fi
    if ! bash "$lazyfs_build/src/build.sh" "$lazyfs_build" > "$lazyfs_build/build.log" 2>&1; then
        tail -n 30 "$lazyfs_build/build.log" >&2
        echo "power-loss: building LazyFS failed (log: $lazyfs_build/build.log)" >&2
        exit 2
    fi
    echo "$stamp" > "$lazyfs_build/stamp"
fi
lazyfs="$lazyfs_build/lazyfs"
case "$profile" in
    dev) build=(cargo build --all-features --bin paxstore); built="$CARGO_TARGET_DIR/debug/paxstore" ;;
    release) build=(cargo build --release --all-features --bin paxstore); built="$CARGO_TARGET_DIR/release/paxstore" ;;
    *) echo "power-loss: PAXSTORE_POWER_LOSS_PROFILE must be dev or release" >&2; exit 2 ;;
esac
base="${PAXSTORE_POWER_LOSS_DIR:-/var/tmp}"
mkdir -p "$base"
work="$(mktemp -d "$base/paxstore-power-loss.XXXXXX")"
bin="$work/paxstore"
# The binary is copied out of the shared target directory, where a build of another checkout
# can replace it at any moment; the copy must be ours (it knows --power-loss and --logs).
for try in 1 2 3; do
    echo "power-loss: building paxstore (profile $profile, all backends)" >&2
    "${build[@]}"
    cp "$built" "$bin"
    if "$bin" torture --help 2>/dev/null | grep -q -- '--power-loss' &&
        "$bin" torture --help 2>/dev/null | grep -q -- '--logs'; then
        break
    fi
    echo "power-loss: $built was replaced by another build; building again" >&2
    if [ "$try" -eq 3 ]; then
        echo "power-loss: could not get this checkout's paxstore binary" >&2
        rm -rf "$work"
        exit 2
    fi
done
mnt="$work/mnt"
root="$work/root"
fifo="$work/faults.fifo"
done_fifo="$work/done.fifo"
lazyfs_pid=""
mounts=0
log=""
failed=0

# Whether a stat of the mount point succeeds within 10 s. The probe runs in the background
# and is not waited for: on a hung FUSE daemon it would block in an uninterruptible wait.
mount_answers() {
    local flag="$work/probe.$RANDOM"
    (if stat -t "$mnt" >/dev/null 2>&1; then echo ok; else echo failed; fi > "$flag") &
    disown $!
    for _ in $(seq 1 100); do
        if [ -s "$flag" ]; then
            [ "$(cat "$flag")" = ok ] && { rm -f "$flag"; return 0; }
            rm -f "$flag"
            return 1
        fi
        sleep 0.1
    done
    return 1
}

lazyfs_ok() {
    [ -n "$lazyfs_pid" ] && kill -0 "$lazyfs_pid" 2>/dev/null &&
        grep -qs " $mnt fuse" /proc/mounts && mount_answers
}

unmount_lazyfs() {
    if grep -qs " $mnt fuse" /proc/mounts; then
        fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null ||
            umount -l "$mnt" 2>/dev/null || true
    fi
    if [ -n "$lazyfs_pid" ]; then
        # Unmounted, it exits by itself; a dead mount's or hung daemon is ended here.
        for _ in $(seq 1 50); do kill -0 "$lazyfs_pid" 2>/dev/null || break; sleep 0.1; done
        kill "$lazyfs_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$lazyfs_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$lazyfs_pid" 2>/dev/null || true
        lazyfs_pid=""
    fi
}

mount_lazyfs() {
    mounts=$((mounts + 1))
    log="$work/lazyfs-$mounts.log"
    local conf="$work/lazyfs-$mounts.toml"
    rm -rf "$root" && mkdir -p "$root" "$mnt"
    rm -f "$fifo" "$done_fifo"
    cat > "$conf" <<TOML
[faults]
fifo_path="$fifo"
fifo_path_completed="$done_fifo"
[cache]
apply_eviction=false
[cache.simple]
custom_size="$cache"
blocks_per_page=1
[filesystem]
log_all_operations=$log_ops
logfile="$log"
TOML
    # -s: one request at a time (see the top of this file).
    "$lazyfs" "$mnt" --config-path "$conf" -o allow_other -o modules=subdir \
        -o "subdir=$root" -f -s > "$log.out" 2>&1 &
    lazyfs_pid=$!
    disown "$lazyfs_pid" # it aborts on exit (an unjoined thread); no job report for that
    for _ in $(seq 1 600); do
        if grep -qs " $mnt fuse" /proc/mounts; then
            echo "power-loss: LazyFS mounted at $mnt (pid $lazyfs_pid, cache $cache, log $log)"
            return 0
        fi
        if ! kill -0 "$lazyfs_pid" 2>/dev/null; then
            echo "power-loss: LazyFS exited at start:" >&2
            tail -n 20 "$log.out" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "power-loss: LazyFS did not mount within 60 s" >&2
    return 1
}

cleanup() {
    local rc=$?
    unmount_lazyfs
    if [ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]; then
        rm -rf "$work"
    else
        echo "power-loss: kept $work (the failing store is under root/)" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

show_lazyfs_log() {
    echo "---- LazyFS log ($log), last lines:"
    tail -n 12 "$log" 2>/dev/null || true
    echo "---- LazyFS output ($log.out), last lines:"
    grep -v '^>> FTRUNCATE$' "$log.out" 2>/dev/null | tail -n 15 || true
    if dmesg >/dev/null 2>&1; then
        echo "---- kernel log (lazyfs; may include earlier runs):"
        dmesg | grep -i lazyfs | tail -n 3 || true
    fi
    echo "----"
}

# run_torture OUT LIMIT ARGS...: `paxstore torture ARGS` with its output in OUT (a file, not
# a pipe: a child stuck on a hung LazyFS would hold a pipe open) and shown as it comes. Past
# LIMIT seconds: if LazyFS no longer answers, it is killed (which aborts the FUSE connection
# and frees whatever is blocked on it); otherwise the torture is (a store that hangs).
torture_rc=0
hung=""
run_torture() {
    local out="$1" limit=$((SECONDS + $2))
    shift 2
    hung=""
    : > "$out"
    "$bin" torture "$@" > "$out" 2>&1 &
    local pid=$!
    tail -n +1 -f --pid="$pid" "$out" &
    local tail_pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -gt "$limit" ]; then
            if lazyfs_ok; then
                hung=store
                echo "power-loss: the torture overran its $2 s while LazyFS answers: stopping it"
                pkill -KILL -P "$pid" 2>/dev/null || true
                kill -KILL "$pid" 2>/dev/null || true
            else
                hung=lazyfs
                echo "power-loss: LazyFS stopped answering: killing it (pid $lazyfs_pid)"
                kill -KILL "$lazyfs_pid" 2>/dev/null || true
            fi
            break
        fi
        sleep 1
    done
    set +e
    wait "$pid"
    torture_rc=$?
    wait "$tail_pid"
    set -e
}

deaths=0
# After a failed torture run, whether the trouble was LazyFS's rather than the store's.
lazyfs_trouble() {
    local rc="$1" out="$2"
    [ "$rc" -eq 4 ] && return 0
    [ "$hung" = lazyfs ] && return 0
    [ "$hung" = store ] && return 1
    lazyfs_ok || return 0
    grep -q "Transport endpoint is not connected" "$out" && return 0
    return 1
}

field() { # field LABEL FILE: the number after "  LABEL:" in torture's summary (0 if none)
    local v
    v="$(sed -n "s/^  $1: *\([0-9][0-9]*\).*/\1/p" "$2" | tail -n 1)"
    echo "${v:-0}"
}

summary=()
jobs_run=0
# run_job NAME MODE ITERATIONS TORTURE-ARGS...
# MODE "safe": nothing may be lost; "lossy": something must be lost (`--expect-loss`).
run_job() {
    local name="$1" mode="$2" want="$3"
    shift 3
    local completed=0 kills=0 losses=0 checked=0 lost=0 half=0 unopenable=0 forgotten=0
    local attempt=0 rc
    jobs_run=$((jobs_run + 1))
    local t0=$SECONDS
    while [ "$completed" -lt "$want" ]; do
        attempt=$((attempt + 1))
        local n=$((want - completed))
        local s=$((seed + 1000 * (jobs_run - 1) + attempt - 1))
        local out="$work/$name.$attempt.out"
        local extra=()
        [ "$mode" = lossy ] && extra=(--expect-loss)
        echo
        echo "== $name: paxstore torture $* --iterations $n --seed $s ${extra[*]}"
        run_torture "$out" "${PAXSTORE_POWER_LOSS_LIMIT:-$((120 + 2 * n))}" --dir "$mnt/$name.$attempt" --iterations "$n" \
            --seed "$s" --power-loss "$fifo,$done_fifo" "${extra[@]}" "$@"
        rc=$torture_rc
        completed=$((completed + $(field iterations "$out")))
        kills=$((kills + $(field kills "$out")))
        losses=$((losses + $(field "power losses" "$out")))
        checked=$((checked + $(field "acknowledged batches checked" "$out")))
        lost=$((lost + $(field "lost acknowledged batches" "$out")))
        half=$((half + $(field "half-applied batches" "$out")))
        unopenable=$((unopenable + $(field "stores that would not open" "$out")))
        forgotten=$((forgotten + $(field "forgotten after a reopen" "$out")))
        if [ "$rc" -eq 0 ]; then
            break
        fi
        if lazyfs_trouble "$rc" "$out"; then
            deaths=$((deaths + 1))
            echo "power-loss: LazyFS died or hung during $name (torture exit code $rc), not a" \
                "store failure: death $deaths, at most $max_deaths tolerated"
            show_lazyfs_log
            unmount_lazyfs
            if [ "$deaths" -gt "$max_deaths" ]; then
                echo "power-loss: FAILED: LazyFS keeps dying ($deaths times)"
                failed=1
                summary+=("$name: LazyFS died $deaths times, gave up")
                return 1
            fi
            mount_lazyfs
            continue
        fi
        failed=1
        if [ "$hung" = store ]; then
            summary+=("$name: FAILED: the torture hung while LazyFS kept answering")
        elif [ "$mode" = lossy ]; then
            summary+=("$name: FAILED: nothing acknowledged was lost in $losses power losses; the simulation does not bite")
        else
            summary+=("$name: FAILED: kills $kills, power losses $losses, acknowledged batches checked $checked, lost $lost, half-applied $half, would not open $unopenable, forgotten after a reopen $forgotten")
        fi
        return 1
    done
    local took=$((SECONDS - t0))
    if [ "$mode" = lossy ]; then
        summary+=("$(printf '%-22s acknowledged batches lost after %d power losses, as required (%d s)' "$name:" "$losses" "$took")")
    else
        summary+=("$(printf '%-22s kills %d, power losses %d, acknowledged batches checked %d, lost %d, half-applied %d, would not open %d, forgotten after a reopen %d (%d s)' \
            "$name:" "$kills" "$losses" "$checked" "$lost" "$half" "$unopenable" "$forgotten" "$took")")
    fi
}

mount_lazyfs
status=0
run_job files safe "$iterations" --backend files || status=1
run_job files-small-segments safe "$iterations" --backend files --segment-size 262144 || status=1
run_job rocks safe "$iterations" --backend rocks || status=1
run_job files-multi safe "$iterations" --backend files-multi || status=1
# Four logs of one store written at once by four threads: the group commit's shared writes and
# syncs under power loss (each log checked against its own model).
run_job files-multi-4-logs safe "$iterations" --backend files-multi --logs 4 || status=1
run_job rocks-4-logs safe "$iterations" --backend rocks --logs 4 || status=1
run_job files-sync-never lossy "$never_iterations" --backend files --sync never || status=1
run_job rocks-sync-never lossy "$never_iterations" --backend rocks --sync never || status=1
run_job files-multi-sync-never lossy "$never_iterations" --backend files-multi --sync never || status=1
run_job files-multi-4-logs-sync-never lossy "$never_iterations" --backend files-multi --logs 4 --sync never ||
    status=1

# The conformance suite's crash tests in their power-loss mode (paxstore_core::conformance::crash):
# every persistent backend, directly and through AnyStorage, with a power cut after each kill.
# The test binaries were built by the CI test command; a LazyFS death is retried like above.
run_conformance() {
    local attempt out rc t0=$SECONDS
    for attempt in 1 2 3 4; do
        out="$work/conformance.$attempt.out"
        mkdir -p "$mnt/crash.$attempt"
        echo
        echo "== conformance crash tests in power-loss mode (attempt $attempt)"
        rc=0
        PAXSTORE_CRASH_DIR="$mnt/crash.$attempt" PAXSTORE_CRASH_LAZYFS_FIFO="$fifo" \
            PAXSTORE_CRASH_LAZYFS_DONE="$done_fifo" \
            cargo test --workspace --all-features --test conformance --test store_conformance \
            --test any_conformance -- \
            crash_sigkill --nocapture > "$out" 2>&1 || rc=$?
        grep -E '^test .*crash|crash test:|test result' "$out" || true
        if [ "$rc" -eq 0 ]; then
            local n
            n=$(grep -c 'crash test:' "$out" || true)
            summary+=("$(printf '%-22s %d crash tests passed with a power cut after every kill (%d s)' "conformance:" "$n" $((SECONDS - t0)))")
            return 0
        fi
        if lazyfs_ok; then
            tail -n 40 "$out"
            failed=1
            summary+=("conformance: FAILED: a crash test failed in power-loss mode ($out)")
            return 1
        fi
        deaths=$((deaths + 1))
        echo "power-loss: LazyFS died during the conformance crash tests: death $deaths"
        show_lazyfs_log
        unmount_lazyfs
        if [ "$deaths" -gt "$max_deaths" ]; then
            failed=1
            summary+=("conformance: LazyFS died $deaths times, gave up")
            return 1
        fi
        mount_lazyfs
    done
    return 1
}
run_conformance || status=1
unmount_lazyfs

echo
echo "power-loss summary ($iterations iterations per backend, first seed $seed, LazyFS deaths $deaths, $((SECONDS - started)) s):"
for line in "${summary[@]}"; do echo "  $line"; done
if [ "$status" -ne 0 ]; then
    echo "RESULT: FAILED"
    exit 1
fi
echo "RESULT: no acknowledged batch lost, none half applied, every store opened; SyncPolicy::Never lost data as it must"
