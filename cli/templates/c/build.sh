#!/bin/sh
# Builds {{name}}.wasm (needs Debian's clang lld wasi-libc libclang-rt-dev-wasm32).
set -e
cd "$(dirname "$0")"
clang --target=wasm32-wasi -O2 -o {{name}}.wasm {{name}}.c
