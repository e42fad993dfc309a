#!/usr/bin/env bash
# docs/nbd-breakpoint.sh: qemu-img convert reads an image out of a gio
# session's NBD export; the session stops the client's first read at a
# blkdebug breakpoint, looks at the requests in flight, checks that the
# copy is really held, resumes it, and serves the copy to its end.
#
#   GIO=/path/to/gio docs/nbd-breakpoint.sh
set -euo pipefail

GIO=${GIO:-gio}
dir=$(mktemp -d)
gio_pid=
cleanup() {
  exec 3>&- 2>/dev/null || true
  [ -n "$gio_pid" ] && kill "$gio_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

qemu-img create -q -f raw "$dir/src.img" 4M
qemu-io -f raw -c 'write -q -P 0x5a 0 4M' "$dir/src.img"
sock=$dir/gio.sock

# The session reads its commands from a FIFO, so that this script can
# type them one by one, like a person at the prompt would.
mkfifo "$dir/cmds"
"$GIO" -f raw "blkdebug::$dir/src.img" <"$dir/cmds" >"$dir/session.out" 2>&1 &
gio_pid=$!
exec 3>"$dir/cmds"
say() { echo "$*" >&3; }

say "nbd_server_start -r -k $sock"
say "break read_aio A"
until [ -S "$sock" ]; do sleep 0.05; done

qemu-img convert -f raw -O raw "nbd+unix:///?socket=$sock" "$dir/dst.img" &
convert_pid=$!

say "wait_break A"
say "requests"          # lists the remote request, suspended at A
sleep 1
if ! kill -0 "$convert_pid" 2>/dev/null; then
  echo "FAIL: qemu-img convert finished while its read was held" >&2
  exit 1
fi
echo "qemu-img convert is held at breakpoint A"
say "resume A"
say "nbd_server_wait"
say "nbd_server_stop"
say "quit"
exec 3>&-
wait "$convert_pid"
wait "$gio_pid"
gio_pid=

echo "--- the session's output:"
cat "$dir/session.out"
cmp "$dir/src.img" "$dir/dst.img"
echo "copy identical"
