#!/usr/bin/env bash
# Installs the OS packages the stack runs on (real Prometheus, Alertmanager, promtool, amtool) when missing.
# Debian/Ubuntu: apt-get (with sudo when not root). Elsewhere: says what to install and exits 1.
# Usage: stack/runner/os-packages.sh [extra-command:package ...]   e.g. docker-compose:docker-compose
set -euo pipefail

declare -A wanted=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
)
for pair in "$@"; do wanted[${pair%%:*}]=${pair#*:}; done

missing=()
for command in "${!wanted[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${wanted[$command]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing OS packages: $packages" >&2
  echo "This is not a Debian/Ubuntu machine, so they cannot be installed for you. Install Prometheus (with" >&2
  echo "promtool) and Alertmanager (with amtool) so that they are on PATH, then re-run. On macOS:" >&2
  echo "  brew install prometheus alertmanager" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "error: need root or sudo to apt-get install $packages" >&2; exit 1; }
  sudo="sudo"
fi
echo "Installing OS packages: $packages(apt-get; about a minute the first time)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
# --no-install-recommends keeps out the node exporter and other services we do not run.
# The packages' own services are never started: there is no systemd here, and we pass our own data dirs.
$sudo apt-get install -y -qq --no-install-recommends $packages >/dev/null
echo "Installed: $packages"
