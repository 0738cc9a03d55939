#!/usr/bin/env bash
# A real Kubernetes API for Depot's controller tests: etcd and kube-apiserver
# on loopback, both from Debian's own packages.
#
#   test/kube/cluster.sh install        build or reuse the cached binaries
#   test/kube/cluster.sh start DIR      start etcd + kube-apiserver, state in DIR;
#                                       writes DIR/kubeconfig, prints nothing else
#   test/kube/cluster.sh stop DIR       stop what `start DIR` started
#
# The binaries are cached outside the repository, in $DEPOT_KUBE_CACHE
# (default ~/.cache/depot-kube), so only the first install takes minutes:
#   kube-apiserver  built from Debian's `kubernetes` source package (1.20.2)
#                   with Debian's golang-go; its vendored reflect2 1.0.1 is
#                   swapped for Debian's 1.0.2 first (reflect2 < 1.0.2 crashes
#                   under Go >= 1.18 when a custom resource with labels is written),
#                   and its OpenAPI validators are patched to treat only nil as null:
#                   built with Go >= 1.19, `reflect.DeepEqual(reflect.Zero(...))` in
#                   validate/type.go takes "", 0 and false for null, so a custom resource
#                   holding `s: ""` is refused, which no real cluster does
#   etcd            from the `etcd-server` package
#   kubectl         from the `kubernetes-client` package
# etcd and kubectl are unpacked into the cache with dpkg -x rather than
# installed, so nothing starts a system etcd and no other kubectl is replaced.
set -euo pipefail

CACHE="${DEPOT_KUBE_CACHE:-$HOME/.cache/depot-kube}"
BIN="$CACHE/bin"
export PATH="$BIN:$PATH"

# Bump when the build changes, so that machines with an older cached binary rebuild it.
BUILD_KEY="kubernetes-1.20.2+reflect2-1.0.2+zero-is-not-null"

log() { echo "cluster.sh: $*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# deb-src entries mirroring the deb822 `Types: deb` entries for Debian's own archive.
ensure_deb_src() {
  local src=/etc/apt/sources.list.d/depot-deb-src.sources
  grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ /etc/apt/sources.list 2>/dev/null && return 0
  log "adding deb-src entries ($src)"
  awk 'BEGIN{RS=""; ORS="\n\n"} /URIs: http:\/\/deb\.debian\.org\// { sub(/Types: deb/, "Types: deb-src"); print }' \
    /etc/apt/sources.list.d/debian.sources | as_root tee "$src" >/dev/null
  as_root apt-get update -qq
}

unpack_deb() { # package, file inside it, name in $BIN
  local pkg=$1 path=$2 name=$3 tmp
  [ -x "$BIN/$name" ] && return 0
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1 || { as_root apt-get update -qq && apt-get download -qq "$pkg"; })
  dpkg -x "$tmp"/"$pkg"_*.deb "$tmp/root"
  install -m 0755 "$tmp/root$path" "$BIN/$name"
  rm -rf "$tmp"
  log "unpacked $name from $pkg"
}

build_apiserver() {
  [ -x "$BIN/kube-apiserver" ] && [ "$(cat "$BIN/kube-apiserver.key" 2>/dev/null)" = "$BUILD_KEY" ] && return 0
  rm -f "$BIN/kube-apiserver" "$BIN/kube-apiserver.key"
  apt_install golang-go rsync jq dpkg-dev golang-github-modern-go-reflect2-dev
  ensure_deb_src
  local work="$CACHE/src"
  rm -rf "$work" && mkdir -p "$work"
  log "fetching Debian's kubernetes source package"
  (cd "$work" && apt-get source -qq kubernetes >/dev/null 2>&1)
  local tree
  tree=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -1)
  log "swapping vendored reflect2 for Debian's 1.0.2"
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$tree/vendor/github.com/modern-go/reflect2"
  # Go >= 1.19 makes reflect.Zero(...) DeepEqual every zero value: the type check then
  # takes "", 0 and false for null. A real cluster's validator only treats nil as null.
  local f
  for f in vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go vendor/github.com/go-openapi/validate/type.go; do
    grep -q 'if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {' "$tree/$f" ||
      { log "$f: the zero-value check to patch is not there"; exit 1; }
    sed -i 's/if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {/if data == nil {/' \
      "$tree/$f"
  done
  log "patched the OpenAPI validators' null check"
  log "building kube-apiserver (4-5 minutes on 2 cores)"
  (cd "$tree" && make WHAT=cmd/kube-apiserver >"$CACHE/build.log" 2>&1) || { tail -40 "$CACHE/build.log" >&2; exit 1; }
  install -m 0755 "$tree/_output/bin/kube-apiserver" "$BIN/kube-apiserver"
  echo "$BUILD_KEY" >"$BIN/kube-apiserver.key"
  rm -rf "$work"
  log "kube-apiserver cached in $BIN"
}

install_all() {
  mkdir -p "$BIN"
  apt_install openssl curl ca-certificates
  unpack_deb etcd-server /usr/bin/etcd etcd
  unpack_deb kubernetes-client /usr/bin/kubectl kubectl
  build_apiserver
}

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

start_cluster() {
  local dir=$1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local etcd_port peer_port api_port
  etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)

  # Certificates: one CA; the apiserver's serving cert for 127.0.0.1; the SA key pair.
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=depot-test-ca" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$dir/apiserver.key" -out "$dir/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$dir/san.ext"
  openssl x509 -req -in "$dir/apiserver.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/san.ext" -out "$dir/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null

  local token
  token=$(openssl rand -hex 24)
  echo "$token,depot-admin,depot-admin,system:masters" >"$dir/tokens.csv"

  etcd --name depot-test --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "depot-test=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync --log-level error >"$dir/etcd.log" 2>&1 &
  echo $! >"$dir/etcd.pid"

  kube-apiserver \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$dir/apiserver.crt" --tls-private-key-file "$dir/apiserver.key" \
    --client-ca-file "$dir/ca.crt" --token-auth-file "$dir/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-key-file "$dir/sa.pub" --service-account-signing-key-file "$dir/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-cluster-ip-range 10.96.0.0/16 \
    --enable-admission-plugins NamespaceLifecycle,ServiceAccount \
    --cert-dir "$dir/certs" --v 0 >"$dir/apiserver.log" 2>&1 &
  echo $! >"$dir/apiserver.pid"

  cat >"$dir/kubeconfig" <<KCFG
apiVersion: v1
kind: Config
clusters:
- name: depot-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $dir/ca.crt
users:
- name: depot-admin
  user:
    token: $token
contexts:
- name: depot-test
  context: {cluster: depot-test, user: depot-admin, namespace: default}
current-context: depot-test
KCFG

  for _ in $(seq 1 300); do
    if curl -fsS --cacert "$dir/ca.crt" -H "Authorization: Bearer $token" \
         "https://127.0.0.1:$api_port/readyz" >/dev/null 2>&1; then
      # The default namespace is made by a controller we do not run.
      kubectl --kubeconfig "$dir/kubeconfig" create namespace default >/dev/null 2>&1 || true
      return 0
    fi
    kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null || { tail -30 "$dir/apiserver.log" >&2; exit 1; }
    sleep 0.1
  done
  log "kube-apiserver did not become ready in 30 s"; tail -30 "$dir/apiserver.log" >&2; exit 1
}

stop_cluster() {
  local dir=$1
  for p in apiserver etcd; do
    [ -f "$dir/$p.pid" ] && kill "$(cat "$dir/$p.pid")" 2>/dev/null || true
  done
}

case "${1:-}" in
  install) install_all ;;
  start) [ -n "${2:-}" ] || { echo "usage: $0 start DIR" >&2; exit 2; }; install_all; start_cluster "$2" ;;
  stop) [ -n "${2:-}" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop_cluster "$2" ;;
  bin) echo "$BIN" ;;
  *) echo "usage: $0 install | start DIR | stop DIR | bin" >&2; exit 2 ;;
esac
