#!/usr/bin/env bash
# Benchmarks, by section:   scripts/bench.sh [SECTION...]   (default: all)
#
#   verify  `archgate verify` of the seed's JDK image (examples/jdk/Dockerfile, the
#           main job's image) for three platforms: cold and warm cache, per
#           platform against the floor — the bare `java -version` in the same
#           bubblewrap sandbox under the same emulator (QEMU for arm64/mips64le).
#   service `service-start` ([verify.service], ready line) of the main job's service
#           image (examples/service/Dockerfile) per platform, warm cache, against
#           the floor — the bare `java -jar` of the same jar in the same sandbox
#           (same root, Env, WorkingDir, User) under the same emulator, timed from
#           start to its ready line. Target: service-start / floor <= 1.2.
#   build   `archgate build` of the issue's JDK Dockerfile for linux/amd64,
#           linux/arm64 and linux/mips64le into an OCI layout: cold (empty layer
#           cache) and no-op rebuild, wall time and peak RSS (/usr/bin/time -v),
#           against the floor `tar -cf - TREE | gzip | sha256sum` over the same
#           trees (one after another, and all at once), and buildah when present.
#   natives `native-libs` alone (from the report's per-check duration) over each
#           platform's ≈200 MB JRE root plus Debian's JNI libraries and a Spring Boot
#           fat jar bundling JNA's natives for all three CPUs, warm cache, median of
#           BENCH_RUNS; target ≤ 0.5 s per platform.
#   faults  the five fault-injection tests (tests/faults.rs: build, merge, mirror,
#           verify at 10% and 30% faults, and the cut-download/cut-upload test)
#           BENCH_RUNS times in a row (default 10), with BENCH_HOG=1 under a CPU hog
#           on every core; prints each run's pass/fail and its per-command counts
#           (requests, faults, upload sessions, resumed uploads, re-sent bytes).
#   archive the three-platform JRE image, registry -> one docker-archive file per
#           platform and each file -> registry, against skopeo copy (median of 5).
#   run     `archgate build` of the Dockerfile of tests/run_buildah.rs (five RUN steps)
#           on the dash/coreutils base (scripts/fetch-jre.sh --set shell) for linux/amd64,
#           linux/arm64, linux/mips64le (two under QEMU), cold (empty cache) and cached
#           rebuild, against `buildah build --platform` + `manifest push` into an OCI
#           layout (scripts/buildah-userns.sh: own userns, private binfmt_misc) with vfs
#           and overlay storage, without --layers (buildah's default: no step cache) and
#           with --layers (cold, cached); median of BENCH_RUNS (default 3). Targets
#           (issue 21): archgate cold <= 0.7x buildah's, cached rebuild < 1 s. Also
#           archgate alone on the same steps as a build stage whose results a second
#           stage copies (COPY --from a stage and an image), cold and cached.
#
# Content: the per-architecture JRE roots of scripts/fetch-jre.sh when they are
# there (~200 MB each), else a generated 200 MB tree per architecture.
# Numbers go to stdout; nothing is left behind but the release build.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(build verify)

want() { local s; for s in "${sections[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

# wall seconds and peak RSS (MiB) of a command, from GNU time
timed() {
  local log; log=$(mktemp)
  /usr/bin/time -v "$@" >/dev/null 2>"$log" || { cat "$log" >&2; rm -f "$log"; return 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$log")
  rm -f "$log"
  echo "$wall $rss"
}

now() { date +%s.%N; }

# The release build; sets bin (the binary) and runs (BENCH_RUNS, default 5)
# in the caller's scope.
release_build() {
  (cd "$repo" && cargo build --release --quiet)
  bin="$repo/target/release/archgate" runs=${BENCH_RUNS:-5}
}

bench_build() {
  echo "== build =="
  (cd "$repo" && cargo build --release --quiet)
  local bin="$repo/target/release/archgate"
  local work; work=$(mktemp -d /tmp/archgate-bench.XXXXXX)
  trap 'rm -rf "$work"' RETURN
  mkdir -p "$work/ctx"
  local arch deb root kind=jre
  for arch in amd64 arm64 mips64le; do
    deb=$arch; [ "$arch" = mips64le ] && deb=mips64el
    if root=$("$here/fetch-jre.sh" --print-root "$deb" 2>/dev/null); then
      # a copy: sources may not lead out of the build context through symlinks
      cp -a "$root" "$work/ctx/jdk8-$arch"
    else
      kind=generated
      mkdir -p "$work/ctx/jdk8-$arch"
      # 200 MB of partly compressible files, different per architecture
      for i in $(seq 1 40); do
        head -c 2500000 /dev/urandom >"$work/ctx/jdk8-$arch/blob$i"
        yes "$arch line $i" | head -c 2500000 >"$work/ctx/jdk8-$arch/text$i"
      done
    fi
  done
  echo "content: $kind trees: $(du -sh "$work"/ctx/jdk8-amd64 | cut -f1) amd64, $(du -sh "$work"/ctx/jdk8-arm64 | cut -f1) arm64, $(du -sh "$work"/ctx/jdk8-mips64le | cut -f1) mips64le"

  # A tiny multi-arch base, built by archgate itself into the layout.
  export ARCHGATE_CACHE="$work/cache"
  mkdir -p "$work/basectx"; echo base >"$work/basectx/os-release"
  printf 'FROM scratch\nCOPY os-release /etc/os-release\n' >"$work/basectx/Dockerfile"
  "$bin" build -f "$work/basectx/Dockerfile" --platform linux/amd64,linux/arm64,linux/mips64le \
    --image "oci:$work/layout:base" "$work/basectx" >/dev/null
  printf 'FROM --platform=$TARGETPLATFORM oci:%s:base\nARG TARGETARCH\nWORKDIR /opt\nADD jdk8-${TARGETARCH} ./jdk\nENV JAVA_HOME /opt/jdk\nENV PATH $PATH:$JAVA_HOME/bin:$JAVA_HOME/jre/bin\n' \
    "$work/layout" >"$work/ctx/Dockerfile"
  rm -rf "$work/cache/layers"

  local build=("$bin" build -f "$work/ctx/Dockerfile" --platform linux/amd64,linux/arm64,linux/mips64le
    --image "oci:$work/layout:v1" "$work/ctx")
  local cold noop single
  cold=$(timed "${build[@]}")
  noop=$(timed "${build[@]}")
  # One platform alone: still every core (gzip in blocks), against its own serial floor.
  rm -rf "$work/cache/layers"
  single=$(timed "$bin" build -f "$work/ctx/Dockerfile" --platform linux/arm64 \
    --image "oci:$work/layout-single:v1" "$work/ctx")

  # The floor: the same trees through tar | gzip -6 | sha256sum.
  local t0 t1 seq par
  t0=$(now)
  for arch in amd64 arm64 mips64le; do tar -cf - -C "$work/ctx/jdk8-$arch" . | gzip -6 | sha256sum >/dev/null; done
  t1=$(now); seq=$(echo "$t1 - $t0" | bc)
  t0=$(now)
  for arch in amd64 arm64 mips64le; do (tar -cf - -C "$work/ctx/jdk8-$arch" . | gzip -6 | sha256sum >/dev/null) & done
  wait
  t1=$(now); par=$(echo "$t1 - $t0" | bc)
  local sseq
  t0=$(now)
  tar -cf - -C "$work/ctx/jdk8-arm64" . | gzip -6 | sha256sum >/dev/null
  t1=$(now); sseq=$(echo "$t1 - $t0" | bc)

  echo "cores: $(nproc)"
  printf '%-34s %8s s  peak RSS %7s MiB\n' "archgate build, cold (3 platforms)" ${cold}
  printf '%-34s %8s s  peak RSS %7s MiB\n' "archgate build, no-op rebuild" ${noop}
  printf '%-34s %8.2f s\n' "floor tar|gzip|sha256sum, serial" "$seq"
  printf '%-34s %8.2f s\n' "floor tar|gzip|sha256sum, parallel" "$par"
  local c=${cold%% *}
  printf 'cold / floor: %.2fx (serial), %.2fx (parallel)\n' "$(echo "$c / $seq" | bc -l)" "$(echo "$c / $par" | bc -l)"
  printf '%-34s %8s s  peak RSS %7s MiB\n' "archgate build, cold (linux/arm64)" ${single}
  printf '%-34s %8.2f s\n' "floor tar|gzip|sha256sum, arm64" "$sseq"
  printf 'single / its serial floor: %.2fx\n' "$(echo "${single%% *} / $sseq" | bc -l)"
  # 1 and 2 compressing threads, three platforms: the same digests, the time it takes.
  local th out
  for th in 1 2; do
    rm -rf "$work/cache/layers"
    out=$(timed env ARCHGATE_BUILD__THREADS=$th "$bin" build -f "$work/ctx/Dockerfile" \
      --platform linux/amd64,linux/arm64,linux/mips64le --image "oci:$work/layout-t$th:v1" "$work/ctx")
    printf '%-34s %8s s  peak RSS %7s MiB  index %s\n' "archgate build, $th thread(s)" ${out} \
      "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"][:19])' "$work/layout-t$th/index.json")"
  done
  # The same into a local registry (distribution 2.8 on 127.0.0.1), when installed.
  if command -v docker-registry >/dev/null; then
    local port pid
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$work/registry"
    printf 'version: 0.1\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\nlog: {level: error}\n' \
      "$work/registry" "$port" >"$work/registry.yml"
    docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
    printf '[registries."127.0.0.1:%s"]\nhttp = true\n' "$port" >"$work/archgate.toml"
    rm -rf "$work/cache/layers"
    local reg=("$bin" --config "$work/archgate.toml" build -f "$work/ctx/Dockerfile"
      --platform linux/amd64,linux/arm64,linux/mips64le --image "127.0.0.1:$port/jdk8:v1" "$work/ctx")
    local rcold rnoop
    rcold=$(timed "${reg[@]}")
    rnoop=$(timed "${reg[@]}")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    printf '%-34s %8s s  peak RSS %7s MiB\n' "registry: cold (3 platforms)" ${rcold}
    printf '%-34s %8s s  peak RSS %7s MiB\n' "registry: no-op rebuild" ${rnoop}
  fi
  if command -v buildah >/dev/null; then
    local broot="$work/buildah"; mkdir -p "$broot"
    sed "s|oci:$work/layout:base|scratch|" "$work/ctx/Dockerfile" >"$work/ctx/Dockerfile.buildah"
    t0=$(now)
    buildah --storage-driver vfs --root "$broot/root" --runroot "$broot/run" build --quiet \
      --platform linux/amd64,linux/arm64,linux/mips64le --manifest bench -f "$work/ctx/Dockerfile.buildah" "$work/ctx" >/dev/null
    buildah --storage-driver vfs --root "$broot/root" --runroot "$broot/run" manifest push --all --quiet \
      bench "oci:$work/buildah-out:v1" >/dev/null
    t1=$(now)
    printf '%-34s %8.2f s\n' "buildah build + manifest push" "$(echo "$t1 - $t0" | bc)"
  else
    echo "buildah: not installed (apt-get install buildah to compare)"
  fi
}

# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

bench_verify() {
  echo "== verify =="
  local bin runs
  release_build
  local work; work=$(mktemp -d /tmp/archgate-bench.XXXXXX)
  trap 'rm -rf "$work"' RETURN
  "$here/fetch-jre.sh" >/dev/null
  # The main job's context and JDK image (FROM its Debian base).
  "$here/contexts.sh" "$work" >/dev/null
  "$bin" build -f "$repo/examples/base/Dockerfile" --image "oci:$work/layout:base" "$work/context" >/dev/null
  "$bin" build -f "$repo/examples/jdk/Dockerfile" --build-arg "BASE=oci:$work/layout:base" \
    --image "oci:$work/layout:v1" "$work/context" >/dev/null
  local image="oci:$work/layout:v1"

  # archgate verify, cold (empty cache) once, then warm; per-platform seconds from --json.
  verify_json() { ARCHGATE_CACHE="$1" "$bin" verify --json "$image"; }
  per_platform() { python3 -c 'import json,sys; v=json.load(sys.stdin); [print(p["platform"], p["duration"]/1000, p["outcome"]) for p in v["platforms"]]'; }
  local t0 t1 cold_wall
  t0=$(now); verify_json "$work/cache" >"$work/cold.json"; t1=$(now)
  cold_wall=$(echo "$t1 - $t0" | bc)
  : >"$work/warm.txt"; : >"$work/warm-wall.txt"
  for _ in $(seq 1 "$runs"); do
    t0=$(now); verify_json "$work/cache" >"$work/warm.json"; t1=$(now)
    echo "$t1 - $t0" | bc >>"$work/warm-wall.txt"
    per_platform <"$work/warm.json" >>"$work/warm.txt"
  done

  # The floor: the bare java -version in the same sandbox, same emulator, same root.
  # The floor: the bare java -version in the same sandbox, under the same
  # emulator, in the very root archgate unpacked (found by the JDK's OS_ARCH).
  floor() {
    local os_arch=$1 qemu=$2 root="" r
    for r in "$work"/cache/rootfs/*/; do
      grep -q "^OS_ARCH=\"$os_arch\"" "$r/opt/jdk/release" 2>/dev/null && root=$r
    done
    [ -n "$root" ] || { echo nan; return; }
    local argv=(bwrap --unshare-all --die-with-parent --new-session --ro-bind "$root" / --proc /proc --dev /dev --tmpfs /tmp)
    [ -n "$qemu" ] && argv+=(--ro-bind "$(command -v "$qemu")" /.archgate-qemu)
    argv+=(--)
    [ -n "$qemu" ] && argv+=(/.archgate-qemu)
    argv+=(/opt/jdk/bin/java -version)
    "${argv[@]}" >/dev/null 2>&1 || { echo "floor command failed for $os_arch" >&2; echo nan; return; }
    for _ in $(seq 1 "$runs"); do
      t0=$(now); "${argv[@]}" >/dev/null 2>&1; t1=$(now); echo "$t1 - $t0" | bc
    done | median
  }
  printf '%-16s %10s %10s %10s %8s\n' platform "cold s" "warm s" "floor s" "warm/floor"
  echo "(cold: the platform's share of one cold 3-platform verify; warm: verify --platform P, whole command, median of $runs)"
  local p cold warm fl
  for p in linux/amd64:x86_64: linux/arm64:aarch64:qemu-aarch64-static linux/mips64le:mips64el:qemu-mips64el-static; do
    IFS=: read -r plat os_arch qemu <<<"$p"
    cold=$(per_platform <"$work/cold.json" | awk -v p="$plat" '$1==p {print $2}')
    # Warm: the whole `archgate verify --platform P` command (process start,
    # index and manifest reads, cached root, ELF checks, the java run).
    warm=$(for _ in $(seq 1 "$runs"); do
      t0=$(now); ARCHGATE_CACHE="$work/cache" "$bin" verify --platform "$plat" "$image" >/dev/null; t1=$(now)
      echo "$t1 - $t0" | bc
    done | median)
    fl=$(floor "$os_arch" "$qemu")
    printf '%-16s %10.2f %10.2f %10.2f %8.2f\n' "$plat" "$cold" "$warm" "$fl" "$(echo "$warm / $fl" | bc -l)"
  done
  printf '%-16s %10.2f %10.2f   (whole verify command, 3 platforms, %s cores)\n' "wall" "$cold_wall" \
    "$(median <"$work/warm-wall.txt")" "$(nproc)"
}


bench_service() {
  echo "== service =="
  local bin runs
  release_build
  local work; work=$(mktemp -d /tmp/archgate-bench.XXXXXX)
  trap 'rm -rf "$work"' RETURN
  "$here/fetch-jre.sh" >/dev/null
  "$here/fetch-jre.sh" --set jni >/dev/null
  "$here/contexts.sh" "$work" >/dev/null
  export ARCHGATE_CACHE="$work/cache"
  "$bin" build -f "$repo/examples/base/Dockerfile" --image "oci:$work/layout:base" "$work/context" >/dev/null
  "$bin" build -f "$repo/examples/jdk/Dockerfile" --build-arg "BASE=oci:$work/layout:base" \
    --image "oci:$work/layout:jdk" "$work/context" >/dev/null
  "$bin" build -f "$repo/examples/service/Dockerfile" --build-arg "JDK=oci:$work/layout:jdk" \
    --image "oci:$work/layout:v1" "$work/service" >/dev/null
  local image="oci:$work/layout:v1" ready="example service ready"
  printf '[verify.service]\nready = "%s"\n' "$ready" >"$work/archgate.toml"
  # One verify fills the cache (unpacked roots); the runs after are warm.
  "$bin" verify --config "$work/archgate.toml" "$image" >/dev/null
  service_ms() {
    python3 -c 'import json,sys
v=json.load(sys.stdin)
for p in v["platforms"]:
    for c in p["checks"]:
        if c["name"]=="service-start": print(c["duration"]/1000 if c["outcome"]=="passed" else "nan")'
  }
  # The floor: the bare `java -jar` in the same sandbox, same root, same
  # Env/WorkingDir/User, same emulator; seconds from start to the ready line.
  floor_once() {
    local os_arch=$1 qemu=$2 root="" r
    for r in "$work"/cache/rootfs/*/; do
      [ -f "$r/app/service.jar" ] && grep -q "^OS_ARCH=\"$os_arch\"" "$r/opt/jdk/release" 2>/dev/null && root=$r
    done
    [ -n "$root" ] || { echo nan; return; }
    local argv=(bwrap --unshare-all --die-with-parent --new-session --unshare-user --uid 1000 --gid 1000
      --ro-bind "$root" / --proc /proc --dev /dev --tmpfs /tmp --clearenv
      --setenv JAVA_HOME /opt/jdk --setenv PATH /usr/bin:/bin:/opt/jdk/bin
      --setenv LD_LIBRARY_PATH /app/lib:/opt/jdk/bin --chdir /app)
    [ -n "$qemu" ] && argv+=(--ro-bind "$(command -v "$qemu")" /.archgate-qemu)
    argv+=(--)
    [ -n "$qemu" ] && argv+=(/.archgate-qemu)
    argv+=(/opt/jdk/bin/java -Djava.library.path=/app/lib -jar /app/service.jar)
    python3 - "$ready" "${argv[@]}" <<'PY'
import subprocess, sys, time
ready, argv = sys.argv[1], sys.argv[2:]
t0 = time.monotonic()
p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
t = float("nan")
for line in p.stdout:
    if ready in line:
        t = time.monotonic() - t0
        break
p.kill(); p.wait()
print(t)
PY
  }
  printf '%-16s %14s %10s %8s\n' platform "service-start s" "floor s" ratio
  echo "(service-start: the check's own duration, start to ready line and stop; floor: start to ready line;"
  echo " medians of $runs runs, the two alternating so that a busy machine weighs on both)"
  local p
  for p in linux/amd64:x86_64: linux/arm64:aarch64:qemu-aarch64-static linux/mips64le:mips64el:qemu-mips64el-static; do
    IFS=: read -r plat os_arch qemu <<<"$p"
    : >"$work/svc.txt"; : >"$work/floor.txt"
    for _ in $(seq 1 "$runs"); do
      "$bin" verify --json --config "$work/archgate.toml" --platform "$plat" "$image" | service_ms >>"$work/svc.txt"
      floor_once "$os_arch" "$qemu" >>"$work/floor.txt"
    done
    local svc fl
    svc=$(median <"$work/svc.txt"); fl=$(median <"$work/floor.txt")
    printf '%-16s %14.2f %10.2f %8.2f\n' "$plat" "$svc" "$fl" "$(echo "$svc / $fl" | bc -l)"
  done
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts distribution on 127.0.0.1 with storage in DIR; prints "PORT PID".
start_registry() {
  local dir=$1 port pid
  port=$(free_port)
  rm -rf "$dir"; mkdir -p "$dir/storage"
  printf 'version: 0.1\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\nlog: {level: error, accesslog: {disabled: true}}\n' \
    "$dir/storage" "$port" >"$dir/config.yml"
  docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.05; done
  echo "$port $pid"
}

# Seconds a command takes (its output discarded; its failure fails the bench).
seconds() {
  local t0 t1
  t0=$(now)
  "$@" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; return 1; }
  t1=$(now)
  echo "$t1 - $t0" | bc
}

# An OCI layout at DIR:17 with a three-platform index, one gzip -1 layer per
# platform from the JRE roots (else 60 MB of random bytes per platform).
# With ROOTS (a directory of <debian-arch>/ trees), those trees instead.
jre_layout() {
  local dir=$1 roots=${2:-} arch deb root gz cfg man entries="" kind=jre
  mkdir -p "$dir/blobs/sha256"
  for arch in amd64 arm64 mips64le; do
    deb=$arch; [ "$arch" = mips64le ] && deb=mips64el
    gz="$dir/layer.tmp"
    if [ -n "$roots" ]; then
      tar -C "$roots/$deb" -cf - . >"$dir/layer.tar"
    elif root=$("$here/fetch-jre.sh" --print-root "$deb" 2>/dev/null); then
      tar -C "$root" -cf - . >"$dir/layer.tar"
    else
      kind=random; head -c 60000000 /dev/urandom >"$dir/layer.tar"
    fi
    local ldig lsize diff
    diff=$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)
    gzip -1 <"$dir/layer.tar" >"$gz"; rm -f "$dir/layer.tar"
    ldig=$(sha256sum "$gz" | cut -d' ' -f1); lsize=$(stat -c %s "$gz")
    mv "$gz" "$dir/blobs/sha256/$ldig"
    cfg=$(printf '{"architecture":"%s","os":"linux","config":{"Env":["JAVA_HOME=/usr/lib/jvm/java-17-openjdk-%s"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$arch" "$deb" "$diff")
    local cdig csize
    cdig=$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1); csize=${#cfg}
    printf '%s' "$cfg" >"$dir/blobs/sha256/$cdig"
    man=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' "$cdig" "$csize" "$ldig" "$lsize")
    local mdig
    mdig=$(printf '%s' "$man" | sha256sum | cut -d' ' -f1)
    printf '%s' "$man" >"$dir/blobs/sha256/$mdig"
    entries="$entries${entries:+,}$(printf '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"}}' "$mdig" "${#man}" "$arch")"
  done
  local index idig
  index=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}' "$entries")
  idig=$(printf '%s' "$index" | sha256sum | cut -d' ' -f1)
  printf '%s' "$index" >"$dir/blobs/sha256/$idig"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"17"}}]}' \
    "$idig" "${#index}" >"$dir/index.json"
  echo "$kind"
}

# For the transfer bench NAME, in the caller's work dir: the release build
# (bin, runs), the three-platform JRE layout pushed to a fresh registry at
# 127.0.0.1:$src as bench/jre:17, and ARCHGATE_CACHE; fails (saying so)
# without docker-registry and skopeo.
transfer_source() {
  command -v docker-registry >/dev/null && command -v skopeo >/dev/null || {
    echo "$1: needs docker-registry and skopeo (scripts/setup.sh installs them)"; return 1; }
  release_build
  local kind spid
  kind=$(jre_layout "$work/layout")
  read -r src spid < <(start_registry "$work/src"); echo "$spid" >"$work/src.pid"
  skopeo copy --all --quiet --dest-tls-verify=false "oci:$work/layout:17" "docker://127.0.0.1:$src/bench/jre:17"
  echo "content: $kind layers, $(du -sh "$work/layout/blobs" | cut -f1) in blobs; $runs runs each; cores: $(nproc)"
  # Last: fetch-jre.sh (for the layout above) reads ARCHGATE_CACHE too.
  export ARCHGATE_CACHE="$work/cache"
}

# One row of a transfer table: LABEL, then the medians of the archgate and
# skopeo timing files and their ratio (no files: the header).
ratio_row() {
  if [ -z "$2" ]; then printf '%-40s %8s %8s %8s\n' "$1" archgate skopeo ratio; return; fi
  local a s; a=$(median <"$2"); s=$(median <"$3")
  printf '%-40s %8.2f %8.2f %8.2f\n' "$1" "$a" "$s" "$(echo "$a / $s" | bc -l)"
}

bench_mirror() {
  echo "== mirror =="
  work=$(mktemp -d /tmp/archgate-bench.XXXXXX)
  trap 'for p in $(cat "$work"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' RETURN
  transfer_source mirror || return 0
  local i dst dpid cfg="$work/archgate.toml"
  : >"$work/a-reg"; : >"$work/s-reg"; : >"$work/a-tar"; : >"$work/s-tar"
  for i in $(seq 1 "$runs"); do
    # registry -> registry, each tool into a registry of its own with empty storage
    # (no mount from an earlier run, no blob already there)
    for tool in a s; do
      read -r dst dpid < <(start_registry "$work/dst"); echo "$dpid" >"$work/dst.pid"
      printf '[registries."127.0.0.1:%s"]\nhttp = true\n[registries."127.0.0.1:%s"]\nhttp = true\n' "$src" "$dst" >"$cfg"
      if [ $tool = a ]; then
        seconds "$bin" --config "$cfg" mirror "127.0.0.1:$src/bench/jre:17" "127.0.0.1:$dst/mirror/jre:17" >>"$work/a-reg"
      else
        seconds skopeo copy --all --quiet --src-tls-verify=false --dest-tls-verify=false \
          "docker://127.0.0.1:$src/bench/jre:17" "docker://127.0.0.1:$dst/mirror/jre:17" >>"$work/s-reg"
      fi
      kill "$dpid"; wait "$dpid" 2>/dev/null || true
    done
    # registry -> oci-archive, into a file that does not exist yet
    rm -f "$work/a.tar" "$work/s.tar"
    seconds "$bin" --config "$cfg" mirror "127.0.0.1:$src/bench/jre:17" "oci-archive:$work/a.tar:17" >>"$work/a-tar"
    seconds skopeo copy --all --quiet --src-tls-verify=false \
      "docker://127.0.0.1:$src/bench/jre:17" "oci-archive:$work/s.tar:17" >>"$work/s-tar"
  done
  ratio_row "median seconds" "" ""
  ratio_row "registry -> registry" "$work/a-reg" "$work/s-reg"
  ratio_row "registry -> oci-archive" "$work/a-tar" "$work/s-tar"
  echo "(ratio = archgate / skopeo; below 1 is faster than skopeo)"
}

bench_archive() {
  echo "== archive =="
  work=$(mktemp -d /tmp/archgate-bench.XXXXXX)
  trap 'for p in $(cat "$work"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' RETURN
  transfer_source archive || return 0
  local dst dpid cfg="$work/archgate.toml"
  : >"$work/a-save"; : >"$work/s-save"; : >"$work/a-load"; : >"$work/s-load"
  local i arch t
  for i in $(seq 1 "$runs"); do
    read -r dst dpid < <(start_registry "$work/dst"); echo "$dpid" >"$work/dst.pid"
    printf '[registries."127.0.0.1:%s"]\nhttp = true\n[registries."127.0.0.1:%s"]\nhttp = true\n' "$src" "$dst" >"$cfg"
    # registry -> one docker save file per platform (three commands each, summed)
    rm -f "$work"/*.tar
    t=0; for arch in amd64 arm64 mips64le; do
      t=$(echo "$t + $(seconds "$bin" --config "$cfg" mirror --platform "linux/$arch" \
        "127.0.0.1:$src/bench/jre:17" "docker-archive:$work/a-$arch.tar:bench/jre:17-$arch")" | bc)
    done; echo "$t" >>"$work/a-save"
    t=0; for arch in amd64 arm64 mips64le; do
      t=$(echo "$t + $(seconds skopeo --override-arch "$arch" copy --quiet --src-tls-verify=false \
        "docker://127.0.0.1:$src/bench/jre:17" "docker-archive:$work/s-$arch.tar:bench/jre:17-$arch")" | bc)
    done; echo "$t" >>"$work/s-save"
    # each docker save file -> an empty registry
    t=0; for arch in amd64 arm64 mips64le; do
      t=$(echo "$t + $(seconds "$bin" --config "$cfg" mirror "docker-archive:$work/a-$arch.tar" \
        "127.0.0.1:$dst/a/jre:17-$arch")" | bc)
    done; echo "$t" >>"$work/a-load"
    t=0; for arch in amd64 arm64 mips64le; do
      t=$(echo "$t + $(seconds skopeo copy --quiet --dest-tls-verify=false \
        "docker-archive:$work/s-$arch.tar" "docker://127.0.0.1:$dst/s/jre:17-$arch")" | bc)
    done; echo "$t" >>"$work/s-load"
    kill "$dpid"; wait "$dpid" 2>/dev/null || true
  done
  ratio_row "median seconds (3 platforms)" "" ""
  ratio_row "registry -> docker-archive per platform" "$work/a-save" "$work/s-save"
  ratio_row "docker-archive -> registry" "$work/a-load" "$work/s-load"
  echo "(ratio = archgate / skopeo; archgate pushes a docker save file's layers as they are,"
  echo " uncompressed OCI layers; skopeo gzips them for the registry)"
}

bench_natives() {
  echo "== natives =="
  local bin runs
  release_build
  local work; work=$(mktemp -d /tmp/archgate-bench.XXXXXX)
  trap 'rm -rf "$work"' RETURN
  "$here/fetch-jre.sh" >/dev/null
  "$here/fetch-jre.sh" --set jni >/dev/null
  local deb jni
  for deb in amd64 arm64 mips64el; do
    mkdir -p "$work/roots"
    cp -a "$("$here/fetch-jre.sh" --print-root "$deb")" "$work/roots/$deb"
    jni=$("$here/fetch-jre.sh" --set jni --print-root "$deb")
    cp -a "$jni"/. "$work/roots/$deb/"
  done
  # A Spring Boot fat jar: JNA (Debian's jar) with its natives for the three CPUs, stored.
  python3 - "$work" <<'PY'
import io, sys, zipfile, pathlib
work = pathlib.Path(sys.argv[1])
trip = {"amd64": ("x86_64-linux-gnu", "linux-x86-64"), "arm64": ("aarch64-linux-gnu", "linux-aarch64"),
        "mips64el": ("mips64el-linux-gnuabi64", "linux-mips64el")}
inner = io.BytesIO()
with zipfile.ZipFile(work / "roots/amd64/usr/share/java/jna-5.13.0.jar") as src, \
        zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as out:
    for i in src.infolist():
        out.writestr(i, src.read(i))
    for deb, (t, d) in trip.items():
        out.writestr(f"com/sun/jna/{d}/libjnidispatch.so",
                     (work / f"roots/{deb}/usr/lib/{t}/jni/libjnidispatch.system.so").read_bytes())
for deb in trip:
    app = work / f"roots/{deb}/app"
    app.mkdir(exist_ok=True)
    with zipfile.ZipFile(app / "app.jar", "w", zipfile.ZIP_DEFLATED) as fat:
        fat.writestr("META-INF/maven/com.example/service/pom.properties",
                     "groupId=com.example\nartifactId=service\nversion=1.0.0\n")
        fat.writestr(zipfile.ZipInfo("BOOT-INF/lib/jna-5.13.0.jar"), inner.getvalue(), zipfile.ZIP_STORED)
PY
  jre_layout "$work/layout" "$work/roots" >/dev/null
  local cfg="$work/archgate.toml"
  : >"$cfg"
  local json="$work/out.json" i p
  ARCHGATE_CACHE="$work/cache" "$bin" verify --json --runner static --config "$cfg" "oci:$work/layout:17" >"$json" || true
  for i in $(seq 1 "$runs"); do
    ARCHGATE_CACHE="$work/cache" "$bin" verify --json --runner static --config "$cfg" "oci:$work/layout:17" >"$json" || true
    python3 - "$json" "$work" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for p in v["platforms"]:
    c = next(c for c in p["checks"] if c["name"] == "native-libs")
    with open(f"{sys.argv[2]}/n-{p['platform'].replace('/', '_')}", "a") as f:
        f.write(f"{c['duration'] / 1000}\n")
    if c["outcome"] != "passed":
        print(f"{p['platform']}: native-libs {c['outcome']}: {c['message']}", file=sys.stderr)
PY
  done
  printf '%-20s %10s  %s\n' platform "median s" "(native-libs, warm cache, target <= 0.5 s)"
  for p in linux_amd64 linux_arm64 linux_mips64le; do
    printf '%-20s %10.3f\n' "${p/_//}" "$(median <"$work/n-$p")"
  done
  du -sh "$work/roots/amd64" | awk '{print "root size (amd64): " $1}'
}

# tests/fixtures/run.Dockerfile (the one tests/run_buildah.rs builds), FROM $1.
run_dockerfile() {
  sed "s|^FROM BASE\$|FROM $1|" "$repo/tests/fixtures/run.Dockerfile"
}

# A two-stage Dockerfile: the RUN Dockerfile as stage `build`, then its
# results copied onto a fresh base (COPY --from a stage, and from an image).
multi_stage_dockerfile() {
  run_dockerfile "$1" | sed '1s/$/ AS build/'
  cat <<DOCKERFILE
FROM $1
COPY --from=build /opt/ /app/
COPY --from=build /shared/ /app/shared/
COPY --from=$1 /bin/cat /opt/tools/
DOCKERFILE
}

bench_run() {
  echo "== run =="
  local bin runs
  command -v buildah >/dev/null || { echo "run: needs buildah (scripts/setup.sh installs it)"; return 0; }
  release_build
  runs=${BENCH_RUNS:-3}
  # buildah names its build container after the base's path: no upper case in it
  # (mktemp's XXXXXX has some).
  work=/tmp/archgate-bench-run-$$
  rm -rf "$work"; mkdir -p "$work/ctx" "$work/empty"
  trap 'rm -rf "$work"' RETURN
  "$here/fetch-jre.sh" --set shell >/dev/null
  local arch deb
  for arch in amd64 arm64 mips64le; do
    deb=$arch; [ "$arch" = mips64le ] && deb=mips64el
    cp -a "$("$here/fetch-jre.sh" --set shell --print-root "$deb")" "$work/ctx/base-$arch"
  done
  printf 'FROM scratch\nARG TARGETARCH\nADD base-${TARGETARCH} /\nENV PATH /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n' \
    >"$work/base.Dockerfile"
  local all=linux/amd64,linux/arm64,linux/mips64le
  export SOURCE_DATE_EPOCH=1700000000 ARCHGATE_BUILD__NETWORK=none
  ARCHGATE_CACHE="$work/base-cache" "$bin" build -f "$work/base.Dockerfile" --platform "$all" \
    --image "oci:$work/base:latest" "$work/ctx" >/dev/null 2>"$work/base.err" || { cat "$work/base.err" >&2; return 1; }
  run_dockerfile "oci:$work/base:latest" >"$work/Dockerfile"
  multi_stage_dockerfile "oci:$work/base:latest" >"$work/multi.Dockerfile"
  echo "base: dash + coreutils, $(du -sh "$work/ctx/base-amd64" | cut -f1) amd64, $(du -sh "$work/ctx/base-arm64" | cut -f1) arm64, $(du -sh "$work/ctx/base-mips64le" | cut -f1) mips64le; 5 RUN steps x 3 platforms; $runs runs; cores: $(nproc)"

  # archgate: a fresh cache (no layer, no unpacked root, no step), then the same again.
  ag() { # [DOCKERFILE]
    ARCHGATE_CACHE="$work/cache" "$bin" build -f "${1:-$work/Dockerfile}" --platform "$all" \
      --image "oci:$work/a:v1" "$work/empty"
  }
  local i
  : >"$work/a-cold"; : >"$work/a-cached"; : >"$work/m-cold"; : >"$work/m-cached"
  for i in $(seq 1 "$runs"); do
    rm -rf "$work/cache" "$work/a"
    seconds ag >>"$work/a-cold"
    seconds ag >>"$work/a-cached"
    rm -rf "$work/cache" "$work/a"
    seconds ag "$work/multi.Dockerfile" >>"$work/m-cold"
    seconds ag "$work/multi.Dockerfile" >>"$work/m-cached"
  done
  # buildah: build, then manifest push --all into an OCI layout (what archgate writes).
  bb() { # DRIVER STORAGE-DIR [build flags...]
    local driver=$1 st=$2; shift 2
    "$here/buildah-userns.sh" --storage-driver "$driver" --root "$st/root" --runroot "$st/run" build --quiet \
      --timestamp "$SOURCE_DATE_EPOCH" --isolation chroot --platform "$all" --manifest bench "$@" \
      -f "$work/Dockerfile" "$work/empty"
    rm -rf "$work/b"
    buildah --storage-driver "$driver" --root "$st/root" --runroot "$st/run" manifest push --all --quiet \
      bench "oci:$work/b:v1"
  }
  local driver
  for driver in vfs overlay; do
    : >"$work/b-$driver"; : >"$work/bl-$driver-cold"; : >"$work/bl-$driver-cached"
    for i in $(seq 1 "$runs"); do
      rm -rf "$work/st"; seconds bb "$driver" "$work/st" >>"$work/b-$driver"
      rm -rf "$work/st"; seconds bb "$driver" "$work/st" --layers >>"$work/bl-$driver-cold"
      # The same storage again: every step from buildah's cache (a new list, as archgate's new index).
      buildah --storage-driver "$driver" --root "$work/st/root" --runroot "$work/st/run" manifest rm bench >/dev/null
      seconds bb "$driver" "$work/st" --layers >>"$work/bl-$driver-cached"
    done
    rm -rf "$work/st"
  done
  local ac ak f label m row
  # min-max of the numbers in a file
  spread() { sort -n "$1" | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.2f-%.2f", lo, hi}'; }
  ac=$(median <"$work/a-cold"); ak=$(median <"$work/a-cached")
  printf '%-46s %8s %12s %12s\n' "median seconds (3 platforms)" seconds "archgate/it" "min-max"
  printf '%-46s %8.2f %12s %12s\n' "archgate cold (empty cache)" "$ac" "" "$(spread "$work/a-cold")"
  printf '%-46s %8.2f %12s %12s\n' "archgate cached rebuild" "$ak" "" "$(spread "$work/a-cached")"
  printf '%-46s %8.2f %12s %12s\n' "archgate two stages + COPY --from, cold" "$(median <"$work/m-cold")" "" "$(spread "$work/m-cold")"
  printf '%-46s %8.2f %12s %12s\n' "archgate two stages + COPY --from, cached" "$(median <"$work/m-cached")" "" "$(spread "$work/m-cached")"
  for driver in vfs overlay; do
    for row in "b-$driver:buildah $driver, cold (default, no --layers)" "bl-$driver-cold:buildah $driver --layers, cold" \
      "bl-$driver-cached:buildah $driver --layers, cached rebuild"; do
      f=${row%%:*} label=${row#*:}
      m=$(median <"$work/$f")
      case $f in
        *cached) printf '%-46s %8.2f %12.3f %12s\n' "$label" "$m" "$(echo "$ak / $m" | bc -l)" "$(spread "$work/$f")" ;;
        *) printf '%-46s %8.2f %12.2f %12s\n' "$label" "$m" "$(echo "$ac / $m" | bc -l)" "$(spread "$work/$f")" ;;
      esac
    done
  done
  echo "(archgate/it: archgate cold / that cold, archgate cached / that cached; buildah's"
  echo " times include manifest push; targets: cold <= 0.7, archgate cached rebuild < 1 s;"
  echo " load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
  unset SOURCE_DATE_EPOCH ARCHGATE_BUILD__NETWORK
}

bench_faults() {
  echo "== faults =="
  local n=${BENCH_RUNS:-10} i log hog=() pass=0
  (cd "$repo" && cargo test --locked --test tests --no-run --quiet 2>/dev/null)
  if [ "${BENCH_HOG:-0}" = 1 ]; then
    for _ in $(seq 1 "$(nproc)"); do yes >/dev/null & hog+=($!); done
    echo "CPU hog: ${#hog[@]} x yes"
  fi
  log=$(mktemp)
  for i in $(seq 1 "$n"); do
    if (cd "$repo" && cargo test --locked --quiet --test tests faults:: -- --test-threads=4 --nocapture) >"$log" 2>&1; then
      pass=$((pass + 1)); echo "run $i: passed"
    else
      echo "run $i: FAILED"; grep -E -A4 "panicked" "$log" | head -24
    fi
    grep -E 'at (10|30)%:' "$log" | sed 's/^/  /'
  done
  [ ${#hog[@]} -eq 0 ] || kill "${hog[@]}" 2>/dev/null || true
  rm -f "$log"
  echo "faults: $pass of $n runs passed"
}

want build && bench_build
want verify && bench_verify
want service && bench_service
want natives && bench_natives
want merge && "$here/bench-merge.sh" merge
want mirror && bench_mirror
want archive && bench_archive
want faults && bench_faults
want run && bench_run
exit 0
