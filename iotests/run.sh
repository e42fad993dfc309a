#!/usr/bin/env bash
# Runs QEMU 7.2's own qemu-iotests with gio as QEMU_IO_PROG and the real
# QEMU 7.2 binaries (qemu-img, qemu-nbd, qemu-storage-daemon,
# qemu-system-x86_64) for everything else, and compares the result with
# the committed list of tests the real qemu-io passes on this machine.
#
#   iotests/run.sh -raw                 every test of iotests/expected-raw.txt
#   iotests/run.sh -qcow2 039 052       a subset (still compared: each must pass)
#   iotests/run.sh -nbd                 raw images served by qemu-nbd (expected-nbd.txt)
#   iotests/run.sh -fuse                raw images exported through FUSE by
#                                       qemu-storage-daemon (expected-fuse.txt;
#                                       other formats: -qcow2 -fuse, expected-fuse-qcow2.txt)
#   iotests/run.sh --baseline -qcow2    re-record expected-qcow2.txt with the real qemu-io
#   iotests/run.sh --no-compare -raw 052   just run ./check and show its result
#   iotests/run.sh --known-failures -raw   CI mode: failures listed in
#                                       iotests/known-failures-raw.txt are
#                                       reported but do not fail the run
#   iotests/run.sh -qcow2 -o compat=0.10   a configuration (expected-qcow2@compat=0.10.txt)
#
# Configurations, passed on to ./check: -o OPTS (image create options,
# IMGOPTS), -c MODE (cache mode: writeback, writethrough, none,
# directsync, unsafe), -nocache (same as -c none), -i MODE (AIO mode:
# threads, native, io_uring). A configuration has its own lists, named
# by the format and one @-part per option in this order: -o as given,
# then cache=MODE, then aio=MODE, e.g. expected-qcow2@compat=0.10.txt,
# expected-raw@cache=none@aio=native.txt, flaky-qcow2@cache=none.txt;
# characters other than [-_.,=a-zA-Z0-9] in OPTS become _. Its
# --baseline runs, unless tests are named or --all is given, the tests
# of the format's own expected list that run qemu-io (a test the real
# qemu-io fails with default options is not worth its time here).
#
# Options: -j N (parallel tests, default 2), --all (every test of the suite
# instead of the listed ones), --all-listed (also the listed tests that
# never run qemu-io, skipped by default), --keep (keep the scratch
# directory).
# A failing test runs once more alone; one listed in iotests/flaky-FMT.txt
# (flaky for reasons outside gio, with the reason) up to
# GIO_IOTESTS_FLAKY_RUNS (3) times in all.
# Environment: GIO_BIN (a gio binary; default: built from this checkout),
# GIO_IOTESTS_CACHE (where the QEMU sources are cached,
# default $HOME/.cache/gio-iotests).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${GIO_IOTESTS_CACHE:-$HOME/.cache/gio-iotests}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

fmt=raw proto=file baseline=0 compare=1 known=0 all=0 alllisted=0 jobs=2 keep=0
imgopts="" cachemode="" aiomode=""
tests=()
while [ $# -gt 0 ]; do
  case $1 in
    --baseline) baseline=1 ;;
    --no-compare) compare=0 ;;
    --known-failures) known=1 ;;
    --all) all=1 ;;
    --all-listed) alllisted=1 ;;
    --keep) keep=1 ;;
    -j) shift; jobs=$1 ;;
    -j*) jobs=${1#-j} ;;
    -nbd|-file|-fuse) proto=${1#-} ;;
    -o) shift; imgopts=$1 ;;
    -c) shift; cachemode=$1 ;;
    -nocache) cachemode=none ;;
    -i) shift; aiomode=$1 ;;
    -raw|-qcow2|-qcow|-qed|-vdi|-vpc|-vhdx|-vmdk|-parallels|-luks|-bochs|-cloop|-dmg) fmt=${1#-} ;;
    -h|--help) usage ;;
    -*) echo "run.sh: unknown option $1" >&2; usage ;;
    *) tests+=("$1") ;;
  esac
  shift
done

# The name of a run: the format, or "nbd" for raw images over NBD
# (./check -nbd), or "nbd-FMT" for other formats over NBD; "fuse" and
# "fuse-FMT" likewise for images exported through FUSE by
# qemu-storage-daemon (./check -fuse).
if [ "$proto" != file ]; then
  [ "$fmt" = raw ] && key=$proto || key=$proto-$fmt
else
  key=$fmt
fi
basekey=$key
# A configuration: one @-part per option (see the top).
confflag=()
if [ -n "$imgopts" ]; then
  key=$key@$(printf %s "$imgopts" | tr -c -- '-_.,=a-zA-Z0-9' _)
  confflag+=(-o "$imgopts")
fi
if [ -n "$cachemode" ]; then
  key=$key@cache=$cachemode
  confflag+=(-c "$cachemode")
fi
if [ -n "$aiomode" ]; then
  key=$key@aio=$aiomode
  confflag+=(-i "$aiomode")
fi
# The run.sh options that name this run, for the lists' headers.
runflags="-$fmt"
[ "$proto" != file ] && runflags="$runflags -$proto"
[ ${#confflag[@]} -gt 0 ] && runflags="$runflags ${confflag[*]}"
expected=$here/expected-$key.txt
baseexpected=$here/expected-$basekey.txt
knownfile=$here/known-failures-$key.txt
flakyfile=$here/flaky-$key.txt

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# fetch_sources unpacks the qemu source package matching the installed
# qemu-utils into $cache/src (once), enabling deb-src on the machine's
# existing Debian apt entry if needed. Only tests/qemu-iotests and python/
# are used.
fetch_sources() {
  [ -x "$cache/src/tests/qemu-iotests/check" ] && return
  mkdir -p "$cache"
  local D f ver
  eval "$(apt-config shell D Dir::Etc::sourceparts/d)"
  for f in "$D"*.sources; do
    [ -e "$f" ] || continue
    if grep -q '^Types: deb$' "$f" && grep -qi '^URIs:.*debian' "$f"; then
      as_root sed -i 's/^Types: deb$/Types: deb deb-src/' "$f"
    fi
  done
  command -v dpkg-source >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev >/dev/null
  as_root apt-get update -qq
  ver=$(dpkg-query -W -f='${source:Version}' qemu-utils)
  rm -rf "$cache/dl" "$cache/src.tmp"
  mkdir -p "$cache/dl"
  (cd "$cache/dl" && apt-get source -qq --download-only "qemu=$ver" >/dev/null 2>&1 ||
    as_root apt-get source -qq --download-only "qemu=$ver" >/dev/null)
  dpkg-source -x "$cache/dl"/qemu_*.dsc "$cache/src.tmp" >/dev/null 2>&1
  patch_sources "$cache/src.tmp"
  mv "$cache/src.tmp" "$cache/src"
  rm -rf "$cache/dl"
}

# patch_sources adapts the cached copy (never the repository) to this
# machine: Debian's qemu-system-x86 has no qtest accelerator, so the VMs of
# the Python tests run with tcg; the qtest socket itself still works.
patch_sources() {
  sed -i "s/-accel qtest'/-accel tcg'/" "$1/tests/qemu-iotests/testenv.py"
  sed -i "s/'-accel', 'qtest'/'-accel', 'tcg'/" "$1/python/qemu/machine/qtest.py"
}

fetch_sources
iot=$cache/src/tests/qemu-iotests

if [ "$baseline" = 1 ]; then
  io=$(command -v qemu-io)
else
  io=${GIO_BIN:-}
  if [ -z "$io" ]; then
    # One binary per checkout, so runs from two worktrees at once do not
    # overwrite each other's gio.
    mkdir -p "$cache/bin"
    io=$cache/bin/gio-$(printf %s "$repo" | cksum | cut -d' ' -f1)
    (cd "$repo" && go build -o "$io" ./cmd/gio)
  fi
  io=$(cd "$(dirname "$io")" && pwd)/$(basename "$io")
fi

# Which tests: the given ones, else every test (--all, --baseline of a
# format's default configuration) or the listed ones (a configuration's
# --baseline: those of the format's own list).
# A FUSE run's baseline runs the tests of the format's own list (the
# file protocol's): FUSE only changes what is below the format, and the
# whole suite would cost an hour for the tests that fail anyway.
listfile=$expected
if [ "$baseline" = 1 ] && [ "$key" != "$basekey" ]; then
  listfile=$baseexpected
fi
if [ "$baseline" = 1 ] && [ "$proto" = fuse ] && [ "$key" = "$basekey" ]; then
  listfile=$here/expected-$fmt.txt
fi
if [ ${#tests[@]} -eq 0 ]; then
  if [ "$all" = 1 ] || { [ "$baseline" = 1 ] && [ "$key" = "$basekey" ] && [ "$proto" != fuse ]; }; then
    tests=()
  elif [ -f "$listfile" ]; then
    mapfile -t tests < <(grep -v '^#' "$listfile" | grep .)
    if [ "$alllisted" = 0 ]; then
      # A test that never runs qemu-io (directly, through iotests.py's
      # qemu_io* or common.pattern) cannot tell gio from qemu-io: it
      # only costs time (most start VMs). A VM's own qemu-io (HMP's,
      # vm.hmp_qemu_io, or sent with _send_qemu_cmd) and the output
      # filters (_filter_qemu_io) are not QEMU_IO_PROG: 264 and 181, VM
      # timing tests that also fail with the real qemu-io on a loaded
      # machine, use only those.
      # grep reads all of sed's output (no -q): with pipefail, a grep -q
      # that stops early kills sed with SIGPIPE on a long test, and the
      # test was left out at random (seen: 020 024 051 271).
      io_tests=()
      for t in "${tests[@]}"; do
        f=$iot/$t
        [ -f "$f" ] || f=$iot/tests/$t
        if sed -E '/_send_qemu_cmd/d; s/hmp_qemu_io|_?filter_qemu_io[a-z_]*//g' "$f" 2>/dev/null |
          grep -E 'QEMU_IO|qemu_io|common\.pattern|io_pattern|qemu-io' >/dev/null; then
          io_tests+=("$t")
        fi
      done
      echo "iotests $key: $(( ${#tests[@]} - ${#io_tests[@]} )) of the ${#tests[@]} listed tests never run qemu-io, not run (--all-listed runs them)"
      tests=("${io_tests[@]}")
    fi
  else
    echo "run.sh: no $listfile; record it with --baseline" >&2
    exit 2
  fi
fi

# Only [-_a-zA-Z0-9/] in the path: 197 and 215 refuse other TEST_DIRs.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/gio-iotests-$(printf %s "$key" | tr -c -- '-_a-zA-Z0-9' _)-XXXXXX")
cleanup() {
  # A FUSE export whose qemu-storage-daemon was killed (the watchdog)
  # stays mounted, and rm cannot remove a mount point.
  local m
  for m in $(awk -v d="$scratch/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts); do
    as_root umount -l "$m" 2>/dev/null || true
  done
  [ "$keep" = 1 ] && echo "scratch kept: $scratch" >&2 || rm -rf "$scratch"
}
trap cleanup EXIT
mkdir -p "$scratch/test" "$scratch/sock"

protoflag=()
[ "$proto" != file ] && protoflag=(-$proto)

# The tests' VMs run the real qemu-system-x86_64 with a firmware that
# halts the CPU at once, as the qtest accelerator the tests are written
# for runs no guest code at all. With the default BIOS, under TCG, the
# guest boots and resets the virtio disk while a test holds its requests
# at a blkdebug breakpoint: the reset drains the disk with the iothread
# lock held and the VM stops answering QMP for good (seen: 030's
# TestStreamStop, with gio and with the real qemu-io). The firmware is
# 64 KiB whose reset vector (its last 16 bytes) is cli; hlt; jmp hlt.
mkdir -p "$scratch/qemu"
{ head -c 65520 /dev/zero; printf '\xfa\xf4\xeb\xfd'; head -c 12 /dev/zero; } > "$scratch/qemu/halt.bin"
qemu=$scratch/qemu/qemu-system-x86_64 # the tests print its basename
printf '#!/bin/sh\nexec %s -bios %s "$@"\n' "$(command -v qemu-system-x86_64)" "$scratch/qemu/halt.bin" > "$qemu"
chmod +x "$qemu"
qsd=$(command -v qemu-storage-daemon || true)
start=$(date +%s)

# descendants PID lists every process below PID.
descendants() {
  local c
  for c in $(pgrep -P "$1"); do
    echo "$c"
    descendants "$c"
  done
}

# watchdog kills a test script (and what it started) that has run for
# more than $limit seconds: ./check has no timeout, and a QEMU VM under
# TCG on a loaded machine can hang a Python test for good (seen: 055).
# On a machine with a load of 40, 030 and 178 take over 300 s.
# The test then fails with the kill in its output.
limit=${GIO_IOTESTS_TIMEOUT:-600}
watchdog() {
  set +e +o pipefail # a test ending mid-look is normal here
  local p t
  while kill -0 "$1" 2>/dev/null; do
    sleep 5
    for p in $(descendants "$1"); do
      case $(cat "/proc/$p/cmdline" 2>/dev/null | tr '\0' ' ') in
        *"$iot/"*) ;;
        *) continue ;;
      esac
      t=$(ps -o etimes= -p "$p" 2>/dev/null | tr -d ' ')
      if [ -n "$t" ] && [ "$t" -gt "$limit" ]; then
        echo "run.sh: $(basename "$(cat "/proc/$p/cmdline" 2>/dev/null | tr '\0' '\n' | sed -n 2p)") ran over ${limit}s, killed" >&2
        kill -9 $(descendants "$p") "$p" 2>/dev/null || true
      fi
    done
  done
}

# run_check OUT TESTS... runs ./check on TESTS, TAP on OUT.tap, diffs
# on OUT.diff.
run_check() {
  local out=$1
  shift
  : > "$out.diff" # appended to by ./check and the watchdog
  (cd "$iot" && exec env QEMU_IO_PROG="$io" QEMU_IMG_PROG="$(command -v qemu-img)" \
    QEMU_NBD_PROG="$(command -v qemu-nbd)" QEMU_PROG="$qemu" \
    ${qsd:+QSD_PROG="$qsd"} TEST_DIR="$scratch/test" SOCK_DIR="$scratch/sock" \
    ./check -tap -j "$jobs" "-$fmt" "${protoflag[@]}" "${confflag[@]}" "$@") \
    > "$out.tap" 2>> "$out.diff" &
  local pid=$!
  watchdog "$pid" 2>> "$out.diff" &
  local wd=$!
  wait "$pid" || true
  wait "$wd" 2>/dev/null || true
  if ! grep -q '^1\.\.' "$out.tap"; then
    echo "run.sh: ./check did not run:" >&2
    cat "$out.tap" "$out.diff" >&2
    exit 2
  fi
}

run_check "$scratch/run" "${tests[@]}"
cp "$scratch/run.tap" "$scratch/tap"
cp "$scratch/run.diff" "$scratch/diff"

# TAP: "ok FMT NNN", "not ok FMT NNN", "ok FMT NNN # SKIP".
passed=$(awk '$1 == "ok" && $NF != "SKIP" { print $3 }' "$scratch/tap")
failed=$(awk '$1 == "not" { print $4 }' "$scratch/tap")
skipped=$(awk '$1 == "ok" && $NF == "SKIP" { print $3 }' "$scratch/tap")

# A failing test runs once more on its own: a QEMU VM under TCG on a
# loaded machine is sometimes too slow for a test's expectations. A test
# that passes the second time is reported as flaky, not failed.
flaky=""
# A listed test that ./check skipped gets the same second run: its
# _require checks run the real tools (284's _require_working_luks makes
# a LUKS image with qemu-img), which can fail once on a loaded machine
# (CI, 2026-12-02: 284 not run, passed alone). Skipped again, it is
# reported below as NOT RUN and fails.
skipped_listed=""
if [ "$compare" = 1 ] && [ -f "$expected" ] && [ -n "$skipped" ]; then
  skipped_listed=$(printf '%s\n' $skipped | grep -xF "$(grep -v '^#' "$expected")" || true)
fi
if [ -n "$failed$skipped_listed" ] && [ "$compare" = 1 ] && [ "${GIO_IOTESTS_RETRY:-1}" = 1 ]; then
  run_check "$scratch/retry" $failed $skipped_listed
  ran=$(awk '$1 == "ok" && $NF != "SKIP" { print $3 }' "$scratch/retry.tap")
  for t in $skipped_listed; do
    if printf '%s\n' $ran | grep -qx "$t"; then
      passed="$passed $t"
      skipped=$(printf '%s\n' $skipped | grep -vx "$t" || true)
      echo "iotests $key: $t was not run on the first pass, passed on the second"
    elif awk -v t="$t" '$1 == "not" && $4 == t { f = 1 } END { exit !f }' "$scratch/retry.tap"; then
      failed="$failed $t"
      skipped=$(printf '%s\n' $skipped | grep -vx "$t" || true)
    fi
  done
  flaky=$(printf '%s\n' $ran | grep -vxF "$(printf '%s\n' $skipped_listed)" || true)
  if [ -n "$flaky" ]; then
    passed="$passed $flaky"
    failed=$(printf '%s\n' $failed | grep -vxF "$(printf '%s\n' $flaky)" || true)
  fi
  # Tests listed in iotests/flaky-FMT.txt fail now and then for reasons
  # outside gio (VM timing under load, the reason is in the list): they
  # get up to GIO_IOTESTS_FLAKY_RUNS runs in all (3) before they count
  # as failed.
  if [ -f "$flakyfile" ]; then
    flaky_list=$(grep -v '^#' "$flakyfile" | awk '{print $1}' | grep . || true)
    n=3
    while [ "$n" -le "${GIO_IOTESTS_FLAKY_RUNS:-3}" ]; do
      again=$(printf '%s\n' $failed | grep -xF "$(printf '%s\n' $flaky_list)" || true)
      [ -n "$again" ] || break
      run_check "$scratch/retry$n" $again
      ok=$(awk '$1 == "ok" && $NF != "SKIP" { print $3 }' "$scratch/retry$n.tap")
      if [ -n "$ok" ]; then
        flaky="$flaky $ok"
        passed="$passed $ok"
        failed=$(printf '%s\n' $failed | grep -vxF "$(printf '%s\n' $ok)" || true)
      fi
      n=$((n + 1))
    done
  fi
fi
elapsed=$(( $(date +%s) - start ))

if [ "$baseline" = 1 ]; then
  # With tests named, only their entries change.
  kept=""
  if [ ${#tests[@]} -gt 0 ] && [ -f "$expected" ]; then
    kept=$(grep -v '^#' "$expected" | grep -vxF "$(printf '%s\n' "${tests[@]}")" || true)
  fi
  {
    echo "# qemu-iotests $key: tests that pass with the real qemu-io on this machine"
    echo "# recorded by: iotests/run.sh --baseline $runflags ($(qemu-io --version | head -1))"
    printf '%s\n' $kept $passed | grep . | sort -u
  } > "$expected.tmp"
  mv "$expected.tmp" "$expected"
  echo "iotests $key baseline: $(printf '%s\n' $passed | grep -c .) pass, $(printf '%s\n' $failed | grep -c .) fail, $(printf '%s\n' $skipped | grep -c .) not run with qemu-io (${elapsed}s); wrote $expected"
  [ -z "$failed" ] || echo "failed with qemu-io: $(echo $failed)"
  exit 0
fi

# first_diff TEST prints the first differing lines of TEST's diff, as
# ./check printed it on stderr (a unified diff per failing test).
first_diff() {
  awk -v t="$1" '
    /^--- / { cur = "" }
    /^\+\+\+ / { n = split($2, p, "/"); cur = p[n]; sub(/\.out\.bad$/, "", cur); shown = 0; next }
    cur == t && /^[-+]/ && shown < 6 { print "    " substr($0, 1, 160); shown++ }
  ' "$scratch/diff"
}

total=$(( $(printf '%s\n' $passed $failed | grep -c .) ))
npass=$(printf '%s\n' $passed | grep -c . || true)
echo "iotests $key: $npass/$total passed (${elapsed}s, QEMU_IO_PROG=$io)"
if [ -n "$flaky" ]; then
  echo "flaky (failed, then passed on another run): $(echo $flaky)"
  for t in $flaky; do
    [ -f "$flakyfile" ] && grep -E "^$t( |\$)" "$flakyfile" | sed 's/^/  known flaky: /' || true
  done
fi
if [ -n "$skipped" ]; then
  echo "not run: $(echo $skipped)"
fi

status=0
known_list=""
[ -f "$knownfile" ] && known_list=$(grep -v '^#' "$knownfile" | awk '{print $1}' | grep . || true)
for t in $failed; do
  if [ "$known" = 1 ] && printf '%s\n' $known_list | grep -qx "$t"; then
    echo "FAIL $t (known failure, not gating: $knownfile)"
  else
    echo "FAIL $t"
    status=1
  fi
  first_diff "$t"
done
# Listed tests that were skipped ran nowhere: that is a failure too when
# comparing (a missing tool on the machine hides a regression).
if [ "$compare" = 1 ]; then
  for t in $skipped; do
    if [ -f "$expected" ] && grep -qx "$t" "$expected"; then
      echo "NOT RUN $t (listed in $expected)"
      status=1
    fi
  done
fi
if [ "$known" = 1 ]; then
  for t in $known_list; do
    if printf '%s\n' $passed | grep -qx "$t"; then
      echo "now passing: $t (remove it from $knownfile)"
    fi
  done
fi
if [ "$compare" = 0 ]; then
  exit 0
fi
exit $status
