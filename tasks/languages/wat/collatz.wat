  ;; collatz: the number in [START, END) with the longest Collatz trajectory. Output: N STEPS.
  (data (i32.const 200) "error: START must be at least 1 and not after END\n")

  (func $trajectory_steps (param $number i64) (result i64)
    (local $steps i64)
    (block $done
      (loop $next
        (br_if $done (i64.eq (local.get $number) (i64.const 1)))
        (if (i64.eqz (i64.rem_u (local.get $number) (i64.const 2)))
          (then (local.set $number (i64.div_u (local.get $number) (i64.const 2))))
          (else (local.set $number (i64.add (i64.mul (local.get $number) (i64.const 3)) (i64.const 1)))))
        (local.set $steps (i64.add (local.get $steps) (i64.const 1)))
        (br $next)))
    (local.get $steps))

  (func (export "_start")
    (local $number i64) (local $end i64) (local $steps i64) (local $best i64) (local $best_steps i64)
    (call $read_input)
    (local.set $number (call $next_number))
    (local.set $end (call $next_number))
    (call $expect_end)
    (if (i32.or (i64.eqz (local.get $number)) (i64.gt_u (local.get $number) (local.get $end)))
      (then (call $fail (i32.const 200) (i32.const 50))))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $number) (local.get $end)))
        (local.set $steps (call $trajectory_steps (local.get $number)))
        (if (i32.or (i64.eqz (local.get $best)) (i64.gt_u (local.get $steps) (local.get $best_steps)))
          (then (local.set $best (local.get $number)) (local.set $best_steps (local.get $steps))))
        (local.set $number (i64.add (local.get $number) (i64.const 1)))
        (br $next)))
    (call $write_number (local.get $best))
    (call $write_byte (i32.const 32))
    (call $write_number (local.get $best_steps))
    (call $write_byte (i32.const 10))
    (call $flush))
