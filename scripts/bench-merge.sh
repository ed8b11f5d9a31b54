#!/usr/bin/env bash
# The `merge` section of scripts/bench.sh (kept apart: its registry helpers keep
# the access log for request counts). Only 127.0.0.1.
#
#   scripts/bench.sh merge   (or scripts/bench-merge.sh merge)
#
# merge: three single-platform images (linux/amd64, linux/arm64,
# linux/mips64le; OCI, one 8 MiB gzip layer each) in one repository of a local
# `docker-registry`, assembled into one index in a fresh repository of the same
# registry, REPS times each (default 5; BENCH_REPS=N):
#   archgate  `archgate merge --target … SRC SRC SRC` (release build)
#   buildah   `buildah manifest create` + `manifest add` ×3 + `manifest push --all`
# Prints the median wall time, the ratio, and the HTTP requests each made (from
# the registry's access log), after checking that both indexes hold the same
# three platform manifests.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
REPS=${BENCH_REPS:-5}

log() { echo "bench: $*" >&2; }

need_tools() {
  local missing=()
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  command -v skopeo >/dev/null || missing+=(skopeo)
  command -v buildah >/dev/null || missing+=(buildah)
  command -v jq >/dev/null || missing+=(jq)
  if [ "${#missing[@]}" -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    log "installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    echo $((20000 + RANDOM % 20000))
}

# start_registry DIR: a registry on 127.0.0.1 with its access log in DIR/registry.log.
start_registry() {
  local dir=$1
  PORT=$(free_port)
  mkdir -p "$dir/storage"
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/storage
http:
  addr: 127.0.0.1:$PORT
EOF
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "the registry did not start:"; cat "$dir/registry.log" >&2
  return 1
}

# Requests served so far (access-log lines).
requests() { grep -c '" [0-9][0-9][0-9] ' "$WORK/registry/registry.log" || true; }

sha() { sha256sum "$1" | cut -d' ' -f1; }

# blob LAYOUT FILE: moves FILE into LAYOUT's blobs, prints "sha256:HEX SIZE".
blob() {
  local hex size
  hex=$(sha "$2"); size=$(stat -c %s "$2")
  mv "$2" "$1/blobs/sha256/$hex"
  echo "sha256:$hex $size"
}

# make_image LAYOUT ARCH: an OCI layout holding one linux/ARCH image tagged ARCH.
make_image() {
  local layout=$1 arch=$2 tmp="$1/tmp"
  mkdir -p "$layout/blobs/sha256" "$tmp/rootfs/etc" "$tmp/rootfs/opt"
  echo "$arch" >"$tmp/rootfs/etc/platform"
  head -c $((8 << 20)) /dev/urandom >"$tmp/rootfs/opt/payload"
  tar --sort=name --mtime=@0 --owner=0 --group=0 -C "$tmp/rootfs" -cf "$tmp/layer.tar" .
  local diff_id; diff_id="sha256:$(sha "$tmp/layer.tar")"
  gzip -1 -n "$tmp/layer.tar"
  local layer config manifest
  read -r -a layer <<<"$(blob "$layout" "$tmp/layer.tar.gz")"
  printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/bin:/bin"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
    "$arch" "$diff_id" >"$tmp/config.json"
  read -r -a config <<<"$(blob "$layout" "$tmp/config.json")"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
    "${config[0]}" "${config[1]}" "${layer[0]}" "${layer[1]}" >"$tmp/manifest.json"
  read -r -a manifest <<<"$(blob "$layout" "$tmp/manifest.json")"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "${manifest[0]}" "${manifest[1]}" "$arch" >"$layout/index.json"
  rm -rf "$tmp"
}

# platform_manifests REF: "os/arch digest" per index entry, sorted.
platform_manifests() {
  skopeo inspect --raw --tls-verify=false "docker://$1" |
    jq -r '.manifests[] | "\(.platform.os)/\(.platform.architecture) \(.digest)"' | sort
}

median() { sort -g | awk '{ v[NR] = $1 } END { m = int((NR + 1) / 2); if (NR % 2) print v[m]; else printf "%.3f\n", (v[m] + v[m + 1]) / 2 }'; }

now() { date +%s.%N; }

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }

bench_merge() {
  log "merge: building archgate (release)"
  cargo build --release --locked --quiet
  local archgate="$ROOT/target/release/archgate"
  start_registry "$WORK/registry"
  local host="127.0.0.1:$PORT"
  printf '[registries."%s"]\nhttp = true\n' "$host" >"$WORK/archgate.toml"

  log "merge: three source images in $host/bench/src"
  local sources=() arch
  for arch in amd64 arm64 mips64le; do
    make_image "$WORK/layout-$arch" "$arch"
    skopeo copy -q --dest-tls-verify=false "oci:$WORK/layout-$arch:$arch" "docker://$host/bench/src:$arch"
    sources+=("$host/bench/src:$arch")
  done

  local buildah=(buildah --root "$WORK/buildah/root" --runroot "$WORK/buildah/run" --storage-driver vfs)
  local i t0 t1 r0 r1
  : >"$WORK/archgate.times"; : >"$WORK/buildah.times"
  : >"$WORK/archgate.requests"; : >"$WORK/buildah.requests"
  for i in $(seq "$REPS"); do
    r0=$(requests); t0=$(now)
    # stderr kept apart (the plain-HTTP warning), shown when the run fails
    "$archgate" --config "$WORK/archgate.toml" merge --target "$host/bench/archgate-$i:v1" "${sources[@]}" \
      >/dev/null 2>"$WORK/archgate.stderr" || { cat "$WORK/archgate.stderr" >&2; return 1; }
    t1=$(now); r1=$(requests)
    elapsed "$t0" "$t1" >>"$WORK/archgate.times"; echo $((r1 - r0)) >>"$WORK/archgate.requests"

    r0=$(requests); t0=$(now)
    "${buildah[@]}" manifest create "bench-$i" >/dev/null
    for s in "${sources[@]}"; do
      "${buildah[@]}" manifest add --tls-verify=false "bench-$i" "docker://$s" >/dev/null
    done
    "${buildah[@]}" manifest push --all --tls-verify=false -q "bench-$i" "docker://$host/bench/buildah-$i:v1" >/dev/null
    t1=$(now); r1=$(requests)
    elapsed "$t0" "$t1" >>"$WORK/buildah.times"; echo $((r1 - r0)) >>"$WORK/buildah.requests"
    "${buildah[@]}" manifest rm "bench-$i" >/dev/null
  done

  # Both must hold the same three platform manifests (no conversion on either side).
  platform_manifests "$host/bench/archgate-1:v1" >"$WORK/archgate.index"
  platform_manifests "$host/bench/buildah-1:v1" >"$WORK/buildah.index"
  if ! diff -u "$WORK/archgate.index" "$WORK/buildah.index" >&2; then
    log "merge: archgate and buildah built different indexes"; return 1
  fi
  if [ "$(wc -l <"$WORK/archgate.index")" != 3 ]; then
    log "merge: expected three platforms"; cat "$WORK/archgate.index" >&2; return 1
  fi
  local a_t b_t a_r b_r
  a_t=$(median <"$WORK/archgate.times"); b_t=$(median <"$WORK/buildah.times")
  a_r=$(median <"$WORK/archgate.requests"); b_r=$(median <"$WORK/buildah.requests")
  echo
  echo "merge: 3 single-platform OCI images (8 MiB layer each) -> one index, same registry, median of $REPS"
  printf '%-10s %10s %10s\n' tool "time (s)" requests
  printf '%-10s %10.3f %10s\n' archgate "$a_t" "$a_r"
  printf '%-10s %10.3f %10s\n' buildah "$b_t" "$b_r"
  awk -v at="$a_t" -v bt="$b_t" -v ar="$a_r" -v br="$b_r" \
    'BEGIN { printf "ratio buildah/archgate: time %.2fx, requests %.2fx\n", bt / at, br / ar }'
  echo "platform manifests (identical in both indexes):"
  sed 's/^/  /' "$WORK/archgate.index"
  stop_registry
}

stop_registry() {
  if [ -n "${REGISTRY_PID:-}" ]; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
    REGISTRY_PID=""
  fi
}

WORK=$(mktemp -d -t archgate-bench-XXXXXX)
cleanup() {
  stop_registry
  # buildah's vfs storage may hold read-only files
  chmod -R u+w "$WORK" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need_tools
sections=("$@")
[ "${#sections[@]}" -gt 0 ] || sections=(merge)
for s in "${sections[@]}"; do
  case "$s" in
    merge) bench_merge ;;
    *) log "unknown section '$s' (known: merge)"; exit 2 ;;
  esac
done
