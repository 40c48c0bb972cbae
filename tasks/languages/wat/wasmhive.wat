  ;; wasmhive task helper for WebAssembly text (Task ABI v1). Not a module by itself: a
  ;; task's module is `(module` + this file + the task's file + `)` (scripts/build-task-
  ;; languages and `wasmhive new --lang wat` do that). It reads all of stdin, parses
  ;; whole numbers, writes decimal output and fails with a message and exit code 2.
  ;; Memory: 0-15 iovec and counts, 100-199 the helper's messages, 200-511 the task's
  ;; messages, 512-1023 output, 1024-65535 input (at most 64 KiB less 1 KiB).
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  ;; Task ABI v2's read-only files (the scaffold reads a shared file with it).
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "error: expected 2 numbers `START END`\n")
  (global $input_end (mut i32) (i32.const 1024))
  (global $cursor (mut i32) (i32.const 1024))
  (global $output_end (mut i32) (i32.const 512))

  ;; Writes [pointer, pointer+length) to fd 2 and exits with code 2.
  (func $fail (param $pointer i32) (param $length i32)
    (i32.store (i32.const 0) (local.get $pointer))
    (i32.store (i32.const 4) (local.get $length))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 2)))

  (func $fail_numbers (call $fail (i32.const 100) (i32.const 38)))

  ;; Reads all of stdin into the input area.
  (func $read_input
    (local $count i32)
    (loop $more
      (i32.store (i32.const 0) (global.get $input_end))
      (i32.store (i32.const 4) (i32.sub (i32.const 65536) (global.get $input_end)))
      (if (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8))
        (then (call $fail_numbers)))
      (local.set $count (i32.load (i32.const 8)))
      (global.set $input_end (i32.add (global.get $input_end) (local.get $count)))
      (br_if $more (i32.and (i32.gt_u (local.get $count) (i32.const 0))
                            (i32.lt_u (global.get $input_end) (i32.const 65536))))))

  (func $is_space (param $byte i32) (result i32)
    (i32.or (i32.or (i32.eq (local.get $byte) (i32.const 32)) (i32.eq (local.get $byte) (i32.const 10)))
            (i32.or (i32.eq (local.get $byte) (i32.const 9)) (i32.eq (local.get $byte) (i32.const 13)))))

  (func $skip_spaces
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (global.get $cursor) (global.get $input_end)))
        (br_if $done (i32.eqz (call $is_space (i32.load8_u (global.get $cursor)))))
        (global.set $cursor (i32.add (global.get $cursor) (i32.const 1)))
        (br $next))))

  ;; The next whitespace-separated whole number (u64); anything else fails.
  (func $next_number (result i64)
    (local $value i64) (local $digit i64) (local $byte i32) (local $digits i32)
    (call $skip_spaces)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (global.get $cursor) (global.get $input_end)))
        (local.set $byte (i32.load8_u (global.get $cursor)))
        (br_if $done (call $is_space (local.get $byte)))
        (if (i32.gt_u (i32.sub (local.get $byte) (i32.const 48)) (i32.const 9)) (then (call $fail_numbers)))
        (local.set $digit (i64.extend_i32_u (i32.sub (local.get $byte) (i32.const 48))))
        (if (i64.gt_u (local.get $value) (i64.div_u (i64.sub (i64.const -1) (local.get $digit)) (i64.const 10)))
          (then (call $fail_numbers)))
        (local.set $value (i64.add (i64.mul (local.get $value) (i64.const 10)) (local.get $digit)))
        (local.set $digits (i32.add (local.get $digits) (i32.const 1)))
        (global.set $cursor (i32.add (global.get $cursor) (i32.const 1)))
        (br $next)))
    (if (i32.eqz (local.get $digits)) (then (call $fail_numbers)))
    (local.get $value))

  ;; Fails unless only whitespace is left.
  (func $expect_end
    (call $skip_spaces)
    (if (i32.lt_u (global.get $cursor) (global.get $input_end)) (then (call $fail_numbers))))

  (func $write_byte (param $byte i32)
    (i32.store8 (global.get $output_end) (local.get $byte))
    (global.set $output_end (i32.add (global.get $output_end) (i32.const 1))))

  ;; Appends the decimal digits of an unsigned 64-bit value to the output.
  (func $write_number (param $value i64)
    (if (i64.ge_u (local.get $value) (i64.const 10))
      (then (call $write_number (i64.div_u (local.get $value) (i64.const 10)))))
    (call $write_byte (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $value) (i64.const 10))))))

  ;; Writes the output area to stdout.
  (func $flush
    (i32.store (i32.const 0) (i32.const 512))
    (i32.store (i32.const 4) (i32.sub (global.get $output_end) (i32.const 512)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
