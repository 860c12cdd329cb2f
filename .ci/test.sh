#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (nasm to check the
# firmware images against their sources, QEMU as the reference of the differential tests),
# then formatting, lints and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v nasm >/dev/null 2>&1 || missing+=(nasm)
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
