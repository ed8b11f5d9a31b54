#!/usr/bin/env bash
# The test command: set-up, then the whole suite. Registry tests start real
# `docker-registry` servers on 127.0.0.1 themselves (tests/common).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# Real JREs for amd64, arm64 and mips64el (cached outside the checkout; no-op when cached).
./scripts/fetch-jre.sh
# Real JNI libraries (lz4-java, snappy-java, JNA) for the same three, for the service gate.
./scripts/fetch-jre.sh --set jni
./scripts/fetch-jre.sh --set newer --arch amd64
# dash and coreutils for the three, for the RUN tests.
./scripts/fetch-jre.sh --set shell
cargo test --locked -- --test-threads=4
