#!/usr/bin/env bash
# Checks a change to an mcwan declarations repository in CI: every problem as an
# annotation, a failure when the committed output is stale, and a review summary (what the
# change renders differently from the base commit, and how reachability changes) appended
# to a Markdown file such as GitHub's step summary.
#
# Environment (all optional):
#   MCWAN_DIR      the declarations repository (default: .)
#   MCWAN_OUT      the committed rendered output; empty when it is not committed (rendered
#                  by Argo CD), and then nothing is checked against it
#   MCWAN_BASE     the commit to compare with; the summary is skipped without it
#   MCWAN_FORMAT   diagnostics format: github (default) or human
#   MCWAN_SUMMARY  the Markdown file to append to (default: $GITHUB_STEP_SUMMARY)
#   GITHUB_OUTPUT  where `changed=true|false` is written, if set
# Exit status: 0 valid and up to date, 1 invalid or stale, 2 trouble.
set -uo pipefail

dir=${MCWAN_DIR:-.}
out=${MCWAN_OUT:-}
base=${MCWAN_BASE:-}
format=${MCWAN_FORMAT:-github}
summary=${MCWAN_SUMMARY:-${GITHUB_STEP_SUMMARY:-/dev/null}}
# GitHub shows at most 1 MiB of a step's summary.
summary_limit=1000000

status=0
mcwan validate "$dir" --format "$format" || status=$?
if [ "$status" -eq 0 ] && [ -n "$out" ]; then
  mcwan check "$dir" -o "$out" --format "$format" || status=$?
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

note() { printf '%s\n\n' "$*" >> "$summary"; }

changed=false
if [ "$status" -ne 0 ]; then
  note "**mcwan**: the declarations do not validate, or the committed output is stale; see the annotations."
elif [ -z "$base" ]; then
  note "**mcwan**: no base commit given; no review summary."
elif ! git -C "$dir" cat-file -e "$base^{commit}" 2>/dev/null; then
  note "**mcwan**: base commit \`$base\` is not in the clone; check out with \`fetch-depth: 0\` for a review summary."
else
  # The declarations as they were at the base commit (run in a subdirectory, git archive
  # takes that subdirectory), rendered beside the change's: verified when the base's flows
  # work, so that the summary compares reachability too.
  mkdir -p "$scratch/base"
  if git -C "$dir" archive "$base" -- . | tar -x -C "$scratch/base" \
    && { mcwan render "$scratch/base" -o "$scratch/rendered" 2>"$scratch/base.err" \
      || mcwan render "$scratch/base" -o "$scratch/rendered" --no-verify 2>"$scratch/base.err"; }; then
    code=0
    mcwan diff "$dir" -o "$scratch/rendered" --format markdown > "$scratch/diff.md" || code=$?
    case $code in
      0) note "**mcwan**: this change renders nothing differently." ;;
      1)
        changed=true
        head -c "$summary_limit" "$scratch/diff.md" >> "$summary"
        if [ "$(wc -c < "$scratch/diff.md")" -gt "$summary_limit" ]; then
          note "… the summary is cut at $summary_limit bytes; run \`mcwan diff\` locally for the rest."
        fi
        ;;
      *) status=2 ;;
    esac
  else
    note "**mcwan**: the base commit's declarations do not render, so there is nothing to compare with."
  fi
fi

if [ -n "${GITHUB_OUTPUT:-}" ]; then
  echo "changed=$changed" >> "$GITHUB_OUTPUT"
fi
exit "$status"
