#!/usr/bin/env bash
# Builds the FROM-scratch exec-server image with podman, pulling nothing:
# the binary plus every library `ldd` lists, and an empty /tmp.
#
#   deploy/container/build-image.sh BINARY TAG
#   e.g. deploy/container/build-image.sh target/release/exec-server exec-server:0.1.0
set -euo pipefail
binary=$1
tag=$2
here=$(cd "$(dirname "$0")" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -D -m 755 "$binary" "$stage/rootfs/usr/local/bin/exec-server"
# `ldd` prints `name => /path (addr)` and `/lib64/ld-linux... (addr)`.
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
  install -D -m 755 "$(readlink -f "$lib")" "$stage/rootfs$lib"
done
install -d -m 1777 "$stage/rootfs/tmp"
cp "$here/Containerfile" "$stage/Containerfile"
podman build --quiet -t "$tag" "$stage"
