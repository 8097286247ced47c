#!/usr/bin/env bash
# Set up abstracts-qa in a virtualenv at .venv in the project root.
#
#   scripts/setup.sh          the app: library, CLI and the Gradio chat
#   scripts/setup.sh --dev    everything: local and hosted models, test tools,
#                             and Debian's Chromium for the browser tests
#
# Safe to rerun: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="ui"
if [[ "${1:-}" == "--dev" ]]; then
  extras="dev"
fi

if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --upgrade pip

# torch first, pinned: this CPU build is on the machine's disk, and a looser pin
# pulls a multi-GB CUDA build.
.venv/bin/pip install --quiet torch==2.13.0
.venv/bin/pip install --quiet -e ".[${extras}]"

if [[ "$extras" == "dev" && ! -x /usr/bin/chromium ]]; then
  # Browser tests drive Debian's Chromium; Playwright's own download is not used.
  sudo_cmd=""
  if [[ "$(id -u)" != "0" ]]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi

echo "abstracts-qa is set up in .venv (extras: ${extras})"
