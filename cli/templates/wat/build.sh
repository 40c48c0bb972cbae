#!/bin/sh
# Builds {{name}}.wasm (needs wat2wasm: Debian's wabt).
set -e
cd "$(dirname "$0")"
wat2wasm {{name}}.wat -o {{name}}.wasm
