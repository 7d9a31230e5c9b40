#!/usr/bin/env bash
# Measures mcwan on hostile inputs: the diagnostic, wall time and peak memory of
# `mcwan validate` for each case, as a Markdown table for docs/reliability.md.
# Usage: bench/hostile.sh [path/to/mcwan]   (default: target/release/mcwan, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/mcwan}"
[ -x "$bin" ] || cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

case_file() { # name, then writes the hostile file content to stdout
  local name=$1 dir="$work/$1"
  cp -r examples/payment "$dir"
  "gen_$name" > "$dir/clusters/cluster-1/hostile.yaml"
  echo "$dir"
}
gen_alias_bomb() {
  printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: secure\n  labels:\n    a0: &a0 [x, x, x, x, x, x, x, x, x]\n'
  for i in 1 2 3 4 5 6 7 8; do printf '    a%d: &a%d [%s]\n' "$i" "$i" "$(printf '*a%d, ' $((i-1)) $((i-1)) $((i-1)) $((i-1)) $((i-1)) $((i-1)) $((i-1)) $((i-1)) | sed 's/, $//'), *a$((i-1))"; done
}
gen_deep_nesting() { python3 -c "print('a: ' + '['*10000 + ']'*10000)"; }
# The rest fill (most of) the 8 MiB file limit.
gen_flow_nesting_8mb() { python3 -c "print('a: ' + '['*8000000)"; }
gen_nesting_behind_a_quote() { python3 -c "print('a: [\"' + ']'*1000 + '\", ' + '['*8000000)"; }
gen_million_documents() { python3 -c "print('a: 1\n---\n'*900000)"; }
gen_two_million_items() { python3 -c "print('a:\n' + '- a\n'*2000000)"; }
gen_four_million_flow_items() { python3 -c "print('a: [' + 'a,'*4000000 + ']')"; }
gen_long_keys_nested() {
  python3 -c "
k = 'k' * 100000
print(''.join(' ' * (2 * d) + '? ' + k + '\n' + ' ' * (2 * d) + ':\n' for d in range(30)), end='')
print(''.join(' ' * 60 + 'x%d: 1\n' % i for i in range(60000)), end='')"
}
gen_many_diagnostics() {
  python3 -c "
print('apiVersion: mcw.l7mp.io/v1alpha1\nkind: WANRoute\nmetadata: {name: s, namespace: secure}\nspec:')
print(''.join('  f%d: 1\n' % i for i in range(100000)), end='')"
}
gen_huge_scalar() { python3 -c "print('apiVersion: v1\nkind: Namespace\nmetadata: {name: secure, labels: {x: \"' + 'a'*(50*1024*1024) + '\"}}')"; }
gen_invalid_utf8() { printf 'kind: \xff\xfe\n'; }
gen_duplicate_key() { printf 'apiVersion: v1\nkind: Namespace\nkind: Service\nmetadata: {name: secure}\n'; }
gen_list_document() { printf -- '- a\n- b\n'; }
gen_scalar_document() { printf 'just a string\n'; }
gen_empty_file() { :; }
gen_only_separator() { printf -- '---\n'; }

echo "| case | diagnostic | time | peak memory |"
echo "|---|---|---|---|"
for name in alias_bomb deep_nesting flow_nesting_8mb nesting_behind_a_quote million_documents \
  two_million_items four_million_flow_items long_keys_nested many_diagnostics huge_scalar invalid_utf8 duplicate_key list_document scalar_document empty_file only_separator; do
  dir=$(case_file "$name")
  codes=$( { /usr/bin/time -f '%e %M' -o "$work/time" "$bin" validate "$dir" --format github || true; } \
    | grep 'hostile.yaml' | sed 's/.*title=\([a-z-]*\)::.*/\1/' | sort -u | paste -sd, -)
  read -r seconds kb < <(tail -n 1 "$work/time")
  printf '| %s | `%s` | %s s | %s MiB |\n' "${name//_/ }" "${codes:-none}" "$seconds" "$((kb / 1024))"
done
