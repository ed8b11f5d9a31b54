#!/usr/bin/env bash
# Runs `buildah ARGS...` as the peer archgate's RUN is compared with (tests/run_buildah.rs,
# scripts/bench.sh run): inside a user namespace of its own (ids 0-65535 mapped to the
# same host ids, so `USER 1000` and files owned by 1000 work as under Docker), with its
# own mount namespace, its own empty network namespace (buildah's chroot isolation
# accepts only the host network; this one has nothing but a loopback that is down),
# and a binfmt_misc private to that namespace (Linux >= 6.7) in which QEMU for arm64
# and mips64le is registered with the F flag and the magic/mask of Debian's
# /usr/share/binfmts/qemu-ARCH, as src/build/run.rs `registration()` does. Nothing
# is registered on the host, and the host's registrations are not seen inside.
# Needs root (it writes the namespace's uid_map/gid_map from outside: util-linux's
# `unshare --map-users` would go through newuidmap and /etc/subuid), buildah,
# qemu-user-static (scripts/setup.sh installs them).
#
#   scripts/buildah-userns.sh --storage-driver vfs --root DIR --runroot DIR build ...
set -euo pipefail

if [ "${1:-}" = --inside ]; then
  fifo=$2
  shift 2
  # Wait until the parent has written the id maps.
  read -r _ <"$fifo"
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  for q in qemu-aarch64 qemu-mips64el; do
    f=/usr/share/binfmts/$q
    magic=$(sed -n 's/^magic //p' "$f")
    mask=$(sed -n 's/^mask //p' "$f")
    offset=$(sed -n 's/^offset //p' "$f")
    printf '%s' ":peer-$q:M:${offset:-0}:$magic:$mask:/usr/bin/$q-static:F" \
      >/proc/sys/fs/binfmt_misc/register
  done
  # Only these two: a host registration would show here if the mount were not private.
  entries=$(ls /proc/sys/fs/binfmt_misc | grep -v -x -e register -e status -e peer-qemu-aarch64 -e peer-qemu-mips64el || true)
  if [ -n "$entries" ]; then
    echo "buildah-userns: unexpected binfmt_misc entries: $entries" >&2
    exit 125
  fi
  exec buildah "$@"
fi

[ "$(id -u)" = 0 ] || { echo "buildah-userns: run as root" >&2; exit 2; }
command -v buildah >/dev/null || { echo "buildah-userns: buildah is missing (scripts/setup.sh)" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkfifo "$dir/go"
unshare --user --mount --propagation private --net -- bash "$0" --inside "$dir/go" "$@" &
pid=$!
self=$(readlink /proc/self/ns/user)
# unshare(2) first, then the exec of bash: wait for the new namespace.
while [ "$(readlink "/proc/$pid/ns/user" 2>/dev/null || echo gone)" = "$self" ]; do sleep 0.01; done
echo "0 0 65536" >"/proc/$pid/uid_map"
echo "0 0 65536" >"/proc/$pid/gid_map"
echo go >"$dir/go"
wait "$pid"
