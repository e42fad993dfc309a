#!/usr/bin/env bash
# bench/compare.sh: gio against qemu-img bench and qemu-io (and fio when
# installed), interleaved on the same files, RUNS runs each, medians and
# ratios for every target listed in bench/README.md.
#
#   bench/compare.sh                  # everything, the full counts
#   SCALE=0.1 RUNS=3 bench/compare.sh # a quick look
#   ONLY='null|startup' bench/compare.sh
#
# Environment:
#   RUNS    runs per tool and target (default 5; medians need >= 5)
#   SCALE   multiplies every request and command count (default 1)
#   ONLY    regular expression: run only the targets whose name matches
#   GIO     gio binary to use (default: built from this tree)
#   DIR     scratch directory for the images (default: a fresh one under
#           /var/tmp, removed at exit; it must not be tmpfs for O_DIRECT)
#   RAW     also write every sample to this file (TSV)
#
# Each sample is one process run; its wall time, CPU time (user+sys) and
# peak RSS come from GNU time, and the bench targets use the "Run
# completed in X seconds" line of both tools. The ratio is gio/qemu of the
# target's metric, so ">= goal" is good for rates and "<= goal" for times.
# Wall times on a loaded machine are noisy: the CPU column says how much
# work each tool did, whatever the scheduler did with it.
set -euo pipefail

RUNS=${RUNS:-5}
SCALE=${SCALE:-1}
ONLY=${ONLY:-.}
here=$(cd "$(dirname "$0")/.." && pwd)

need() { command -v "$1" >/dev/null || { echo "compare.sh: $1 not found ($2)" >&2; exit 2; }; }
need qemu-img "apt-get install qemu-utils"
need qemu-io "apt-get install qemu-utils"
[ -x /usr/bin/time ] || { echo "compare.sh: /usr/bin/time not found (apt-get install time)" >&2; exit 2; }
have_fio=0
command -v fio >/dev/null && have_fio=1

DIR=${DIR:-}
cleanup_dir=0
if [ -z "$DIR" ]; then
	DIR=$(mktemp -d /var/tmp/gio-bench.XXXXXX)
	cleanup_dir=1
fi
mkdir -p "$DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; [ $cleanup_dir = 1 ] && rm -rf "$DIR"' EXIT

if [ -z "${GIO:-}" ]; then
	GIO=$tmp/gio
	(cd "$here" && go build -o "$GIO" ./cmd/gio)
fi

scale() { awk -v n="$1" -v s="$SCALE" 'BEGIN { v = int(n * s); if (v < 1) v = 1; print v }'; }
N_NULL=$(scale 1000000)
N_DIRECT=$(scale 100000)
N_CMDS=$(scale 20000)

samples=$tmp/samples.tsv
: >"$samples"

# sample TARGET TOOL STDIN -- CMD...: run once, record wall, cpu, rss and
# the bench line's seconds (or the wall time when there is none).
sample() {
	local target=$1 tool=$2 in=$3
	shift 4
	local rc=0 t0 t1
	t0=$EPOCHREALTIME
	/usr/bin/time -f "%e %U %S %M" -o "$tmp/time" "$@" <"$in" >"$tmp/out" 2>"$tmp/err" || rc=$?
	t1=$EPOCHREALTIME
	local wall user sys rss secs
	read -r wall user sys rss < <(tail -n 1 "$tmp/time")
	# GNU time's %e has 10 ms steps; the shell's clock has microseconds.
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
	secs=$(sed -n 's/^Run completed in \([0-9.]*\) seconds\.$/\1/p' "$tmp/out")
	if [ -z "$secs" ] && [ "$tool" = fio ]; then
		# terse v3: field 8 is the read IOPS, 49 the write IOPS; the
		# time of the I/O alone, like qemu-img bench's line.
		secs=$(awk -F';' -v n="$N_DIRECT" 'NR == 1 { i = ($8 > 0) ? $8 : $49; if (i > 0) print n / i }' "$tmp/out")
	fi
	[ -n "$secs" ] || secs=$wall
	if [ $rc != 0 ] && ! grep -q "^Run completed" "$tmp/out"; then
		echo "compare.sh: $target/$tool failed (status $rc):" >&2
		head -n 5 "$tmp/err" >&2
		return
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "$tool" "$wall" \
		"$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" "$rss" "$secs" >>"$samples"
	cp "$tmp/out" "$tmp/out.$tool"
}

# pair TARGET STDIN GIOCMD -- QEMUCMD: RUNS interleaved samples of each
# (alternating which goes first), then a check that the outputs agree.
pair() {
	local target=$1 in=$2
	shift 2
	local g=() q=()
	while [ "$1" != "--" ]; do g+=("$1"); shift; done
	shift
	q=("$@")
	for ((r = 1; r <= RUNS; r++)); do
		if ((r % 2)); then
			sample "$target" gio "$in" -- "${g[@]}"
			sample "$target" qemu "$in" -- "${q[@]}"
		else
			sample "$target" qemu "$in" -- "${q[@]}"
			sample "$target" gio "$in" -- "${g[@]}"
		fi
	done
	# Report lines carry timings; everything else must match.
	local filt='s/[0-9]* ops; [0-9/:. sec]* ([0-9/.inf]* [EPTGMKiBbytes]*\/sec and [0-9/.inf]* ops\/sec)/X/; s/^Run completed in .*/Run completed/'
	if ! cmp -s <(sed "$filt" "$tmp/out.gio") <(sed "$filt" "$tmp/out.qemu"); then
		echo "compare.sh: $target: gio's output differs from qemu's:" >&2
		diff <(sed "$filt" "$tmp/out.qemu") <(sed "$filt" "$tmp/out.gio") | head -n 6 >&2 || true
	fi
}

# single TARGET TOOL STDIN -- CMD: RUNS samples of one tool (fio, extra
# engines).
single() {
	local target=$1 tool=$2 in=$3
	shift 4
	for ((r = 1; r <= RUNS; r++)); do
		sample "$target" "$tool" "$in" -- "$@"
	done
}

want() { [[ $1 =~ $ONLY ]]; }
want_any() {
	local t
	for t; do want "$t" && return 0; done
	return 1
}

echo "gio: $GIO   qemu: $(qemu-img --version | head -n 1)   runs: $RUNS   scale: $SCALE" >&2
echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# --- images ---------------------------------------------------------------
big=$DIR/big.raw       # 1 GiB, fully written (O_DIRECT and 1G targets)
small=$DIR/cmds.raw    # 1 GiB sparse, for the piped commands
sparse=$DIR/sparse.raw # 16 GiB, 100000 separate 4 KiB extents
if want_any direct-read direct-write write-1g read-1g; then
	qemu-img create -q -f raw "$big" 1G
	qemu-io -f raw -t writeback -c "write -q -P 0x5a 0 1G" "$big"
fi
qemu-img create -q -f raw "$small" 1G
if want_any map alloc; then
	qemu-img create -q -f raw "$sparse" 16G
	awk 'BEGIN { for (i = 0; i < 100000; i++) printf "write -q -P 0x5a %d 4k\n", i * 163840 }' |
		qemu-io -f raw -t unsafe "$sparse" >/dev/null
fi

comp=$DIR/comp.qcow2   # 64 MiB of base64 text, compressed (zlib)
if want comp-read; then
	head -c 48M /dev/urandom | base64 -w 0 | head -c 64M >"$DIR/text.raw"
	qemu-img convert -q -c -f raw -O qcow2 "$DIR/text.raw" "$comp"
	rm -f "$DIR/text.raw"
fi
meta=$DIR/meta.qcow2   # 256 GiB, every cluster allocated (metadata only)
if want qcow2-check; then
	qemu-img create -q -f qcow2 -o preallocation=metadata "$meta" 256G
fi
q2=$DIR/big.qcow2      # 1 GiB, fully written
if want qcow2-direct; then
	[ -f "$big" ] || { qemu-img create -q -f raw "$big" 1G; qemu-io -f raw -t writeback -c "write -q -P 0x5a 0 1G" "$big"; }
	qemu-img convert -q -f raw -O qcow2 "$big" "$q2"
fi

# --- command streams ---------------------------------------------------------
awk -v n="$N_CMDS" 'BEGIN { for (i = 0; i < n; i++) printf "write -q -P 0x5a %d 4k\n", i * 4096 }' >"$tmp/writes"
awk -v n="$N_CMDS" 'BEGIN { for (i = 0; i < n; i++) printf "read -q -P 0x5a %d 4k\n", i * 4096 }' >"$tmp/reads"
awk -v n="$N_CMDS" 'BEGIN { for (i = 0; i < n; i++) printf "aio_write -q -P 0x5a %d 4k\n", i * 4096; print "aio_flush" }' >"$tmp/aio"
awk -v n="$N_CMDS" 'BEGIN { for (i = 0; i < n; i++) printf "write -q -P 0x5a %d 512\n", i * 4096 + 512 }' >"$tmp/rmw"
# rep20 runs a short command 20 times, so that one sample is long enough
# to time.
printf '#!/bin/sh\nfor i in $(seq 20); do "$@" || exit $?; done\n' >"$tmp/rep20"
chmod +x "$tmp/rep20"
rmwimg="driver=raw,file.driver=blkdebug,file.align=4k,file.image.filename=$small"

# --- targets -------------------------------------------------------------------
if want null64; then
	pair null64 /dev/null "$GIO" bench -c "$N_NULL" -d 64 -f raw null-co:// -- qemu-img bench -c "$N_NULL" -d 64 -f raw null-co://
fi
if want null1; then
	pair null1 /dev/null "$GIO" bench -c "$N_NULL" -d 1 -f raw null-co:// -- qemu-img bench -c "$N_NULL" -d 1 -f raw null-co://
fi
for rw in read write; do
	w=()
	[ $rw = write ] && w=(-w)
	want "direct-$rw" || continue
	for eng in threads io_uring; do
		pair "direct-$rw-$eng" /dev/null "$GIO" bench -c "$N_DIRECT" -d 32 -s 4k -t none -i $eng "${w[@]}" -f raw "$big" -- \
			qemu-img bench -c "$N_DIRECT" -d 32 -s 4k -t none -i $eng "${w[@]}" -f raw "$big"
	done
	single "direct-$rw-default" gio /dev/null -- "$GIO" bench -c "$N_DIRECT" -d 32 -s 4k -t none "${w[@]}" -f raw "$big"
	if [ $have_fio = 1 ]; then
		single "direct-$rw-fio" fio /dev/null -- fio --name=gio --filename="$big" --direct=1 --rw=$rw --bs=4k \
			--iodepth=32 --ioengine=libaio --size=1G --io_size=$((N_DIRECT * 4096)) --output-format=terse --terse-version=3
	fi
done
if want wb-write; then
	pair wb-write "$tmp/writes" "$GIO" -f raw -t writeback "$small" -- qemu-io -f raw -t writeback "$small"
fi
if want wt-write; then
	pair wt-write "$tmp/writes" "$GIO" -f raw "$small" -- qemu-io -f raw "$small"
fi
if want read-cmds; then
	pair read-cmds "$tmp/reads" "$GIO" -f raw "$small" -- qemu-io -f raw "$small"
fi
if want_any aio-write aio-write-rss; then
	pair aio-write "$tmp/aio" "$GIO" -f raw "$small" -- qemu-io -f raw "$small"
fi
if want startup; then
	pair startup /dev/null "$tmp/rep20" "$GIO" -c quit null-co:// -- "$tmp/rep20" qemu-io -c quit null-co://
fi
if want rest-rss; then
	# One process, for its peak RSS (the startup target runs 20).
	pair rest /dev/null "$GIO" -c quit null-co:// -- qemu-io -c quit null-co://
fi
if want write-1g; then
	pair write-1g /dev/null "$GIO" -f raw -c "write -P 0xab 0 1G" "$big" -- qemu-io -f raw -c "write -P 0xab 0 1G" "$big"
fi
if want read-1g; then
	pair read-1g /dev/null "$GIO" -f raw -c "read -P 0xab 0 1G" "$big" -- qemu-io -f raw -c "read -P 0xab 0 1G" "$big"
fi
if want map; then
	pair map /dev/null "$tmp/rep20" "$GIO" -f raw -r -c map "$sparse" -- "$tmp/rep20" qemu-io -f raw -r -c map "$sparse"
fi
if want alloc; then
	pair alloc /dev/null "$tmp/rep20" "$GIO" -f raw -r -c "alloc 0 16G" "$sparse" -- "$tmp/rep20" qemu-io -f raw -r -c "alloc 0 16G" "$sparse"
fi
if want rmw-default; then
	pair rmw-default "$tmp/rmw" "$GIO" --image-opts "$rmwimg" -- qemu-io --image-opts "$rmwimg"
fi
if want rmw-writeback; then
	pair rmw-writeback "$tmp/rmw" "$GIO" -t writeback --image-opts "$rmwimg" -- qemu-io -t writeback --image-opts "$rmwimg"
fi

if want comp-read; then
	pair comp-read /dev/null "$GIO" -f qcow2 -c "read 0 64M" "$comp" -- qemu-io -f qcow2 -c "read 0 64M" "$comp"
fi
if want qcow2-check; then
	pair qcow2-check /dev/null "$GIO" check "$meta" -- qemu-img check "$meta"
fi
if want qcow2-direct; then
	pair qcow2-direct /dev/null "$GIO" bench -c "$N_DIRECT" -d 32 -s 4k -t none -i io_uring -f qcow2 "$q2" -- \
		qemu-img bench -c "$N_DIRECT" -d 32 -s 4k -t none -i io_uring -f qcow2 "$q2"
fi

[ -n "${RAW:-}" ] && cp "$samples" "$RAW"

# --- summary ---------------------------------------------------------------------
# Medians per target and tool: the metric (ops/s for rates, seconds for
# times), wall seconds, CPU seconds, peak RSS.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v t="$1" -v o="$2" -v c="$3" '$1 == t && $2 == o { print $c }' "$samples" | median; }

# target | kind | count (for rates) | goal
targets=(
	"null64|rate|$N_NULL|>=1.0"
	"null1|rate|$N_NULL|>=1.0"
	"direct-read|rate|$N_DIRECT|>=1.0"
	"direct-write|rate|$N_DIRECT|>=1.0"
	"wb-write|rate|$N_CMDS|>=2.0"
	"wt-write|rate|$N_CMDS|>=1.0"
	"read-cmds|rate|$N_CMDS|>=2.0"
	"aio-write|rate|$N_CMDS|>=1.5"
	"startup|time|20|<=1.0"
	"write-1g|time|1|<=1.0"
	"read-1g|time|1|<=1.0"
	"map|time|20|<=1.0"
	"alloc|time|20|<=1.0"
	"rmw-default|rate|$N_CMDS|>=1.0"
	"rmw-writeback|rate|$N_CMDS|>=1.5"
	"comp-read|time|1|<=1.0"
	"qcow2-check|time|1|<=1.0"
	"qcow2-direct|rate|$N_DIRECT|>=1.0"
	# Peak RSS (MiB, medians) of a resting process and of aio-write's
	# 20000 in-flight requests; the third field names the samples.
	"rest-rss|rss|rest|<=1.0"
	"aio-write-rss|rss|aio-write|<=1.0"
)
printf '%-14s %-7s %14s %14s %7s %6s  %-5s %9s %9s %9s %9s %8s %8s\n' \
	target metric gio qemu ratio goal ok gio-wall qemu-wall gio-cpu qemu-cpu gio-MiB qemu-MiB
for line in "${targets[@]}"; do
	IFS='|' read -r t kind count goal <<<"$line"
	want "$t" || continue
	gt=$t qt=$t
	[ $kind = rss ] && gt=$count qt=$count
	if [[ $t == direct-* ]]; then
		# The best engine of each: threads or io_uring (gio's
		# deterministic default is listed below).
		best() {
			local tool=$1 bt="" bs=""
			for e in threads io_uring; do
				s=$(col "$t-$e" "$tool" 6)
				[ "$s" = - ] && continue
				if [ -z "$bs" ] || awk -v a="$s" -v b="$bs" 'BEGIN { exit !(a < b) }'; then bs=$s bt=$t-$e; fi
			done
			echo "$bt"
		}
		gt=$(best gio) qt=$(best qemu)
	fi
	gs=$(col "$gt" gio 6) qs=$(col "$qt" qemu 6)
	[ "$gs" = - ] && continue
	if [ $kind = rss ]; then
		gm=$(awk -v k="$(col "$gt" gio 5)" 'BEGIN { printf "%.1f", k / 1024 }')
		qm=$(awk -v k="$(col "$qt" qemu 5)" 'BEGIN { printf "%.1f", k / 1024 }')
		unit=MiB
	elif [ $kind = rate ]; then
		gm=$(awk -v c="$count" -v s="$gs" 'BEGIN { printf "%.0f", c / s }')
		qm=$(awk -v c="$count" -v s="$qs" 'BEGIN { printf "%.0f", c / s }')
		unit=ops/s
	else
		gm=$(awk -v c="$count" -v s="$gs" 'BEGIN { printf "%.4f", s / c }')
		qm=$(awk -v c="$count" -v s="$qs" 'BEGIN { printf "%.4f", s / c }')
		unit=s
	fi
	ratio=$(awk -v g="$gm" -v q="$qm" 'BEGIN { if (q > 0) printf "%.2f", g / q; else print "-" }')
	ok=$(awk -v r="$ratio" -v goal="$goal" 'BEGIN { op = substr(goal, 1, 2); v = substr(goal, 3) + 0;
		print ((op == ">=" && r >= v) || (op == "<=" && r <= v)) ? "yes" : "MISS" }')
	printf '%-14s %-7s %14s %14s %7s %6s  %-5s %9s %9s %9s %9s %8.0f %8.0f\n' "$t" "$unit" "$gm" "$qm" "$ratio" "$goal" "$ok" \
		"$(col "$gt" gio 3)" "$(col "$qt" qemu 3)" "$(col "$gt" gio 4)" "$(col "$qt" qemu 4)" \
		"$(awk -v k="$(col "$gt" gio 5)" 'BEGIN { print k / 1024 }')" "$(awk -v k="$(col "$qt" qemu 5)" 'BEGIN { print k / 1024 }')"
	if [[ $t == direct-* ]]; then
		echo "               (gio best: ${gt#$t-}, qemu best: ${qt#$t-})"
		for e in threads io_uring default; do
			for tool in gio qemu; do
				s=$(col "$t-$e" $tool 6)
				[ "$s" = - ] || printf '               %-6s %-9s %10.0f ops/s\n' $tool $e "$(awk -v c="$count" -v s="$s" 'BEGIN { print c / s }')"
			done
		done
		fs=$(col "$t-fio" fio 6)
		if [ "$fs" != - ]; then
			fm=$(awk -v c="$count" -v s="$fs" 'BEGIN { printf "%.0f", c / s }')
			fr=$(awk -v g="$gm" -v f="$fm" 'BEGIN { printf "%.2f", g / f }')
			fok=$(awk -v r="$fr" 'BEGIN { print (r >= 0.9) ? "yes" : "MISS" }')
			printf '%-14s %-7s %14s %14s %7s %6s  %-5s   (qemu column: fio libaio)\n' "$t-fio" ops/s "$gm" "$fm" "$fr" ">=0.9" "$fok"
		fi
	fi
done
