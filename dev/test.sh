#!/usr/bin/env bash
# README's test command: set up, lint, type-check, then the whole suite, including the
# end-to-end tests on the lab's real control plane (builds or reuses the cached binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/setup.sh
source .venv/bin/activate
ruff check webhook_dev sample_webhook tests bench
mypy
lint-imports --no-cache  # the import layers of docs/architecture.md (pyproject.toml)
webhook-dev lab build
python -m pytest -ra "$@"
