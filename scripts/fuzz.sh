#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that read untrusted input (not in CI):
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 60 s each, every target
# Targets (fuzz/fuzz_targets/): dockerfile, references (image refs, locations,
# platforms), manifest (index/manifest/config JSON), layer (the tar/gzip
# extractor, checking nothing is written outside its root), elf.
# cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP=1 enables them on the
# machine's stable toolchain. Findings land in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(dockerfile references manifest layer elf)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  seeds=(); [ -d "seeds/$t" ] && seeds=("seeds/$t")
  log=$(mktemp)
  if cargo fuzz run -O "$t" "corpus/$t" "${seeds[@]}" -- -max_total_time="$secs" -rss_limit_mb=2048 >"$log" 2>&1; then
    echo "$t: $(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1), $(grep -Eo 'cov: [0-9]+' "$log" | tail -1), no findings"
  else
    status=1
    echo "$t: FINDING — see fuzz/artifacts/$t/ and:"; grep -E 'panicked|SUMMARY|Test unit written' "$log" | head -5
  fi
  rm -f "$log"
done
exit "$status"
