#!/bin/bash
# Sequential throughput of the format drivers, gio against qemu-io (issue
# 16): `write -P 0xab 0 SIZE` into an empty qemu-img-made image and `read
# -P 0xab 0 SIZE` back, both tools interleaved on copies of the same
# image, RUNS times; prints the median wall and CPU seconds and the ratio
# gio/qemu-io of wall time (the goal: at most 1.2).
#
#   bench/formats.sh                      # qed and vmdk, 256 MiB, 5 runs
#   FMTS="qed vmdk vdi vpc qcow" bench/formats.sh
#   SIZE=64M RUNS=3 bench/formats.sh
set -eu
SIZE=${SIZE:-256M}
RUNS=${RUNS:-5}
FMTS=${FMTS:-qed vmdk}
GIO=${GIO:-}
dir=$(mktemp -d /var/tmp/gio-bench-formats.XXXXXX)
trap 'rm -rf "$dir"' EXIT
if [ -z "$GIO" ]; then
	GIO=$dir/gio
	go build -o "$GIO" ./cmd/gio
fi
# run FMT TOOL OP: prints "wall cpu" seconds of one run.
run() {
	local fmt=$1 tool=$2 op=$3 img=$dir/img-$1-$(basename "$2")
	if [ "$op" = write ]; then cp "$dir/base.$fmt" "$img"; fi
	local out
	out=$( { /usr/bin/time -f "%e %U %S" "$tool" -f "$fmt" -c "$op -P 0xab 0 $SIZE" "$img" >/dev/null; } 2>&1 | tail -1)
	awk '{printf "%s %.2f\n", $1, $2+$3}' <<<"$out"
}
median() { tr ';' '\n' | grep . | sort -n -k"$1" | awk -v k="$1" '{a[NR]=$k} END{print a[int((NR+1)/2)]}'; }
for fmt in $FMTS; do
	qemu-img create -q -f "$fmt" "$dir/base.$fmt" "$SIZE"
	declare -A samples=()
	for r in $(seq "$RUNS"); do
		for op in write read; do
			for tool in qemu-io "$GIO"; do
				samples[$(basename "$tool")-$op]+="$(run "$fmt" "$tool" "$op");"
			done
		done
	done
	echo "$fmt, $SIZE, $RUNS runs (median wall s, cpu s)"
	for op in write read; do
		qw=$(median 1 <<<"${samples[qemu-io-$op]}"); qc=$(median 2 <<<"${samples[qemu-io-$op]}")
		gw=$(median 1 <<<"${samples[$(basename "$GIO")-$op]}"); gc=$(median 2 <<<"${samples[$(basename "$GIO")-$op]}")
		ratio=$(awk -v q="$qw" -v g="$gw" 'BEGIN{printf "%.2f", g/q}')
		printf "%-6s qemu-io %6ss cpu %6ss | gio %6ss cpu %6ss | gio/qemu-io %s\n" "$op" "$qw" "$qc" "$gw" "$gc" "$ratio"
	done
	unset samples
done
