#!/usr/bin/env bash
# The main job on the embedded default, the seed's whole chain for linux/amd64,
# linux/arm64 and linux/mips64le, into OCI layout directories under
# archgate-out/ (no registry, no container engine):
#   1. a Debian base            examples/base/Dockerfile    -> oci:archgate-out/base:latest
#   2. the JDK image FROM it    examples/jdk/Dockerfile     -> oci:archgate-out/jdk:latest
#   3. a Java service FROM that examples/service/Dockerfile -> oci:archgate-out/image:latest
#      (a jar built here from examples/service/src that loads Debian's real
#      lz4-java JNI library for each architecture and prints a ready line),
#      built, verified under emulation (native-libs, service-start, ...), gated,
#      reported by `archgate run`, which prints the coverage table.
# Set-up included (apt packages, Debian's JREs and JNI builds).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/fetch-jre.sh
./scripts/fetch-jre.sh --set jni
cargo build --release --locked
bin=$PWD/target/release/archgate

# The build contexts, outside the checkout.
cache=${ARCHGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/archgate}
./scripts/contexts.sh "$cache/main-job"
ctx=$cache/main-job/context
svc=$cache/main-job/service

# 1 and 2: the base, then the JDK image FROM it (each an index of three platforms).
"$bin" build -f examples/base/Dockerfile --image oci:archgate-out/base:latest "$ctx"
"$bin" build -f examples/jdk/Dockerfile --image oci:archgate-out/jdk:latest "$ctx"

# 3. archgate run: build the service FROM the JDK image -> verify the index
# digest under QEMU (the service's ENTRYPOINT must print its ready line) ->
# gate -> reports in archgate-report/.
status=0
ARCHGATE_BUILD__DOCKERFILE=examples/service/Dockerfile \
ARCHGATE_BUILD__CONTEXT="$svc" \
ARCHGATE_VERIFY__SERVICE__READY="example service ready" \
  "$bin" run || status=$?
echo
cat archgate-report/coverage.md
exit "$status"
