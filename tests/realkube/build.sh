#!/usr/bin/env bash
# Builds the real control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler) and the kubectl of the same release from the official Go
# modules pinned in go.mod, into a cache
# outside the work tree keyed by the Kubernetes version and a digest of
# go.mod/go.sum/this script/cmd, so a second run on a machine takes no time.
# Prints the directory holding the binaries on its last line.
set -euo pipefail
cd "$(dirname "$0")"
K8S_VERSION="$(cat K8S_VERSION)"
key="$(cat go.mod go.sum build.sh cmd/etcd/main.go | sha256sum | cut -c1-12)"
cache="${POLYSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/polysync}/realkube/${K8S_VERSION}-${key}"
if [[ -x "$cache/bin/kube-apiserver" && -x "$cache/bin/kube-controller-manager" \
   && -x "$cache/bin/kube-scheduler" && -x "$cache/bin/etcd" && -x "$cache/bin/kubectl" ]]; then
  echo "$cache/bin"
  exit 0
fi
minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
pkg=k8s.io/component-base/version
# The same stamps Kubernetes' own build sets, so /version reports the release.
ldflags="-s -w -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION}"
tmp="$cache.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp/bin"
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
>&2 echo "realkube: building Kubernetes ${K8S_VERSION} and etcd from source into $cache (about 5-6 minutes on 2 cores, once per version)"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl ./cmd/etcd
rm -rf "$cache"; mv "$tmp" "$cache"; trap - EXIT
>&2 echo "realkube: built in $((SECONDS - start)) s"
echo "$cache/bin"
