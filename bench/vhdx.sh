#!/bin/bash
# vhdx sequential throughput, gio against qemu-io (issue 16): `write -P
# 0xab 0 SIZE` into a fresh dynamic image and `read -P 0xab 0 SIZE` back,
# both tools interleaved on copies of the same qemu-img-made image, RUNS
# times; prints the median wall and CPU seconds and the ratio gio/qemu-io
# of wall time (below 1.2: within the issue's bound).
#
#   bench/vhdx.sh                   # 256 MiB, 5 runs, default options
#   SIZE=64M RUNS=3 bench/vhdx.sh
#   OPTS=block_size=1M bench/vhdx.sh
set -eu
SIZE=${SIZE:-256M}
RUNS=${RUNS:-5}
OPTS=${OPTS:-}
GIO=${GIO:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
if [ -z "$GIO" ]; then
	GIO=$dir/gio
	go build -o "$GIO" ./cmd/gio
fi
qemu-img create -q -f vhdx ${OPTS:+-o "$OPTS"} "$dir/base" "$SIZE"
# run TOOL OP: prints "wall cpu" seconds of one run.
run() {
	local tool=$1 op=$2 img=$dir/img-$(basename "$1")
	if [ "$op" = write ]; then cp "$dir/base" "$img"; fi
	local out
	out=$( { /usr/bin/time -f "%e %U %S" "$tool" -f vhdx -c "$op -P 0xab 0 $SIZE" "$img" >/dev/null; } 2>&1 | tail -1)
	awk '{printf "%s %.2f\n", $1, $2+$3}' <<<"$out"
}
declare -A samples
for r in $(seq "$RUNS"); do
	for op in write read; do
		for tool in qemu-io "$GIO"; do
			samples[$(basename "$tool")-$op]+="$(run "$tool" "$op");"
		done
	done
done
median() { tr ';' '\n' | grep . | sort -n -k"$1" | awk -v k="$1" '{a[NR]=$k} END{print a[int((NR+1)/2)]}'; }
echo "vhdx${OPTS:+ ($OPTS)}, $SIZE, $RUNS runs (median wall s, cpu s)"
for op in write read; do
	qw=$(median 1 <<<"${samples[qemu-io-$op]}"); qc=$(median 2 <<<"${samples[qemu-io-$op]}")
	gw=$(median 1 <<<"${samples[$(basename "$GIO")-$op]}"); gc=$(median 2 <<<"${samples[$(basename "$GIO")-$op]}")
	ratio=$(awk -v q="$qw" -v g="$gw" 'BEGIN{printf "%.2f", g/q}')
	printf "%-6s qemu-io %6ss cpu %6ss | gio %6ss cpu %6ss | gio/qemu-io %s\n" "$op" "$qw" "$qc" "$gw" "$gc" "$ratio"
done
