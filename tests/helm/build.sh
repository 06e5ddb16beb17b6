#!/usr/bin/env bash
# Builds helm from its Go module (pinned in go.mod) into a cache outside the
# work tree keyed by a digest of go.mod/go.sum/this script, so a second run
# on a machine takes no time. Prints the directory holding `helm` on its
# last line.
set -euo pipefail
cd "$(dirname "$0")"
version="$(sed -n 's/^\trequire helm.sh\/helm\/v4 \(v[^ ]*\).*/\1/p; s/^require helm.sh\/helm\/v4 \(v[^ ]*\).*/\1/p; s/^\thelm.sh\/helm\/v4 \(v[^ ]*\).*/\1/p' go.mod | head -n1)"
key="$(cat go.mod go.sum build.sh | sha256sum | cut -c1-12)"
cache="${POLYSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/polysync}/helm/${version}-${key}"
if [[ -x "$cache/bin/helm" ]]; then
  echo "$cache/bin"
  exit 0
fi
tmp="$cache.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp/bin"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
>&2 echo "helm: building helm ${version} from its Go module into $cache (once per version)"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${version}" \
  -o "$tmp/bin/helm" helm.sh/helm/v4/cmd/helm
rm -rf "$cache"; mv "$tmp" "$cache"; trap - EXIT
>&2 echo "helm: built in $((SECONDS - start)) s"
echo "$cache/bin"
