#!/usr/bin/env bash
# Installs the Debian 12 packages that birdflow-hpc needs and that are not installed yet.
# Safe to run again: it installs only what is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake pkgconf git
  openmpi-bin libopenmpi-dev
  petsc-dev libhdf5-openmpi-dev hdf5-tools
  libcli11-dev libgtest-dev libproj-dev proj-data zlib1g-dev
  python3 python3-numpy python3-scipy python3-h5py python3-pot python3-sklearn python3-matplotlib
  # rhdf5 lets the I/O tests read fitted files the way BirdFlowR's import_birdflow() does.
  r-base-core r-bioc-rhdf5
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages are installed"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: error: run as root or install sudo" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
