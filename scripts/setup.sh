#!/usr/bin/env bash
# Installs what archgate's tests and main job need on a fresh Debian/Ubuntu machine.
# Idempotent: installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail

need=()
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v openssl >/dev/null || need+=(openssl)
command -v skopeo >/dev/null || need+=(skopeo)
command -v curl >/dev/null || need+=(curl)
# interop: tests/layout.rs reads and writes layouts with umoci and fails without it
command -v umoci >/dev/null || need+=(umoci)
# verify: the sandbox and the emulators for foreign CPUs
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
# build: tests/run_buildah.rs and `bench.sh run` compare RUN with buildah (scripts/buildah-userns.sh)
command -v buildah >/dev/null || need+=(buildah)
# archives: containerd's importer (what K3s runs) reads the archives archgate writes;
# the tests start their own private containerd
command -v containerd >/dev/null && command -v ctr >/dev/null || need+=(containerd)
# clients: tests/clients.rs makes a real zstd layer (what BuildKit's compression=zstd writes)
command -v zstd >/dev/null || need+=(zstd)
# reports: xmllint validates junit.xml in the tests
command -v xmllint >/dev/null || need+=(libxml2-utils)
# CI templates: the Jenkins step runs under groovy; gitlab-ci-local needs rsync
command -v groovy >/dev/null || need+=(groovy)
command -v rsync >/dev/null || need+=(rsync)
# the main job's example service (examples/service) and its test fixture: javac --release 8
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
# native-libs' musl tests: Debian's musl (a real musl loader and libc) and musl-gcc
command -v musl-gcc >/dev/null && [ -e /lib/ld-musl-x86_64.so.1 ] || need+=(musl musl-tools)

if [ "${#need[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "setup: installing ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Debian's docker-registry package starts a registry on all interfaces; archgate's
# tests start their own on 127.0.0.1 and never need that one.
if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
# Likewise Debian's containerd package starts the system daemon; the tests never use it.
if command -v systemctl >/dev/null && systemctl is-active --quiet containerd 2>/dev/null; then
  systemctl stop containerd || true
fi

# gitlab-ci-local runs the GitLab template for real in the tests (4.60.1: the last
# release for Node 20), installed outside the checkout.
gcl_dir="${ARCHGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/archgate}/tools/gcl"
if [ ! -x "$gcl_dir/node_modules/.bin/gitlab-ci-local" ]; then
  if command -v npm >/dev/null; then
    echo "setup: installing gitlab-ci-local@4.60.1 into $gcl_dir" >&2
    mkdir -p "$gcl_dir"
    npm install --prefix "$gcl_dir" --no-audit --no-fund --loglevel=error gitlab-ci-local@4.60.1 >/dev/null
  else
    echo "setup: npm not found: the GitLab template test will fail (install Node.js 20 and npm)" >&2
  fi
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 2
fi
