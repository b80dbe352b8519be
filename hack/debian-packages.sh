#!/usr/bin/env bash
# Debian packages some tests use as real parts: prometheus (promtool checks the chart's alert rules; the
# server scrapes LiteLLM in the drift loop), prometheus-alertmanager (a real webhook sender), chromium (opens
# the HTML report). Installs only what is missing; needs root and apt. Locally this is best effort: without
# them those tests skip with a reason. Under CI (`CI` set to a true value) a package it cannot install fails
# here, before the tests, which would fail on it anyway (tests/realparts.py).
set -uo pipefail
want=()
command -v promtool >/dev/null && command -v prometheus >/dev/null || want+=(prometheus)
command -v alertmanager >/dev/null || command -v prometheus-alertmanager >/dev/null || want+=(prometheus-alertmanager)
command -v chromium >/dev/null || want+=(chromium)
[[ ${#want[@]} -eq 0 ]] && exit 0

case "${CI:-}" in
  [Tt][Rr][Uu][Ee] | 1 | [Yy][Ee][Ss] | [Oo][Nn]) missing_status=1 ;;
  *) missing_status=0 ;;
esac
give_up() {
  if [[ $missing_status -ne 0 ]]; then
    echo "debian-packages: $1; under CI the tests needing ${want[*]} would fail: install them first" >&2
  else
    echo "debian-packages: $1; tests needing ${want[*]} will skip" >&2
  fi
  exit "$missing_status"
}

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  give_up "not root or no apt-get"
fi
echo "debian-packages: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null 2>&1 || give_up "could not install ${want[*]}"
exit 0
