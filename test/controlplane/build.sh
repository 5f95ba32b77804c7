#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd from the Go module in
# this folder, once per pinned version, into a cache outside the work tree.
# Prints the directory holding the binaries on its last line of stdout.
#
#   IPSP_CACHE_DIR   cache root (default: ~/.cache/imagepullsecret-patcher)
#
# A cold build takes 10-20+ minutes on 2 cores; later calls return at once.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
k8s_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2 }; $1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$here/go.mod" | head -n 1)
key=$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-12)
cache_root=${IPSP_CACHE_DIR:-$HOME/.cache/imagepullsecret-patcher}
out="$cache_root/controlplane/$k8s_version-$key"

if [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-controller-manager" ] && [ -x "$out/etcd" ]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is required to build the control plane (https://go.dev/dl)" >&2; exit 1; }

mkdir -p "$cache_root/controlplane"
exec 9>"$cache_root/controlplane/.lock"
if ! flock -n 9; then
  echo "build.sh: another build holds $cache_root/controlplane/.lock, waiting..." >&2
  flock 9
fi
if [ -x "$out/etcd" ]; then echo "$out"; exit 0; fi

major=${k8s_version#v}; major=${major%%.*}
minor=${k8s_version#v*.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"

tmp="$out.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
echo "build.sh: building the control plane $k8s_version into $out (cold: 10-20+ min on 2 cores)" >&2
cd "$here"
# -v names each package as it is compiled: turn that into a progress line every 200 packages.
go build -v -trimpath -ldflags "$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  go.etcd.io/etcd/server/v3 2>&1 |
  awk -v start="$start" '
    /^(#|go: |[^ ]*\.go:)/ { print > "/dev/stderr"; next }
    { n++; if (n % 200 == 0) { printf "build.sh: %d packages compiled, %ds\n", n, systime() - start > "/dev/stderr"; fflush("/dev/stderr") } }'
test "${PIPESTATUS[0]}" -eq 0
mv "$tmp/server" "$tmp/etcd"
for bin in kube-apiserver kube-controller-manager etcd; do test -x "$tmp/$bin"; done
mv "$tmp" "$out"
trap - EXIT
echo "build.sh: done in $(( $(date +%s) - start ))s" >&2
echo "$out"
