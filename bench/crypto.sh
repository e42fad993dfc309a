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
. "$(dirname "$0")/lib.sh"
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
	timed "$tool" --object "$sec" --image-opts "$iopts$img" -c "$op -P 0xab 0 $SIZE"
}
declare -A samples
collect run
echo "$FMT LUKS, $SIZE, $RUNS runs (median wall s, cpu s)"
report q/g
