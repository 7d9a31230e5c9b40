#!/usr/bin/env bash
# Benchmarks mcwan against the I/O floor (cp -r of the same tree) and against what Argo CD
# and Flux run on the output anyway (kubectl kustomize over every cluster directory).
# Every figure of one size comes from the same run, so compare them as ratios.
#
# Usage: bench/run.sh [SIZE ...]      SIZE is CLUSTERSxSERVICES, default: 10x100 20x250 40x500
#        KUSTOMIZE=0 bench/run.sh ... skips kustomize (it is slow on large trees).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/mcwan
sizes=("${@:-10x100 20x250 40x500}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
measure() { /usr/bin/time -f '%e %M' -o "$work/time" "$@" > /dev/null 2>&1; tail -n 1 "$work/time"; }

printf '| size | objects | MB | render s | RSS MiB | objects/s | MB/s | cp -r s | kustomize s | check s | render/cp | render/kustomize |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|---|\n'
for size in ${sizes[@]}; do
  clusters=${size%x*}; services=${size#*x}
  input="$work/in-$size"; out="$work/out-$size"
  "$bin" generate -o "$input" --clusters "$clusters" --services "$services" --exporters 2 --namespaces 20
  read -r render_s rss_kb < <(measure "$bin" render "$input" -o "$out")
  objects=$(find "$out" -name '*.yaml' ! -name kustomization.yaml | wc -l)
  bytes=$(du -sb "$out" | cut -f1)
  cp_best=""
  for _ in 1 2 3; do
    rm -rf "$work/copy"
    read -r cp_s _ < <(measure cp -r "$out" "$work/copy")
    cp_best=$(python3 -c "print(min(float('$cp_s'), float('${cp_best:-1e9}')))")
  done
  kustomize_s="-"
  if [ "${KUSTOMIZE:-1}" = 1 ]; then
    start=$(date +%s.%N)
    for dir in "$out"/*/; do [ -f "$dir/kustomization.yaml" ] && kubectl kustomize "$dir" > /dev/null; done
    kustomize_s=$(python3 -c "print(round($(date +%s.%N) - $start, 2))")
  fi
  read -r check_s _ < <(measure "$bin" check "$input" -o "$out")
  python3 - "$size" "$objects" "$bytes" "$render_s" "$rss_kb" "$cp_best" "$kustomize_s" "$check_s" <<'PY'
import sys
size, objects, nbytes, render, rss, cp, kust, check = sys.argv[1:]
objects, nbytes, render, rss, cp, check = int(objects), int(nbytes), float(render), int(rss), float(cp), float(check)
ratio_k = "-" if kust == "-" else f"{render / float(kust):.4f}"
print(f"| {size} | {objects} | {nbytes/1e6:.1f} | {render:.2f} | {rss//1024} | {objects/render:.0f} | {nbytes/1e6/render:.1f} | {cp:.2f} | {kust} | {check:.2f} | {render/max(cp, 0.01):.2f} | {ratio_k} |")
PY
done
