#!/bin/sh
# Builds {{name}}.wasm (needs Node.js and npm; installs assemblyscript and its WASI shim).
set -e
cd "$(dirname "$0")"
[ -x node_modules/.bin/asc ] || npm install --no-audit --no-fund --loglevel=error
node_modules/.bin/asc assembly/{{name}}.ts --config node_modules/@assemblyscript/wasi-shim/asconfig.json -O3 --noAssert -o {{name}}.wasm
