  ;; {{name}}: a wasmhive task (Task ABI v1). Input: any text. Output: how many words it has.
  (data (i32.const 200) " words\n")

  (func (export "_start")
    (local $at i32) (local $count i64) (local $in_word i32) (local $space i32)
    (call $read_input)
    (local.set $at (i32.const 1024))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $at) (global.get $input_end)))
        (local.set $space (call $is_space (i32.load8_u (local.get $at))))
        (if (i32.and (i32.eqz (local.get $space)) (i32.eqz (local.get $in_word)))
          (then (local.set $count (i64.add (local.get $count) (i64.const 1)))))
        (local.set $in_word (i32.eqz (local.get $space)))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $next)))
    (call $write_number (local.get $count))
    (memory.copy (global.get $output_end) (i32.const 200) (i32.const 7))
    (global.set $output_end (i32.add (global.get $output_end) (i32.const 7)))
    (call $flush))
