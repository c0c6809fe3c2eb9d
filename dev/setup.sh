#!/usr/bin/env bash
# Install what webhook-dev and its tests need on a fresh Debian machine (as root), then
# make .venv with the package installed editable. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium + chromium-driver: the inspector's browser tests (Playwright cannot download one).
# The lab's node: containerd + runc (the runtime), containernetworking-plugins (bridge,
# host-local), util-linux (nsenter, unshare); its images: mmdebstrap (a Debian root
# filesystem from the apt archive) and catatonit (the sandbox image's pause process).
apt_packages=(iproute2 iptables openssh-server openssh-client conntrack procps chromium chromium-driver
    containerd runc containernetworking-plugins util-linux mmdebstrap catatonit)
missing=()
for package in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
