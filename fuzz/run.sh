#!/usr/bin/env bash
# Runs the declaration fuzzer for a given number of seconds (default 600). Not part of CI.
# Needs the nightly toolchain and cargo-fuzz: rustup toolchain install nightly;
# cargo install cargo-fuzz. Safe Rust needs no sanitizer, so it runs without one, which
# is several times faster. Debug assertions stay on (-a): with them every rendered object
# is also read and written through yaml_serde, and any difference from mcwan's direct YAML
# path is a finding. Findings land in fuzz/artifacts/declaration/.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-600}"
mkdir -p corpus/declaration
cp -n seeds/* corpus/declaration/ 2>/dev/null || true
exec cargo +nightly fuzz run -a --sanitizer none declaration corpus/declaration -- -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
