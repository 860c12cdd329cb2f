#!/usr/bin/env bash
# build.sh - assemble every firmware-images/src/*.asm into firmware-images/<name>.bin.
#
#   build.sh           rebuild all images in place
#   build.sh --check   build into a temporary directory and compare with the committed .bin
#                      files; exits non-zero naming each one that differs or is missing
#
# Works from any directory. Output is a flat binary (`nasm -f bin`), which NASM produces byte
# for byte reproducibly (no timestamps or paths are embedded). Every image must be 64 KiB.
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
src_dir="$here/src"
image_size=65536

usage() {
    echo "usage: $0 [--check]" >&2
}

check=0
case "$#:${1:-}" in
    0:) ;;
    1:--check) check=1 ;;
    1:-h | 1:--help)
        usage
        exit 0
        ;;
    *)
        usage
        exit 2
        ;;
esac

if ! command -v nasm >/dev/null 2>&1; then
    echo "build.sh: nasm is not installed; run \`apt-get install -y nasm\` (NASM 2.15 or newer)" >&2
    exit 127
fi

shopt -s nullglob
sources=("$src_dir"/*.asm)
if [ "${#sources[@]}" -eq 0 ]; then
    echo "build.sh: no sources in $src_dir" >&2
    exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf -- "$work"' EXIT

# Assemble into the temporary directory first, so a failed build never leaves a partial
# image behind.
for src in "${sources[@]}"; do
    name="$(basename -- "$src" .asm)"
    nasm -f bin -I "$src_dir/" -o "$work/$name.bin" "$src"
    size="$(wc -c <"$work/$name.bin")"
    if [ "$size" -ne "$image_size" ]; then
        echo "build.sh: $name.bin is $size bytes, expected $image_size" >&2
        exit 1
    fi
done

if [ "$check" -eq 0 ]; then
    for src in "${sources[@]}"; do
        name="$(basename -- "$src" .asm)"
        mv -f -- "$work/$name.bin" "$here/$name.bin"
    done
    exit 0
fi

bad=0
for src in "${sources[@]}"; do
    name="$(basename -- "$src" .asm)"
    committed="$here/$name.bin"
    if [ ! -f "$committed" ]; then
        echo "build.sh --check: $name.bin is missing (built from src/$name.asm); run build.sh" >&2
        bad=1
    elif ! cmp -s -- "$work/$name.bin" "$committed"; then
        echo "build.sh --check: $name.bin differs from src/$name.asm; run build.sh" >&2
        bad=1
    fi
done
for bin in "$here"/*.bin; do
    name="$(basename -- "$bin" .bin)"
    if [ ! -f "$src_dir/$name.asm" ]; then
        echo "build.sh --check: $name.bin has no source src/$name.asm" >&2
        bad=1
    fi
done
if [ "$bad" -ne 0 ]; then
    exit 1
fi
echo "build.sh --check: all images match their sources"
