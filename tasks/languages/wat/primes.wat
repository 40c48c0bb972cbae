  ;; primes: how many primes lie in [START, END), by trial division. Output: the count.
  (data (i32.const 200) "error: START is after END\n")

  (func $is_prime (param $candidate i64) (result i32)
    (local $divisor i64)
    (if (i64.lt_u (local.get $candidate) (i64.const 4))
      (then (return (i64.ge_u (local.get $candidate) (i64.const 2)))))
    (if (i64.eqz (i64.rem_u (local.get $candidate) (i64.const 2))) (then (return (i32.const 0))))
    (local.set $divisor (i64.const 3))
    (block $done
      (loop $next
        (br_if $done (i64.gt_u (local.get $divisor) (i64.div_u (local.get $candidate) (local.get $divisor))))
        (if (i64.eqz (i64.rem_u (local.get $candidate) (local.get $divisor))) (then (return (i32.const 0))))
        (local.set $divisor (i64.add (local.get $divisor) (i64.const 2)))
        (br $next)))
    (i32.const 1))

  (func (export "_start")
    (local $candidate i64) (local $end i64) (local $count i64)
    (call $read_input)
    (local.set $candidate (call $next_number))
    (local.set $end (call $next_number))
    (call $expect_end)
    (if (i64.gt_u (local.get $candidate) (local.get $end)) (then (call $fail (i32.const 200) (i32.const 26))))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $candidate) (local.get $end)))
        (local.set $count (i64.add (local.get $count) (i64.extend_i32_u (call $is_prime (local.get $candidate)))))
        (local.set $candidate (i64.add (local.get $candidate) (i64.const 1)))
        (br $next)))
    (call $write_number (local.get $count))
    (call $write_byte (i32.const 10))
    (call $flush))
