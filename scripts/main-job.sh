#!/usr/bin/env bash
# The main job on the embedded default (an OCI layout directory, no registry):
# set-up, build archgate, run it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked
bin=target/release/archgate
echo "== effective configuration"
"$bin" config
if "$bin" --help | grep -q '^  run '; then
  "$bin" run
else
  echo "== archgate run (build + verify into oci:archgate-out) is not in this version yet;"
  echo "   available now: archgate inspect IMAGE, archgate config (see README)."
fi
