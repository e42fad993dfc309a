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
#   fio-read   fio's nbd engine, 4 KiB random reads at depth 16 (gio nbd
#   fio-write  vs qemu-nbd), and random writes; skipped without fio
#   map        nbdinfo --map of a qcow2 image with 20,000 scattered
#              clusters (gio nbd vs qemu-nbd); skipped without nbdinfo
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

start() { # gio|qemu IMAGE [FORMAT]
  rm -f "$sock" "$sock.pid"
  if [ "$1" = gio ]; then
    "$GIO" nbd --fork -t -f "${3:-raw}" -k "$sock" --pid-file="$sock.pid" "$2"
  else
    qemu-nbd --fork -t -f "${3:-raw}" -k "$sock" --pid-file="$sock.pid" "$2"
  fi
}
have_fio=0; command -v fio >/dev/null && have_fio=1
have_nbdinfo=0; command -v nbdinfo >/dev/null && have_nbdinfo=1
if [ $have_nbdinfo = 1 ]; then
  qemu-img create -q -f qcow2 "$dir/map.qcow2" 16G
  awk 'BEGIN { for (i = 0; i < 20000; i++) printf "write -q -P 0x5a %d 4k\n", ((i * 7919) % 100000) * 163840 }' |
    qemu-io -t unsafe "$dir/map.qcow2" >/dev/null
fi
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
fio_run() { # target server: IOPS from fio's terse line, the server's CPU
  local rw=randread f=8
  [ "$1" = fio-write ] && rw=randwrite f=49
  start "$2" "$dir/dst.img"
  local iops
  iops=$(fio --name=nbd --ioengine=nbd --uri="nbd+unix:///?socket=$sock" --rw=$rw --bs=4k --iodepth=16 \
    --size="$bytes" --io_size=$((COUNT * 4096)) --output-format=terse --terse-version=3 2>/dev/null |
    awk -F';' -v f=$f '$1 == 3 && $2 ~ /^fio/ { print $f }')
  T[$1.$2]+="$iops "
  C[$1.$2]+="$(cpu_of "$(cat "$sock.pid")") "
  stop
}
map_run() { # server: map seconds as a rate (maps per second), the server's CPU
  start "$1" "$dir/map.qcow2" qcow2
  local t0 t1; t0=$(now); nbdinfo --map "nbd+unix:///?socket=$sock" >/dev/null; t1=$(now)
  T[map.$1]+="$(echo "1 / ($t1 - $t0)" | bc -l) "
  C[map.$1]+="$(cpu_of "$(cat "$sock.pid")") "
  stop
}
for i in $(seq "$RUNS"); do
  for target in copy-out copy-in; do
    for s in gio qemu; do copy $target $s; done
  done
  start qemu "$dir/dst.img"
  for s in gio qemu; do bench $s; done
  stop
  if [ $have_fio = 1 ]; then
    for target in fio-read fio-write; do
      for s in gio qemu; do fio_run $target $s; done
    done
  fi
  if [ $have_nbdinfo = 1 ]; then
    for s in gio qemu; do map_run $s; done
  fi
done
printf '%-9s %14s %14s %7s %9s %9s\n' target gio ref ratio gio-cpu ref-cpu
targets="copy-out copy-in bench"
[ $have_fio = 1 ] && targets+=" fio-read fio-write"
[ $have_nbdinfo = 1 ] && targets+=" map"
for target in $targets; do
  unit="MiB/s"
  case $target in bench | fio-*) unit="req/s" ;; map) unit="map/s" ;; esac
  g=$(tr ' ' '\n' <<<"${T[$target.gio]}" | grep . | median)
  q=$(tr ' ' '\n' <<<"${T[$target.qemu]}" | grep . | median)
  gc=$(tr ' ' '\n' <<<"${C[$target.gio]}" | grep . | median)
  qc=$(tr ' ' '\n' <<<"${C[$target.qemu]}" | grep . | median)
  printf '%-9s %8.1f %-5s %8.1f %-5s %7.2f %9.2f %9.2f\n' $target "$g" $unit "$q" $unit "$(echo "$g / $q" | bc -l)" "$gc" "$qc"
done
