#!/usr/bin/env bash
# The main job's build contexts, from Debian's real packages (fetched by
# scripts/fetch-jre.sh, cached outside the checkout):   scripts/contexts.sh DIR
#   DIR/context  base-ARCH/ (a Debian runtime root) and jdk-ARCH/ (the JDK home)
#                for examples/base/Dockerfile and examples/jdk/Dockerfile;
#   DIR/service  service.jar (examples/service/src, `javac --release 8`),
#                lz4-java.jar, and lib-ARCH/ (Debian's liblz4-java.so for ARCH
#                with liblz4.so.1 and libxxhash.so.0) for examples/service/Dockerfile.
# Files are hard-linked where the file system allows (the builder never follows
# symlinks out of its context). Used by scripts/main-job.sh and scripts/bench.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
out=${1:?usage: scripts/contexts.sh DIR}
ctx=$out/context
svc=$out/service
rm -rf "$ctx" "$svc"
mkdir -p "$ctx" "$svc/classes"
link() { cp -al "$1" "$2" 2>/dev/null || cp -a "$1" "$2"; }
for arch in amd64 arm64 mips64le; do
  deb=$arch; [ "$arch" = mips64le ] && deb=mips64el
  root=$("$here/fetch-jre.sh" --print-root "$deb")
  link "$root" "$ctx/base-$arch"
  link "$root/usr/lib/jvm/java-17-openjdk-$deb" "$ctx/jdk-$arch"
  jni=$("$here/fetch-jre.sh" --set jni --print-root "$deb")
  mkdir -p "$svc/lib-$arch"
  for so in liblz4-java.so liblz4.so.1 libxxhash.so.0; do
    found=$(find "$jni/usr/lib" -name "$so" | head -n 1)
    [ -n "$found" ] || { echo "contexts: $so not in $jni (scripts/fetch-jre.sh --set jni)" >&2; exit 3; }
    cp -L "$found" "$svc/lib-$arch/$so"
  done
done
# The JDK goes to /opt/jdk only: keep it out of the base layer.
printf 'base-*/usr/lib/jvm\n' >"$ctx/.dockerignore"

# The service jar, from source: Java 8 bytecode every JRE here runs.
command -v javac >/dev/null || { echo "contexts: javac not found: apt-get install openjdk-17-jdk-headless (scripts/setup.sh)" >&2; exit 3; }
lz4=$(readlink -f "$("$here/fetch-jre.sh" --set jni --print-root amd64)/usr/share/java/lz4-java.jar")
cp "$lz4" "$svc/lz4-java.jar"
javac --release 8 -cp "$svc/lz4-java.jar" -d "$svc/classes" \
  "$repo/examples/service/src/archgate/example/Main.java"
printf 'Main-Class: archgate.example.Main\nPremain-Class: archgate.example.Main\nClass-Path: lz4-java.jar\n' >"$svc/MANIFEST.MF"
jar cfm "$svc/service.jar" "$svc/MANIFEST.MF" -C "$svc/classes" .
rm -rf "$svc/classes" "$svc/MANIFEST.MF"
