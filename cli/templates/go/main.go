// {{name}}: a wasmhive task. Input: any text. Output: how many words it has, not counting
// the words of the shared file `ignore.txt` if the job has one (Task ABI v2: a job's
// shared files are read-only files under /shared; `[inputs] shared = ["ignore.txt"]` in a
// job spec, `--shared ignore.txt` with `wasmhive run`).
package main

import (
	"os"
	"strings"

	"{{name}}/wasmhive"
)

func main() {
	ignored := map[string]bool{}
	if data, err := os.ReadFile("/shared/ignore.txt"); err == nil {
		for _, word := range strings.Fields(string(data)) {
			ignored[word] = true
		}
	}
	counted := 0
	for _, word := range strings.Fields(wasmhive.Input()) {
		if !ignored[word] {
			counted++
		}
	}
	wasmhive.Output("%d words\n", counted)
}
