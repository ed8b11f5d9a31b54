#!/usr/bin/env bash
# The main job on the embedded default: build the seed's JDK image for
# linux/amd64, linux/arm64 and linux/mips64le into an OCI layout directory
# (oci:archgate-out/image:latest, no registry), verify it under emulation, and
# print the coverage table. Set-up included (apt packages, Debian's JREs).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/fetch-jre.sh
cargo build --release --locked
bin=$PWD/target/release/archgate

# The build context: per architecture a Debian runtime root and the JDK home,
# hard-linked from the fetched JREs (outside the checkout; the builder never
# follows symlinks out of its context).
cache=${ARCHGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/archgate}
ctx=$cache/main-job/context
rm -rf "$ctx"
mkdir -p "$ctx"
for arch in amd64 arm64 mips64le; do
  deb=$arch; [ "$arch" = mips64le ] && deb=mips64el
  root=$(./scripts/fetch-jre.sh --print-root "$deb")
  # hard links where the file system allows (instant), else a copy
  cp -al "$root" "$ctx/base-$arch" 2>/dev/null || cp -a "$root" "$ctx/base-$arch"
  cp -al "$root/usr/lib/jvm/java-17-openjdk-$deb" "$ctx/jdk-$arch" 2>/dev/null ||
    cp -a "$root/usr/lib/jvm/java-17-openjdk-$deb" "$ctx/jdk-$arch"
done
# The JDK goes to /opt/jdk only: keep it out of the base layer.
printf 'base-*/usr/lib/jvm\n' >"$ctx/.dockerignore"

# archgate run: build (the Dockerfile, every configured platform) -> verify the
# index digest under QEMU -> gate -> reports in archgate-report/.
status=0
ARCHGATE_BUILD__DOCKERFILE=examples/jdk/Dockerfile \
ARCHGATE_BUILD__CONTEXT="$ctx" \
  "$bin" run || status=$?
echo
cat archgate-report/coverage.md
exit "$status"
