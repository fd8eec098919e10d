#!/usr/bin/env bash
# The fleet benchmark, in one command (see BENCHMARKS.md):
#
#   bench/run.sh                 full run (~25 min: 10-min soak, memory bound only)
#   bench/run.sh --quick         2-min soak, shorter wrk runs (~13 min)
#   bench/run.sh --soak-secs 3600 --skip scale   the hour-long memory soak
#
# Installs nginx and wrk (Debian packages) if missing, builds the release
# binaries once (CARGO_TARGET_DIR is honoured, so a shared target directory
# is reused), raises the open-files limit for the 1000-connection test, then
# runs bench/fleet_bench.rs, which prints one table (and writes it to --out).
# Every other argument goes to fleet_bench (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  echo "--- installing Debian packages: ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
    $sudo apt-get install -y -qq --no-install-recommends nginx wrk >/dev/null
fi
export PATH="$PATH:/usr/sbin"

# 1000 client connections + 1000 server sockets + nginx workers.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt 4096 ]; then
  echo "open-files limit $(ulimit -n) is too low for the 1000-connection test" >&2
  exit 1
fi

target="${CARGO_TARGET_DIR:-target}"
echo "--- building (release, target dir $target)" >&2
cargo build --release --bins --example fleet_bench >&2
exec "$target/release/examples/fleet_bench" "$@"
