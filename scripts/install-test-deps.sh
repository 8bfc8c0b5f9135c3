#!/usr/bin/env bash
# Installs the third-party MLLP peers that the end-to-end tests talk to, once.
# python3-hl7 (Debian) ships mllp_send and an asyncio MLLP server.
set -euo pipefail
if /usr/bin/python3 -c 'import hl7.mllp' >/dev/null 2>&1 && command -v mllp_send >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-test-deps: python3-hl7 is missing; run as root or: sudo apt-get install -y python3-hl7" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq python3-hl7 >/dev/null
