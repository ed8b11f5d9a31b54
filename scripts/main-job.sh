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

# The build contexts, outside the checkout (the builder never follows symlinks
# out of its context): files hard-linked where the file system allows.
cache=${ARCHGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/archgate}
ctx=$cache/main-job/context
svc=$cache/main-job/service
rm -rf "$ctx" "$svc"
mkdir -p "$ctx" "$svc/classes"
link() { cp -al "$1" "$2" 2>/dev/null || cp -a "$1" "$2"; }
for arch in amd64 arm64 mips64le; do
  deb=$arch; [ "$arch" = mips64le ] && deb=mips64el
  root=$(./scripts/fetch-jre.sh --print-root "$deb")
  # base-ARCH: the Debian runtime root; jdk-ARCH: the JDK home.
  link "$root" "$ctx/base-$arch"
  link "$root/usr/lib/jvm/java-17-openjdk-$deb" "$ctx/jdk-$arch"
  # lib-ARCH: Debian's liblz4-java.so for ARCH and the libraries it needs.
  jni=$(./scripts/fetch-jre.sh --set jni --print-root "$deb")
  mkdir -p "$svc/lib-$arch"
  for so in liblz4-java.so liblz4.so.1 libxxhash.so.0; do
    found=$(find "$jni/usr/lib" -name "$so" | head -n 1)
    [ -n "$found" ] || { echo "main-job: $so not in $jni" >&2; exit 3; }
    cp -L "$found" "$svc/lib-$arch/$so"
  done
done
# The JDK goes to /opt/jdk only: keep it out of the base layer.
printf 'base-*/usr/lib/jvm\n' >"$ctx/.dockerignore"

# The service jar, from source: Java 8 bytecode every JRE here runs.
lz4=$(readlink -f "$(./scripts/fetch-jre.sh --set jni --print-root amd64)/usr/share/java/lz4-java.jar")
cp "$lz4" "$svc/lz4-java.jar"
javac --release 8 -cp "$svc/lz4-java.jar" -d "$svc/classes" \
  examples/service/src/archgate/example/Main.java
printf 'Main-Class: archgate.example.Main\nClass-Path: lz4-java.jar\n' >"$svc/MANIFEST.MF"
jar cfm "$svc/service.jar" "$svc/MANIFEST.MF" -C "$svc/classes" .
rm -rf "$svc/classes" "$svc/MANIFEST.MF"

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
