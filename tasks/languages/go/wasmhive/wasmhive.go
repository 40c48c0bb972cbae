// Package wasmhive is the task helper for Go (Task ABI v1): read all of stdin, parse
// numbers, write the output, fail with a message. Build with
//
//	GOOS=wasip1 GOARCH=wasm go build -o task.wasm ./task
//
// Standard library only. Go's runtime reads the clocks and random_get at start; wasmhive
// answers them deterministically (see docs/TASKS.md). `int` is 64 bits on wasm in Go,
// but prefer uint64 for values that can pass 2^32 anyway.
package wasmhive

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Fail prints "error: MESSAGE" to stderr and exits with code 2 (a deterministic failure).
func Fail(format string, arguments ...any) {
	fmt.Fprintf(os.Stderr, "error: "+format+"\n", arguments...)
	os.Exit(2)
}

// Input returns all of stdin.
func Input() string {
	bytes, err := io.ReadAll(os.Stdin)
	if err != nil {
		Fail("cannot read stdin: %v", err)
	}
	return string(bytes)
}

// Numbers parses exactly count whitespace-separated whole numbers from stdin; names
// (e.g. "START END") is used in the error message.
func Numbers(count int, names string) []uint64 {
	words := strings.Fields(Input())
	if len(words) != count {
		Fail("expected %d numbers `%s`", count, names)
	}
	numbers := make([]uint64, count)
	for index, word := range words {
		number, err := strconv.ParseUint(word, 10, 64)
		if err != nil {
			Fail("expected %d numbers `%s`", count, names)
		}
		numbers[index] = number
	}
	return numbers
}

// Output writes formatted output to stdout.
func Output(format string, arguments ...any) {
	if _, err := fmt.Fprintf(os.Stdout, format, arguments...); err != nil {
		Fail("cannot write stdout: %v", err)
	}
}
