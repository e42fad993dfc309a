#!/usr/bin/env bash
# bench/nbd.sh: gio's NBD server and client against qemu-nbd and qemu-img
# bench, interleaved, RUNS runs each, medians and ratios.
#
#   bench/nbd.sh                 # 1 GiB, 5 runs
#   SIZE=256M RUNS=3 bench/nbd.sh
#
# Targets:
#   copy-out   nbdcopy EXPORT null:      (gio nbd vs qemu-nbd, unix socket)
#   copy-in    nbdcopy FILE EXPORT       (same)
#   bench      gio bench vs qemu-img bench, -d 64, 4 KiB reads, over
#              nbd+unix to one qemu-nbd
# Each line: target, gio median, reference median, ratio (gio/ref of
# throughput: >= 1 means gio is at least as fast), and the servers' (or
# benches') median CPU seconds. On a loaded machine wall time mostly
# measures waiting for a CPU; the CPU column says how much work was done.
set -euo pipefail
RUNS=${RUNS:-5}
SIZE=${SIZE:-1G}
COUNT=${COUNT:-200000}
here=$(cd "$(dirname "$0")/.." && pwd)
GIO=${GIO:-}
dir=$(mktemp -d /dev/shm/gio-nbd-bench.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$dir"' EXIT
if [ -z "$GIO" ]; then
  GIO=$dir/gio
  (cd "$here" && go build -o "$GIO" ./cmd/gio)
fi
for t in qemu-nbd nbdcopy qemu-img; do
  command -v $t >/dev/null || { echo "bench/nbd.sh: $t not installed" >&2; exit 1; }
done
head -c "$SIZE" /dev/urandom >"$dir/src.img"
truncate -s "$SIZE" "$dir/dst.img"
bytes=$(stat -c %s "$dir/src.img")
sock=$dir/s.sock

start() { # gio|qemu IMAGE
  rm -f "$sock" "$sock.pid"
  if [ "$1" = gio ]; then
    "$GIO" nbd --fork -t -f raw -k "$sock" --pid-file="$sock.pid" "$2"
  else
    qemu-nbd --fork -t -f raw -k "$sock" --pid-file="$sock.pid" "$2"
  fi
}
cpu_of() { # PID: user+sys seconds
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14+$15)/hz}' "/proc/$1/stat"
}
stop() { local p; p=$(cat "$sock.pid"); kill "$p"; while kill -0 "$p" 2>/dev/null; do sleep 0.05; done; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

declare -A T C
copy() { # target server
  local src dst
  if [ "$1" = copy-out ]; then src="nbd+unix:///?socket=$sock"; dst=null:; start "$2" "$dir/src.img"
  else src=$dir/src.img; dst="nbd+unix:///?socket=$sock"; start "$2" "$dir/dst.img"; fi
  local t0 t1; t0=$(now); nbdcopy "$src" "$dst"; t1=$(now)
  T[$1.$2]+="$(echo "$bytes / ($t1 - $t0) / 1048576" | bc -l) "
  C[$1.$2]+="$(cpu_of "$(cat "$sock.pid")") "
  stop
}
bench() { # tool
  local out
  if [ "$1" = gio ]; then
    out=$( { /usr/bin/time -f "CPU %U %S" "$GIO" bench -c "$COUNT" -d 64 -f raw "nbd+unix:///?socket=$sock"; } 2>&1)
  else
    out=$( { /usr/bin/time -f "CPU %U %S" qemu-img bench -c "$COUNT" -d 64 -f raw "nbd+unix:///?socket=$sock"; } 2>&1)
  fi
  local secs; secs=$(sed -n 's/^Run completed in \([0-9.]*\) seconds./\1/p' <<<"$out")
  T[bench.$1]+="$(echo "$COUNT / $secs" | bc -l) "
  C[bench.$1]+="$(awk '/^CPU/ {print $2+$3}' <<<"$out") "
}
for i in $(seq "$RUNS"); do
  for target in copy-out copy-in; do
    for s in gio qemu; do copy $target $s; done
  done
  start qemu "$dir/dst.img"
  for s in gio qemu; do bench $s; done
  stop
done
printf '%-9s %14s %14s %7s %9s %9s\n' target gio ref ratio gio-cpu ref-cpu
for target in copy-out copy-in bench; do
  unit="MiB/s"; [ $target = bench ] && unit="req/s"
  g=$(tr ' ' '\n' <<<"${T[$target.gio]}" | grep . | median)
  q=$(tr ' ' '\n' <<<"${T[$target.qemu]}" | grep . | median)
  gc=$(tr ' ' '\n' <<<"${C[$target.gio]}" | grep . | median)
  qc=$(tr ' ' '\n' <<<"${C[$target.qemu]}" | grep . | median)
  printf '%-9s %8.1f %-5s %8.1f %-5s %7.2f %9.2f %9.2f\n' $target "$g" $unit "$q" $unit "$(echo "$g / $q" | bc -l)" "$gc" "$qc"
done
