#!/usr/bin/env bash
# Install, upgrade or roll back the edge gateway on a systemd host (see docs/operations.md).
#
#   deploy/install.sh --wheel dist/edge_gateway-X.Y.Z-py3-none-any.whl   # install or upgrade
#   deploy/install.sh --rollback X.Y.Z                                   # switch back to a kept release
#   options: --root DIR (install into DIR instead of /, nothing started; for tests and images)
#            --requirements FILE (pinned dependencies; default: deploy/requirements.txt beside this script)
#            --python PYTHON (the interpreter the venv is made from; default: python3)
#
# Layout: /opt/edge-gateway/releases/<version>/ is one venv per release, /opt/edge-gateway/current
# links to the running one; /etc/edge-gateway/config.toml (never overwritten), secrets.env;
# /var/lib/edge-gateway holds the store (owned by the edge-gateway user).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="/"
wheel=""
rollback=""
requirements="$here/requirements.txt"
python="${PYTHON:-python3}"
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    --wheel) wheel="$2"; shift 2 ;;
    --rollback) rollback="$2"; shift 2 ;;
    --requirements) requirements="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
root="${root%/}"
live=false
[ -z "$root" ] && live=true
opt="$root/opt/edge-gateway"
etc="$root/etc/edge-gateway"
state="$root/var/lib/edge-gateway"
unit_dir="$root/etc/systemd/system"

switch_to() {  # atomically point `current` at a release; restart the service if it was installed
  ln -sfn "releases/$1" "$opt/current.new"
  mv -T "$opt/current.new" "$opt/current"
  echo "current release: $1"
  if $live && [ "${2:-restart}" = restart ] && command -v systemctl >/dev/null; then
    systemctl daemon-reload
    systemctl restart edge-gateway
    echo "edge-gateway restarted; check it with: edge-gateway status --config /etc/edge-gateway/config.toml"
  fi
}

if [ -n "$rollback" ]; then
  [ -x "$opt/releases/$rollback/bin/edge-gateway" ] || { echo "no release $rollback in $opt/releases" >&2; exit 2; }
  switch_to "$rollback"
  exit 0
fi

[ -f "$wheel" ] || { echo "--wheel FILE is required (build it with: pip wheel --no-deps -w dist .)" >&2; exit 2; }
[ -f "$requirements" ] || { echo "pinned requirements $requirements not found" >&2; exit 2; }
version="$(basename "$wheel" | cut -d- -f2)"
release="$opt/releases/$version"

if $live && [ "$(id -u)" = 0 ] && ! id edge-gateway >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/edge-gateway --no-create-home --shell /usr/sbin/nologin edge-gateway
  echo "created system user edge-gateway"
fi

mkdir -p "$opt/releases" "$etc" "$state" "$unit_dir"
if [ -e "$release" ]; then
  echo "release $version is already installed in $release; reinstalling it"
  rm -rf "$release"
fi
"$python" -m venv "$release"
"$release/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
"$release/bin/pip" install --quiet --disable-pip-version-check --no-deps "$wheel"
"$release/bin/edge-gateway" --version

if [ ! -e "$etc/config.toml" ]; then
  # Inside --root the state folder moves with it, so the installed tree runs as it is.
  sed "s#/var/lib/edge-gateway#$state#g" "$here/config.toml" > "$etc/config.toml"
  echo "installed $etc/config.toml: set your projects and upstream there"
fi
if [ ! -e "$etc/secrets.env" ]; then
  printf '%s\n' '# Variables named as "env:NAME" in config.toml; readable by root only.' \
    'GATEWAY_UPSTREAM_URL=' 'SITE_DEMO_SECRET=' > "$etc/secrets.env"
  chmod 600 "$etc/secrets.env"
fi
install -m 644 "$here/../systemd/edge-gateway.service" "$unit_dir/edge-gateway.service"
if $live && [ "$(id -u)" = 0 ]; then
  chown root:edge-gateway "$etc/config.toml" && chmod 640 "$etc/config.toml"
  chown edge-gateway:edge-gateway "$state" && chmod 700 "$state"
fi

if [ -L "$opt/current" ]; then
  switch_to "$version"  # an upgrade: the running service restarts on the new release
else
  switch_to "$version" first
  if $live && command -v systemctl >/dev/null; then
    systemctl daemon-reload
    systemctl enable edge-gateway
    echo "first install: edit $etc/config.toml and $etc/secrets.env, then: systemctl start edge-gateway"
  fi
fi
