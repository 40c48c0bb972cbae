// {{name}}: a wasmhive task (Task ABI v1). Input: any text. Output: how many words it has.
package main

import (
	"strings"

	"{{name}}/wasmhive"
)

func main() {
	wasmhive.Output("%d words\n", len(strings.Fields(wasmhive.Input())))
}
