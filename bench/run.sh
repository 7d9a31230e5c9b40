#!/usr/bin/env bash
# Benchmarks mcwan against the I/O floor (cp -r of the same tree) and against what Argo CD
# and Flux run on the output anyway (kubectl kustomize over every cluster directory), and
# what verifying costs: render against `render --no-verify`, and `mcwan verify OUT`.
# Every figure of one size comes from the same run: compare them as ratios.
#
# Usage: bench/run.sh [SIZE ...]   SIZE is CLUSTERSxSERVICES; default 10x100 50x1000 100x1000
#        bench/run.sh cluster [SIZE ...]   only `render --cluster` of one cluster (what the
#                          Argo CD plugin runs): wall time and peak RSS, the best of ROUNDS,
#                          beside `--no-verify` and `validate` (loading and checking alone);
#                          default size 100x5000; writes no tree
#
# Environment:
#   ROUNDS=3      fresh renders and copies per size, interleaved; the minimum of each counts
#                 (the disk and CPU of a shared machine are noisy). Every round writes new
#                 directories and nothing is deleted until the end: ext4 slows the creation of
#                 files for minutes after many were deleted (it skips recently freed inodes),
#                 which would penalize whichever command ran next. Needs free disk for
#                 3 x ROUNDS trees of every size (100x5000 is about 9 GB a tree).
#   SAMPLE=2      cluster directories kustomize builds per size; its time is scaled to every
#                 cluster (all clusters are the same size). SAMPLE=0 skips kustomize.
#   LAYOUTS=1     also times kustomize on one cluster of the last size, for both layouts.
#
# The generated clustersets have 2 exporters per service, 2 policies and 20 namespaces,
# every namespace in every cluster: every cluster imports every service.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=$PWD/target/release/mcwan
rounds=${ROUNDS:-3}
sample=${SAMPLE:-2}
mode=tree
if [ "${1:-}" = cluster ]; then mode=cluster; shift; fi
if [ "$mode" = cluster ]; then default="100x5000"; else default="10x100 50x1000 100x1000"; fi
read -r -a sizes <<< "${*:-$default}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Prints "seconds peak-RSS-KiB" of one command, its output discarded.
measure() { /usr/bin/time -f '%e %M' -o "$work/time" "$@" > /dev/null 2>&1; tail -n 1 "$work/time"; }
min() { python3 -c "import sys; print(min(float(x) for x in sys.argv[1:]))" "$@"; }
max() { python3 -c "import sys; print(max(int(x) for x in sys.argv[1:]))" "$@"; }

if [ "$mode" = cluster ]; then
  echo "# $(date -u +%F) $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, ROUNDS=$rounds: render --cluster cluster-0"
  echo
  echo '| size | objects | MB | render --cluster s | RSS MiB | --no-verify s | validate s |'
  echo '|---|---|---|---|---|---|---|'
  for size in "${sizes[@]}"; do
    clusters=${size%x*}; services=${size#*x}
    input="$work/$size/in"
    "$bin" generate -o "$input" --clusters "$clusters" --services "$services" \
      --exporters 2 --policies 2 --namespaces 20
    "$bin" render "$input" --cluster cluster-0 > "$work/$size/stream.yaml"
    objects=$(grep -c '^kind: ' "$work/$size/stream.yaml")
    bytes=$(stat -c %s "$work/$size/stream.yaml")
    times=(); rss=(); unverified=(); validates=()
    for _ in $(seq "$rounds"); do
      read -r seconds kib < <(measure "$bin" render "$input" --cluster cluster-0)
      times+=("$seconds"); rss+=("$kib")
      read -r seconds _ < <(measure "$bin" render "$input" --cluster cluster-0 --no-verify)
      unverified+=("$seconds")
      read -r seconds _ < <(measure "$bin" validate "$input")
      validates+=("$seconds")
    done
    python3 -c "import sys; s, o, b, t, r, n, v = sys.argv[1:]; print(f'| {s} | {o} | {int(b)/1e6:.1f} | {float(t):.2f} | {int(r)//1024} | {float(n):.2f} | {float(v):.2f} |')" \
      "$size" "$objects" "$bytes" "$(min "${times[@]}")" "$(max "${rss[@]}")" \
      "$(min "${unverified[@]}")" "$(min "${validates[@]}")"
  done
  exit 0
fi
# Seconds kustomize takes to build each directory given, in sequence.
kustomize_all() {
  local start
  start=$(date +%s.%N)
  for dir in "$@"; do kubectl kustomize "$dir" > /dev/null; done
  python3 -c "print(round($(date +%s.%N) - $start, 2))"
}

echo "# $(date -u +%F) $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, ROUNDS=$rounds SAMPLE=$sample"
echo
echo '| size | objects | MB | render s | RSS MiB | objects/s | MB/s | cp -r s | kustomize s | check s | render/cp | render/kustomize | check/render | no-verify s | verify s | render/no-verify | verify/render |'
echo '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|'
for size in "${sizes[@]}"; do
  clusters=${size%x*}; services=${size#*x}
  input="$work/$size/in"; out="$work/$size/out-1"
  "$bin" generate -o "$input" --clusters "$clusters" --services "$services" \
    --exporters 2 --policies 2 --namespaces 20
  renders=(); rss=(); copies=(); unverified=(); verifies=()
  for round in $(seq "$rounds"); do
    sync
    read -r seconds kib < <(measure "$bin" render "$input" -o "$work/$size/out-$round")
    renders+=("$seconds"); rss+=("$kib")
    sync
    read -r seconds _ < <(measure "$bin" render "$input" -o "$work/$size/unverified-$round" --no-verify)
    unverified+=("$seconds")
    read -r seconds _ < <(measure "$bin" verify "$work/$size/out-$round")
    verifies+=("$seconds")
    sync
    read -r seconds _ < <(measure cp -r "$work/$size/out-$round" "$work/$size/copy-$round")
    copies+=("$seconds")
  done
  checks=()
  for _ in $(seq "$rounds"); do
    sync
    read -r seconds _ < <(measure "$bin" check "$input" -o "$out")
    checks+=("$seconds")
  done
  objects=$(find "$out" -name '*.yaml' ! -name kustomization.yaml | wc -l)
  bytes=$(du -sb "$out" | cut -f1)
  kustomize="-"
  if [ "$sample" -gt 0 ]; then
    mapfile -t dirs < <(find "$out" -mindepth 2 -maxdepth 2 -name kustomization.yaml -printf '%h\n' | sort | head -n "$sample")
    kustomize=$(python3 -c "print(round($(kustomize_all "${dirs[@]}") * $clusters / ${#dirs[@]}, 1))")
  fi
  python3 - "$size" "$objects" "$bytes" "$(min "${renders[@]}")" "$(max "${rss[@]}")" \
    "$(min "${copies[@]}")" "$kustomize" "$(min "${checks[@]}")" \
    "$(min "${unverified[@]}")" "$(min "${verifies[@]}")" <<'PY'
import sys
size, objects, nbytes, render, rss, cp, kust, check, unverified, verify = sys.argv[1:]
objects, nbytes, render, rss, cp, check = int(objects), int(nbytes), float(render), int(rss), float(cp), float(check)
unverified, verify = max(float(unverified), 0.01), float(verify)
render = max(render, 0.01)
ratio_k = "-" if kust == "-" else f"{render / float(kust):.4f}"
print(f"| {size} | {objects} | {nbytes/1e6:.1f} | {render:.2f} | {rss//1024} | {objects/render:.0f} "
      f"| {nbytes/1e6/render:.1f} | {cp:.2f} | {kust} | {check:.2f} | {render/max(cp, 0.01):.2f} "
      f"| {ratio_k} | {check/render:.2f} | {unverified:.2f} | {verify:.2f} | {render/unverified:.2f} "
      f"| {verify/render:.2f} |")
PY
done

if [ "${LAYOUTS:-1}" = 1 ]; then
  size=${sizes[-1]}
  echo
  echo "Consumers' cost at $size: kustomize on one cluster, per layout"
  echo
  echo '| layout | kustomizations | largest (objects) | kustomize s, all of them | slowest one s |'
  echo '|---|---|---|---|---|'
  for layout in cluster namespace; do
    "$bin" render "$work/$size/in" -o "$work/layout-$layout" --layout "$layout" > /dev/null
    cluster=$(find "$work/layout-$layout" -mindepth 1 -maxdepth 1 -type d ! -name sdwan | sort | head -n 1)
    if [ "$layout" = cluster ]; then units=("$cluster"); else mapfile -t units < <(find "$cluster" -mindepth 1 -maxdepth 1 -type d | sort); fi
    total=0; slowest=0; largest=0
    for unit in "${units[@]}"; do
      seconds=$(kustomize_all "$unit")
      count=$(find "$unit" -name '*.yaml' ! -name kustomization.yaml | wc -l)
      total=$(python3 -c "print(round($total + $seconds, 2))")
      slowest=$(python3 -c "print(max($slowest, $seconds))")
      largest=$(( count > largest ? count : largest ))
    done
    echo "| $layout | ${#units[@]} | $largest | $total | $slowest |"
  done
fi
