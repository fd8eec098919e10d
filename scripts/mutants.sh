#!/usr/bin/env bash
# Mutation testing of the core analytics (issue 17): cargo-mutants on each
# core file, judged by that file's own library unit tests (the fast set).
# Too slow for .ci/run on 2 cores: about 40 min for all six files on the
# shared 2-core machine, most of it history.rs (see docs/testing.md).
#
# Usage: scripts/mutants.sh [FILE...]      (default: every core file)
#        scripts/mutants.sh --validation     (the configuration validation)
#   e.g. scripts/mutants.sh src/poller/history.rs
# Results: target/mutants/<file>/mutants.out/{caught,missed,timeout,unviable}.txt
# Exit status: 0 when no mutant was missed or timed out, 1 otherwise.
#
# It runs --in-place, reusing the warm target/ dir (a copy of the tree
# would rebuild every dependency). cargo-mutants restores each file after
# its mutant and on Ctrl-C; the tree must be clean before starting, and
# `git status` shows whether it still is.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-mutants >/dev/null 2>&1 || {
  echo "needs cargo-mutants: cargo install --locked cargo-mutants" >&2
  exit 2
}
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "the tree has changes: commit or stash them first (--in-place mutates src/)" >&2
  exit 2
fi

# File -> test-name filters (space-separated, passed to the test binary):
# the file's own unit tests (the shared lenient decoders are tested through
# every kind's wire types: all unit tests, "::"; the configuration helpers
# and the kinds' key checks through config::tests too).
validation="config:: settings::tests kinds::vault::tests kinds::deepset::tests"
declare -A tests=(
  [src/poller/history.rs]=poller::history::
  [src/upstream/lenient.rs]=::
  [src/kinds/vault/wire.rs]=kinds::vault::wire::
  [src/kinds/deepset/wire.rs]=kinds::deepset::wire::
  [src/kinds/vault/budget.rs]=kinds::vault::budget::
  [src/kinds/s3/guard.rs]=kinds::s3::guard::
  [src/shard.rs]=shard::tests::
  [src/poller/board.rs]=poller::board::
  [src/upstream/redact.rs]=upstream::redact::
  [src/config.rs]=config::
  [src/settings.rs]=$validation
  [src/kinds/vault/mod.rs]=$validation
  [src/kinds/deepset/mod.rs]=$validation
)
# File -> mutants left out (--exclude-re): in the kinds' mod.rs and
# settings.rs only the validation is tested here, not the sources the poller
# drives, nor the cloning, comparing and downcasting of settings.
exclude_settings='TargetConfig|ProcessEnv|KindConfigBase|Clone for Box|dyn KindConfig::|warn_if_world_readable|struct_fields'
exclude_kinds='Source for |VaultSource::client|>::source|replace settings ->|KindConfig for '
declare -A excludes=(
  [src/settings.rs]=$exclude_settings
  [src/kinds/vault/mod.rs]=$exclude_kinds
  [src/kinds/deepset/mod.rs]=$exclude_kinds
)
files=("$@")
if [ "${files[*]}" = "--validation" ]; then
  files=(src/config.rs src/settings.rs src/kinds/vault/mod.rs src/kinds/deepset/mod.rs)
elif [ ${#files[@]} -eq 0 ]; then
  files=(src/poller/history.rs src/upstream/lenient.rs src/kinds/vault/wire.rs src/kinds/deepset/wire.rs
         src/kinds/vault/budget.rs src/kinds/s3/guard.rs src/shard.rs src/poller/board.rs)
fi

status=0
summary=""
for f in "${files[@]}"; do
  filter=${tests[$f]:-}
  if [ -z "$filter" ]; then
    echo "no test filter for $f; known: ${!tests[*]}" >&2
    exit 2
  fi
  exclude=()
  if [ -n "${excludes[$f]:-}" ]; then exclude=(--exclude-re "${excludes[$f]}"); fi
  out="target/mutants/${f//\//_}"
  rm -rf "$out" && mkdir -p "$out"
  start=$(date +%s)
  echo "--- $f (tests matching $filter)"
  # --cargo-arg=--lib: build and run only the library's unit-test binary.
  # The timeout catches mutants that loop forever (a filtered run takes a
  # second; the rest is cargo's incremental rebuild).
  # shellcheck disable=SC2086 # $filter: one word per filter
  cargo mutants --in-place --no-shuffle --file "$f" "${exclude[@]}" --timeout 90 \
    --cargo-arg=--lib --output "$out" -- -- $filter || status=1
  secs=$(( $(date +%s) - start ))
  count() { [ -f "$out/mutants.out/$1.txt" ] && wc -l < "$out/mutants.out/$1.txt" || echo 0; }
  summary+="$f: caught $(count caught), missed $(count missed), unviable $(count unviable), timeout $(count timeout) in ${secs}s"$'\n'
done
echo "--- summary"
printf '%s' "$summary"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "WARNING: the tree changed during the run; see git diff" >&2
  status=1
fi
exit $status
