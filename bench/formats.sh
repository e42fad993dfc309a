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
. "$(dirname "$0")/lib.sh"
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
	timed "$tool" -f "$fmt" -c "$op -P 0xab 0 $SIZE" "$img"
}
for fmt in $FMTS; do
	qemu-img create -q -f "$fmt" "$dir/base.$fmt" "$SIZE"
	declare -A samples=()
	collect run "$fmt"
	echo "$fmt, $SIZE, $RUNS runs (median wall s, cpu s)"
	report
	unset samples
done
