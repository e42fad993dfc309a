#!/bin/bash
# LUKS-in-qcow2 sequential throughput, gio against qemu-io (issue 10):
# `write -P 0xab 0 SIZE` into a fresh encrypted image and `read -P 0xab 0
# SIZE` back, both tools interleaved on copies of the same qemu-img-made
# image, RUNS times; prints the median wall and CPU seconds and the ratio
# qemu-io/gio of wall time (above 1.0: gio is faster).
#
#   bench/crypto.sh                 # 256 MiB, 5 runs
#   SIZE=64M RUNS=3 bench/crypto.sh
#   FMT=luks bench/crypto.sh        # the luks format driver instead
set -eu
SIZE=${SIZE:-256M}
RUNS=${RUNS:-5}
FMT=${FMT:-qcow2}
GIO=${GIO:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if [ -z "$GIO" ]; then
	GIO=$dir/gio
	go build -o "$GIO" ./cmd/gio
fi
sec="secret,id=sec0,data=123456"
if [ "$FMT" = luks ]; then
	qemu-img create -q --object "$sec" -f luks -o key-secret=sec0,iter-time=10 "$dir/base" "$SIZE"
	iopts="driver=luks,key-secret=sec0,file.filename="
else
	qemu-img create -q --object "$sec" -f qcow2 -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 "$dir/base" "$SIZE"
	iopts="driver=qcow2,encrypt.key-secret=sec0,file.filename="
fi
# run TOOL OP: prints "wall cpu" seconds of one run.
run() {
	local tool=$1 op=$2 img=$dir/img-$(basename "$1")
	if [ "$op" = write ]; then cp "$dir/base" "$img"; fi
	local cmd="$op -P 0xab 0 $SIZE"
	local out
	out=$( { /usr/bin/time -f "%e %U %S" "$tool" --object "$sec" --image-opts "$iopts$img" -c "$cmd" >/dev/null; } 2>&1 | tail -1)
	awk '{printf "%s %.2f\n", $1, $2+$3}' <<<"$out"
}
declare -A samples
for r in $(seq "$RUNS"); do
	for op in write read; do
		for tool in qemu-io "$GIO"; do
			name=$(basename "$tool")
			samples[$name-$op]+="$(run "$tool" "$op");"
		done
	done
done
median() { tr ';' '\n' | grep . | sort -n -k"$1" | awk -v k="$1" '{a[NR]=$k} END{print a[int((NR+1)/2)]}'; }
echo "$FMT LUKS, $SIZE, $RUNS runs (median wall s, cpu s)"
for op in write read; do
	qw=$(median 1 <<<"${samples[qemu-io-$op]}"); qc=$(median 2 <<<"${samples[qemu-io-$op]}")
	gw=$(median 1 <<<"${samples[$(basename "$GIO")-$op]}"); gc=$(median 2 <<<"${samples[$(basename "$GIO")-$op]}")
	ratio=$(awk -v q="$qw" -v g="$gw" 'BEGIN{printf "%.2f", q/g}')
	printf "%-6s qemu-io %6ss cpu %6ss | gio %6ss cpu %6ss | qemu-io/gio %s\n" "$op" "$qw" "$qc" "$gw" "$gc" "$ratio"
done
