#!/usr/bin/env bash
# Refreshes the xterm.js files that the browser terminal (`exec-server --web`)
# embeds, from the npm registry, at the pinned versions below. The files are
# committed under crates/service/web/vendor/ so that `cargo build` needs no
# npm; run this script to move to new versions (edit the pins), then run the
# browser tests (crates/cli/tests/web.rs) and commit.
#
# Each package keeps its LICENSE next to its files; VERSIONS records the
# package, version and the registry's integrity hash of the tarball, which
# `npm pack` checks while downloading.
set -euo pipefail
cd "$(dirname "$0")/.."

# name            version  directory         files (paths inside the package)
PINS=(
  "@xterm/xterm            6.0.0   xterm             lib/xterm.mjs css/xterm.css"
  "@xterm/addon-fit        0.11.0  addon-fit         lib/addon-fit.mjs"
  "@xterm/addon-webgl      0.19.0  addon-webgl       lib/addon-webgl.mjs"
  "@xterm/addon-unicode11  0.9.0   addon-unicode11   lib/addon-unicode11.mjs"
  "@xterm/addon-web-links  0.12.0  addon-web-links   lib/addon-web-links.mjs"
)

dest=crates/service/web/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

manifest="$tmp/VERSIONS"
echo "# Written by scripts/refresh-web-vendor.sh; do not edit." >"$manifest"
for pin in "${PINS[@]}"; do
  read -r name version dir files <<<"$pin"
  tarball=$(cd "$tmp" && npm pack --silent "$name@$version" | tail -n 1)
  integrity=$(npm view "$name@$version" dist.integrity)
  mkdir -p "$tmp/$dir"
  tar -xzf "$tmp/$tarball" -C "$tmp/$dir"
  rm -rf "${dest:?}/$dir"
  mkdir -p "$dest/$dir"
  for file in $files; do
    # Source maps are not shipped; drop the comment that points at them.
    sed '/^\/\/# sourceMappingURL=/d' "$tmp/$dir/package/$file" >"$dest/$dir/$(basename "$file")"
  done
  cp "$tmp/$dir/package/LICENSE" "$dest/$dir/LICENSE"
  echo "$name $version $integrity" >>"$manifest"
done
cp "$manifest" "$dest/VERSIONS"
echo "vendored into $dest:"
cat "$dest/VERSIONS"
