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
. "$(dirname "$0")/lib.sh"
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
	timed "$tool" -f vhdx -c "$op -P 0xab 0 $SIZE" "$img"
}
declare -A samples
collect run
echo "vhdx${OPTS:+ ($OPTS)}, $SIZE, $RUNS runs (median wall s, cpu s)"
report
