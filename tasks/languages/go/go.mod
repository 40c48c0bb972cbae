module wasmhive.tasks

go 1.21
