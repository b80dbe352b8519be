#!/usr/bin/env bash
# Debian packages some tests use as real parts: prometheus (promtool checks the chart's alert rules),
# prometheus-alertmanager (a real webhook sender), chromium (opens the HTML report). Best effort: without
# them those tests skip with a reason. Installs only what is missing; needs root and apt.
set -uo pipefail
want=()
command -v promtool >/dev/null || want+=(prometheus)
command -v alertmanager >/dev/null || command -v prometheus-alertmanager >/dev/null || want+=(prometheus-alertmanager)
command -v chromium >/dev/null || want+=(chromium)
[[ ${#want[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "debian-packages: not root or no apt-get; tests needing ${want[*]} will skip" >&2
  exit 0
fi
echo "debian-packages: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null 2>&1 \
  || echo "debian-packages: could not install ${want[*]}; those tests will skip" >&2
exit 0
