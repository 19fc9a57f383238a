#!/usr/bin/env bash
# The Prometheus server that tests/e2e/test_observability.py scrapes the services with, taken from
# Debian's `prometheus` package into the tools folder .ci/validate-deploy also uses (nothing is
# installed system-wide, no daemon is started). Prints the binary's path; does nothing if present.
set -euo pipefail

TOOLS="${OPENSMM_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/opensmm-deploy-tools}"
if [[ ! -x "$TOOLS/bin/prometheus" ]]; then
  deb="$(mktemp -d)"
  trap 'rm -rf "$deb"' EXIT
  chmod 777 "$deb" # apt-get download writes as the _apt user
  if ! (cd "$deb" && apt-get download -qq prometheus >/dev/null 2>&1); then
    if [[ "$(id -u)" == 0 ]]; then apt-get update -qq; else sudo -n apt-get update -qq; fi
    (cd "$deb" && apt-get download -qq prometheus >/dev/null)
  fi
  dpkg-deb -x "$deb"/prometheus_*.deb "$deb/x"
  mkdir -p "$TOOLS/bin"
  install -m 0755 "$deb/x/usr/bin/prometheus" "$TOOLS/bin/prometheus"
fi
echo "$TOOLS/bin/prometheus"
