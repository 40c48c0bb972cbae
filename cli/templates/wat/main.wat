  ;; {{name}}: a wasmhive task. Input: any text. Output: how many words it has, not
  ;; counting the words of the shared file `ignore.txt` if the job has one (Task ABI v2:
  ;; a job's shared files are read-only files under /shared; `[inputs] shared =
  ;; ["ignore.txt"]` in a job spec, `--shared ignore.txt` with `wasmhive run`). The
  ;; sandbox's one preopened directory, `/`, is descriptor 3: paths are relative to it.
  ;; Memory: the ignored words go in a second page (65536 up to $ignored_end).
  (data (i32.const 200) " words\n")
  (data (i32.const 220) "shared/ignore.txt")
  (global $ignored_end (mut i32) (i32.const 65536))

  (func (export "_start")
    (local $at i32) (local $start i32) (local $count i64)
    (call $read_ignored)
    (call $read_input)
    (local.set $at (i32.const 1024))
    (block $done
      (loop $next
        (local.set $start (call $past_spaces (local.get $at) (global.get $input_end)))
        (br_if $done (i32.ge_u (local.get $start) (global.get $input_end)))
        (local.set $at (call $past_word (local.get $start) (global.get $input_end)))
        (if (i32.eqz (call $is_ignored (local.get $start) (i32.sub (local.get $at) (local.get $start))))
          (then (local.set $count (i64.add (local.get $count) (i64.const 1)))))
        (br $next)))
    (call $write_number (local.get $count))
    (memory.copy (global.get $output_end) (i32.const 200) (i32.const 7))
    (global.set $output_end (i32.add (global.get $output_end) (i32.const 7)))
    (call $flush))

  ;; Reads /shared/ignore.txt into the second page (nothing when the job has no such file).
  (func $read_ignored
    (local $file i32) (local $count i32)
    (drop (memory.grow (i32.const 1)))
    ;; path_open(dir 3, no flags, path, length, no oflags, rights: fd_read, none, no fdflags, out)
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 220) (i32.const 17) (i32.const 0)
                         (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 12))
      (then (return)))
    (local.set $file (i32.load (i32.const 12)))
    (loop $more
      (i32.store (i32.const 0) (global.get $ignored_end))
      (i32.store (i32.const 4) (i32.sub (i32.const 131072) (global.get $ignored_end)))
      (if (call $fd_read (local.get $file) (i32.const 0) (i32.const 1) (i32.const 8)) (then (return)))
      (local.set $count (i32.load (i32.const 8)))
      (global.set $ignored_end (i32.add (global.get $ignored_end) (local.get $count)))
      (br_if $more (i32.and (i32.gt_u (local.get $count) (i32.const 0))
                            (i32.lt_u (global.get $ignored_end) (i32.const 131072))))))

  ;; Whether the input word [start, start + length) is one of the ignored words.
  (func $is_ignored (param $start i32) (param $length i32) (result i32)
    (local $at i32) (local $word i32)
    (local.set $at (i32.const 65536))
    (block $none
      (loop $next
        (local.set $word (call $past_spaces (local.get $at) (global.get $ignored_end)))
        (br_if $none (i32.ge_u (local.get $word) (global.get $ignored_end)))
        (local.set $at (call $past_word (local.get $word) (global.get $ignored_end)))
        (if (i32.eq (i32.sub (local.get $at) (local.get $word)) (local.get $length))
          (then (if (call $same_bytes (local.get $word) (local.get $start) (local.get $length))
            (then (return (i32.const 1))))))
        (br $next)))
    (i32.const 0))

  ;; The first position from `at` (before `end`) that is not whitespace.
  (func $past_spaces (param $at i32) (param $end i32) (result i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $at) (local.get $end)))
        (br_if $done (i32.eqz (call $is_space (i32.load8_u (local.get $at)))))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $next)))
    (local.get $at))

  ;; The first position from `at` (before `end`) that is whitespace: the word's end.
  (func $past_word (param $at i32) (param $end i32) (result i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $at) (local.get $end)))
        (br_if $done (call $is_space (i32.load8_u (local.get $at))))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $next)))
    (local.get $at))

  (func $same_bytes (param $a i32) (param $b i32) (param $length i32) (result i32)
    (block $differ
      (loop $next
        (if (i32.eqz (local.get $length)) (then (return (i32.const 1))))
        (br_if $differ (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (local.set $length (i32.sub (local.get $length) (i32.const 1)))
        (br $next)))
    (i32.const 0))
