#!/usr/bin/env bash
# The fleet benchmark, in one command (see BENCHMARKS.md):
#
#   bench/run.sh                 full run (~25 min: 10-min soak, memory bound
#                                only; + ~25 min for the S3 buckets)
#   bench/run.sh --quick         2-min soak, shorter wrk runs (~13 min + S3)
#   bench/run.sh --soak-secs 3600 --only soak   the hour-long memory soak
#   bench/run.sh --only s3       the S3 buckets alone (~25 min; valgrind for
#                                the callgrind rows, or add --skip s3-callgrind)
#
# Installs nginx and wrk (Debian packages) if missing, builds the release
# binaries once (CARGO_TARGET_DIR is honoured, so a shared target directory
# is reused), raises the open-files limit for the 1000-connection test, then
# runs bench/fleet_bench.rs, which prints one table (and writes it to --out).
# Every other argument goes to fleet_bench (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
# nginx and wrk serve the fleet's serving phases only: `--only s3` (the S3
# buckets, BENCHMARKS.md) needs neither, nor the open-files limit.
only_s3=""
case " $* " in *" --only s3 "*) only_s3=1 ;; esac
if [ -z "$only_s3" ]; then
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
fi
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
if [ -z "$only_s3" ] && [ "$(ulimit -n)" -lt 4096 ]; then
  echo "open-files limit $(ulimit -n) is too low for the 1000-connection test" >&2
  exit 1
fi

target="${CARGO_TARGET_DIR:-target}"
echo "--- building (release, target dir $target)" >&2
cargo build --release --bins --example fleet_bench >&2
exec "$target/release/examples/fleet_bench" "$@"
