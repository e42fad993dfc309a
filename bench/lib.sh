# Helpers of the throughput scripts (formats.sh, crypto.sh, vhdx.sh),
# which source this file: gio against qemu-io, both tools interleaved,
# RUNS rounds of a write and a read, medians of wall and CPU seconds.

# timed CMD...: prints "wall cpu" seconds of one run of CMD (user + system
# CPU; CMD's output dropped).
timed() {
	local out
	out=$( { /usr/bin/time -f "%e %U %S" "$@" >/dev/null; } 2>&1 | tail -1)
	awk '{printf "%s %.2f\n", $1, $2+$3}' <<<"$out"
}

# collect RUN [ARG...]: RUNS rounds of "RUN ARG... TOOL OP" (OP write,
# then read; TOOL qemu-io, then $GIO), each printing "wall cpu"; the
# samples go to the associative array samples (declared by the caller),
# under TOOL-OP.
collect() {
	local r op tool
	for r in $(seq "$RUNS"); do
		for op in write read; do
			for tool in qemu-io "$GIO"; do
				samples[$(basename "$tool")-$op]+="$("$@" "$tool" "$op");"
			done
		done
	done
}

# median K: the median of field K of the ";"-separated samples on stdin
# (the upper one of an even count).
median() { tr ';' '\n' | grep . | sort -n -k"$1" | awk -v k="$1" '{a[NR]=$k} END{print a[int((NR+1)/2)]}'; }

# report [q/g]: for write and read, the medians of qemu-io and gio from
# samples and the ratio of their wall times, gio/qemu-io (qemu-io/gio
# with q/g).
report() {
	local op qw qc gw gc ratio label=gio/qemu-io expr=g/q
	if [ "${1:-}" = q/g ]; then label=qemu-io/gio expr=q/g; fi
	for op in write read; do
		qw=$(median 1 <<<"${samples[qemu-io-$op]}"); qc=$(median 2 <<<"${samples[qemu-io-$op]}")
		gw=$(median 1 <<<"${samples[$(basename "$GIO")-$op]}"); gc=$(median 2 <<<"${samples[$(basename "$GIO")-$op]}")
		ratio=$(awk -v q="$qw" -v g="$gw" "BEGIN{printf \"%.2f\", $expr}")
		printf "%-6s qemu-io %6ss cpu %6ss | gio %6ss cpu %6ss | %s %s\n" "$op" "$qw" "$qc" "$gw" "$gc" "$label" "$ratio"
	done
}
