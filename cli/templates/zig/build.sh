#!/bin/sh
# Builds {{name}}.wasm (needs Zig 0.17: `pip install ziglang`, run as `python3 -m ziglang`).
set -e
cd "$(dirname "$0")"
python3 -m ziglang build-exe {{name}}.zig -target wasm32-wasi -O ReleaseSmall -femit-bin={{name}}.wasm
rm -f {{name}}.wasm.o
