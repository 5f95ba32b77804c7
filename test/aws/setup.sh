#!/usr/bin/env bash
# Installs moto's server into a virtual environment cached outside the work
# tree, keyed by requirements.txt. Prints the venv's directory on stdout.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
key=$(sha256sum "$here/requirements.txt" | cut -c1-12)
cache_root=${IPSP_CACHE_DIR:-$HOME/.cache/imagepullsecret-patcher}
venv="$cache_root/moto-$key"
# .complete is written last, so an interrupted install is redone, not reused.
if [ -f "$venv/.complete" ]; then echo "$venv"; exit 0; fi
command -v python3 >/dev/null || { echo "setup.sh: Python 3 is required for the AWS emulator (moto)" >&2; exit 1; }
echo "setup.sh: installing moto into $venv" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
test -x "$venv/bin/moto_server"
touch "$venv/.complete"
echo "$venv"
