#!/usr/bin/env bash
# bench/trace-overhead.sh: what `--trace` costs on 20,000 piped `write -q`
# commands (issue 13: at most 10%). Runs gio without and with a trace,
# interleaved, RUNS times each, on a raw image (writeback cache) in
# /dev/shm when it exists, and prints the median wall time, the median
# CPU time (user + system, from /usr/bin/time) and the ratio traced/off
# of both (see "clock" below). On a shared machine wall time mostly measures waiting for a
# CPU; CPU time says how much work was done.
#
#   bench/trace-overhead.sh                  # 21 runs each, JSON trace
#   RUNS=51 FORMAT=jsonl bench/trace-overhead.sh
#   GIO=/path/to/gio bench/trace-overhead.sh # a prebuilt binary
#   BASE=/path/to/old/gio bench/trace-overhead.sh
#                                            # and another one, its runs
#                                            # interleaved with GIO's
#
# With `perf` working (hardware counters, not in most VMs), PERF=1 adds
# the instruction counts of one run each.
set -euo pipefail
RUNS=${RUNS:-21}
COUNT=${COUNT:-20000}
FORMAT=${FORMAT:-json}
here=$(cd "$(dirname "$0")/.." && pwd)
GIO=${GIO:-}
dir=$(mktemp -d /dev/shm/gio-trace-bench.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$dir"' EXIT
if [ -z "$GIO" ]; then
  GIO=$dir/gio
  (cd "$here" && go build -o "$GIO" ./cmd/gio)
fi
truncate -s 64M "$dir/img"
awk -v n="$COUNT" 'BEGIN { for (i = 0; i < n; i++) printf "write -q %d 4096\n", (i % 16384) * 4096 }' >"$dir/in"

# CPU time comes from perf's task-clock (all threads, user + system, in
# microseconds) when perf works here, else from /usr/bin/time (10 ms
# steps).
if perf stat -x, -e task-clock -o /dev/null true 2>/dev/null; then
  clock=perf
else
  clock=time
fi

run() { # off|on [binary index]: one run, prints "wall cpu" in seconds
  local args=() GIO=${bins[${2:-0}]}
  [ "$1" = on ] && args=(--trace "$dir/t${2:-0}.$FORMAT" --trace-format="$FORMAT")
  if [ $clock = perf ]; then
    local t0 t1
    t0=$(date +%s%N)
    perf stat -x, -e task-clock -o "$dir/time" "$GIO" "${args[@]}" -t writeback -f raw "$dir/img" <"$dir/in" >/dev/null
    t1=$(date +%s%N)
    awk -F, -v w=$(((t1 - t0) / 1000)) '/task-clock/ { printf "%.4f %.4f\n", w / 1e6, $1 / 1e3 }' "$dir/time"
  else
    /usr/bin/time -f '%e %U %S' -o "$dir/time" "$GIO" "${args[@]}" -t writeback -f raw "$dir/img" <"$dir/in" >/dev/null
    awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' "$dir/time"
  fi
}

bins=("$GIO")
if [ -n "${BASE:-}" ]; then
  bins+=("$BASE")
fi

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

for b in "${!bins[@]}"; do
  run off "$b" >/dev/null # warm the page cache and the binary
  : >"$dir/off$b"
  : >"$dir/on$b"
done
for i in $(seq "$RUNS"); do
  for b in "${!bins[@]}"; do
    # Alternate which goes first, so that neither always follows the other.
    if [ $((i % 2)) = 0 ]; then
      run off "$b" >>"$dir/off$b"
      run on "$b" >>"$dir/on$b"
    else
      run on "$b" >>"$dir/on$b"
      run off "$b" >>"$dir/off$b"
    fi
  done
done
for b in "${!bins[@]}"; do
  wo=$(cut -d' ' -f1 "$dir/off$b" | median)
  wn=$(cut -d' ' -f1 "$dir/on$b" | median)
  co=$(cut -d' ' -f2 "$dir/off$b" | median)
  cn=$(cut -d' ' -f2 "$dir/on$b" | median)
  if [ -n "${BASE:-}" ]; then
    echo "${bins[$b]}:"
  fi
  echo "trace overhead, $COUNT piped 'write -q 4k', $RUNS runs each, format $FORMAT, trace $(stat -c %s "$dir/t$b.$FORMAT") bytes"
  printf '%-6s %10s %10s\n' "" "wall s" "cpu s"
  printf '%-6s %10s %10s\n' off "$wo" "$co"
  printf '%-6s %10s %10s\n' traced "$wn" "$cn"
  awk -v a="$wo" -v b="$wn" -v c="$co" -v d="$cn" 'BEGIN { printf "%-6s %10.3f %10.3f   (traced/off; issue 13 asks <= 1.10)\n", "ratio", b / a, d / c }'
done
if [ "${PERF:-}" = 1 ]; then
  for m in off on; do
    args=()
    [ $m = on ] && args=(--trace "$dir/t0.$FORMAT" --trace-format="$FORMAT")
    perf stat -x, -e instructions:u -o "$dir/perf" "$GIO" "${args[@]}" -t writeback -f raw "$dir/img" <"$dir/in" >/dev/null
    echo "$m instructions:u $(grep instructions "$dir/perf" | cut -d, -f1)"
  done
fi
