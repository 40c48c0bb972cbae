//! Loop unrolling against the untransformed module: same values, same traps, for loops
//! with every kind of branch a copy must move; and the bounds on what it repeats.

use super::{unrolling_plan, with_unrolled_loops};
use proptest::prelude::*;
use wasmtime::{Engine, Instance, Module, Store, Trap};

/// Loops with a branch of each kind: out of the loop, to the loop from nested blocks, to
/// an outer block carrying a value, through `br_table`, `return` and a trap, and a nest
/// (only the inner loop is repeated).
const LOOPS: &str = r#"(module
  ;; Mandelbrot's escape loop: iterations of z <- z^2 + c before |z| > 2.
  (func (export "escape") (param $cr f64) (param $ci f64) (param $max i64) (result i64)
    (local $zr f64) (local $zi f64) (local $n i64) (local $t f64)
    block $done
      loop $next
        (br_if $done (f64.gt (f64.add (f64.mul (local.get $zr) (local.get $zr))
                                      (f64.mul (local.get $zi) (local.get $zi))) (f64.const 4)))
        (br_if $done (i64.ge_u (local.get $n) (local.get $max)))
        (local.set $t (f64.add (f64.sub (f64.mul (local.get $zr) (local.get $zr))
                                        (f64.mul (local.get $zi) (local.get $zi))) (local.get $cr)))
        (local.set $zi (f64.add (f64.mul (f64.mul (f64.const 2) (local.get $zr)) (local.get $zi)) (local.get $ci)))
        (local.set $zr (local.get $t))
        (local.set $n (i64.add (local.get $n) (i64.const 1)))
        br $next
      end
    end
    local.get $n)
  ;; Continues from inside an if and a block; breaks out with a value; a br_table whose
  ;; targets are inside the body, the loop itself and a block outside.
  (func (export "branches") (param $a i32) (param $b i32) (result i32)
    (local $i i32) (local $acc i32)
    block $out (result i32)
      block $bail
        loop $again
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (if (i32.and (local.get $i) (i32.const 1))
            (then
              (local.set $acc (i32.add (local.get $acc) (local.get $a)))
              (br_if $again (i32.lt_u (local.get $i) (local.get $b)))))
          block $skip
            block $twice
              (br_table $skip $twice $again $bail
                (i32.rem_u (i32.add (local.get $acc) (local.get $i)) (i32.const 7)))
            end
            (local.set $acc (i32.xor (local.get $acc) (i32.const 0x55)))
          end
          (br_if $out (i32.add (local.get $acc) (local.get $i)) (i32.gt_u (local.get $i) (i32.const 1000)))
          br $again
        end
      end
      (i32.add (local.get $acc) (i32.const 1000000))
    end)
  ;; Returns from inside the loop, or traps dividing by zero on the way.
  (func (export "returns") (param $a i32) (param $b i32) (result i32) (local $i i32)
    loop $again
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (if (i32.eq (local.get $i) (local.get $b)) (then (return (i32.div_u (local.get $a) (i32.sub (local.get $i) (i32.const 7))))))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 100000)))
    end
    local.get $i)
  ;; A nest: the outer loop holds another loop and is left alone.
  (func (export "nest") (param $rows i32) (param $cols i32) (result f64)
    (local $r i32) (local $c i32) (local $sum f64)
    block $done
      loop $row
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $c (i32.const 0))
        block $row_done
          loop $col
            (br_if $row_done (i32.ge_u (local.get $c) (local.get $cols)))
            (local.set $sum (f64.add (f64.mul (local.get $sum) (f64.const 0.75))
                                     (f64.convert_i32_u (i32.mul (local.get $r) (local.get $c)))))
            (local.set $c (i32.add (local.get $c) (i32.const 1)))
            br $col
          end
        end
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        br $row
      end
    end
    local.get $sum)
)"#;

struct Both {
    store: Store<()>,
    original: Instance,
    rewritten: Instance,
}

impl Both {
    fn new() -> Both {
        let engine = Engine::default();
        let original = wat::parse_str(LOOPS).unwrap();
        let rewritten = with_unrolled_loops(&original).unwrap();
        assert_ne!(original, rewritten, "the module was rewritten");
        let mut store = Store::new(&engine, ());
        let original = Instance::new(&mut store, &Module::new(&engine, &original).unwrap(), &[]).unwrap();
        let rewritten = Instance::new(&mut store, &Module::new(&engine, &rewritten).unwrap(), &[]).unwrap();
        Both { store, original, rewritten }
    }

    /// `name(params)` in both modules: the value, or the trap's kind.
    fn call<P, R>(&mut self, name: &str, params: P) -> [Result<R, Trap>; 2]
    where
        P: wasmtime::WasmParams + Copy,
        R: wasmtime::WasmResults,
    {
        [self.original, self.rewritten].map(|instance| {
            let function = instance.get_typed_func::<P, R>(&mut self.store, name).unwrap();
            function.call(&mut self.store, params).map_err(|error| *error.downcast_ref::<Trap>().unwrap())
        })
    }
}

#[test]
fn repeated_loops_compute_what_the_originals_compute() {
    let mut both = Both::new();
    for (real, imaginary) in [(0.0, 0.0), (-0.75, 0.1), (0.3, 0.5), (-2.0, 0.0), (1.0, 1.0), (f64::NAN, 0.0)]
    {
        for max in [0i64, 1, 7, 8, 9, 1000] {
            let [original, rewritten] = both.call::<_, i64>("escape", (real, imaginary, max));
            assert_eq!(original, rewritten, "escape({real}, {imaginary}, {max})");
        }
    }
    for (a, b) in [(0, 0), (1, 1), (3, 8), (7, 100), (-5, 2000)] {
        let [original, rewritten] = both.call::<_, i32>("branches", (a, b));
        assert_eq!(original, rewritten, "branches({a}, {b})");
    }
    let [original, rewritten] = both.call::<_, i32>("returns", (10, 7));
    assert_eq!(original, Err(Trap::IntegerDivisionByZero));
    assert_eq!(original, rewritten);
    let [original, rewritten] = both.call::<_, f64>("nest", (37, 11));
    assert_eq!(original.map(f64::to_bits), rewritten.map(f64::to_bits));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]
    #[test]
    fn repeated_loops_agree_on_random_inputs(a in any::<i32>(), b in 0i32..3000, real in -2.5f64..1.0, imaginary in -1.25f64..1.25, max in 0i64..300) {
        let mut both = Both::new();
        let [original, rewritten] = both.call::<_, i32>("branches", (a, b));
        prop_assert_eq!(original, rewritten);
        let [original, rewritten] = both.call::<_, i32>("returns", (a, b));
        prop_assert_eq!(original, rewritten);
        let [original, rewritten] = both.call::<_, i64>("escape", (real, imaginary, max));
        prop_assert_eq!(original, rewritten);
        let [original, rewritten] = both.call::<_, f64>("nest", (b % 40, a.rem_euclid(40)));
        prop_assert_eq!(original.map(f64::to_bits), rewritten.map(f64::to_bits));
    }
}

/// The operators of each function of `wat`.
fn operators_of(module: &[u8]) -> Vec<Vec<wasmparser::Operator<'_>>> {
    let mut functions = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::CodeSectionEntry(body) = payload.unwrap() {
            let mut reader = body.get_operators_reader().unwrap();
            let mut operators = Vec::new();
            while !reader.eof() {
                operators.push(reader.read().unwrap());
            }
            functions.push(operators);
        }
    }
    functions
}

fn count(operators: &[wasmparser::Operator<'_>], wanted: fn(&wasmparser::Operator<'_>) -> bool) -> usize {
    operators.iter().filter(|operator| wanted(operator)).count()
}

#[test]
fn inner_loops_are_repeated_and_outer_ones_and_loops_with_results_are_not() {
    let original = wat::parse_str(LOOPS).unwrap();
    let rewritten = with_unrolled_loops(&original).unwrap();
    let is_loop = |operator: &wasmparser::Operator<'_>| matches!(operator, wasmparser::Operator::Loop { .. });
    let is_f64_mul = |operator: &wasmparser::Operator<'_>| matches!(operator, wasmparser::Operator::F64Mul);
    let (before, after) = (operators_of(&original), operators_of(&rewritten));
    for (function, (before, after)) in before.iter().zip(&after).enumerate() {
        assert_eq!(count(before, is_loop), count(after, is_loop), "function {function} keeps its loops");
    }
    assert_eq!(count(&after[0], is_f64_mul), 8 * count(&before[0], is_f64_mul), "escape's body 8 times");
    assert_eq!(count(&after[3], is_f64_mul), 8 * count(&before[3], is_f64_mul), "the inner loop of the nest");
    let with_result = "(module (func (result i32) (loop (result i32) (i32.const 1))))";
    let with_result = wat::parse_str(with_result).unwrap();
    assert_eq!(with_unrolled_loops(&with_result).unwrap(), with_result, "a loop with a result is left alone");
}

#[test]
fn functions_without_loops_are_left_byte_for_byte() {
    let module =
        wat::parse_str("(module (func (param f64) (result f64) (f64.mul (local.get 0) (local.get 0))))")
            .unwrap();
    assert_eq!(with_unrolled_loops(&module).unwrap(), module);
}

/// A loop whose body has `instructions` instructions (`instructions` ≥ 2).
fn loop_of(instructions: usize) -> String {
    let nops = "nop ".repeat(instructions - 2);
    format!("(loop $l {nops} local.get 0 br_if $l)")
}

#[test]
fn fewer_copies_of_larger_bodies_and_growth_within_the_function_budget() {
    let plan_for = |loops: &str| {
        let module = wat::parse_str(format!("(module (func (param i32) {loops}))")).unwrap();
        let functions = operators_of(&module);
        unrolling_plan(&functions[0]).iter().map(|unrolled| unrolled.copies).collect::<Vec<_>>()
    };
    assert_eq!(plan_for(&loop_of(64)), [8]);
    assert_eq!(plan_for(&loop_of(65)), [4]);
    assert_eq!(plan_for(&loop_of(256)), [2]);
    assert!(plan_for(&loop_of(257)).is_empty(), "a large body is left alone");
    // 100 loops of 64 instructions: repeating all would add 100 × (7 × 64 + 16) = 46,400;
    // the budget (the function's own size, 6,601) repeats the first 14.
    let many = plan_for(&loop_of(64).repeat(100));
    assert_eq!(many, [8; 14]);
    let module = wat::parse_str(format!("(module (func (param i32) {}))", loop_of(64).repeat(100))).unwrap();
    let rewritten = with_unrolled_loops(&module).unwrap();
    let (before, after) = (operators_of(&module)[0].len(), operators_of(&rewritten)[0].len());
    assert!(after - before <= before.max(4_096), "{before} instructions grew by {}", after - before);
}

#[test]
fn functions_with_exception_handling_are_left_alone() {
    let module = wat::parse_str(
        r#"(module (tag $oops) (func (param i32)
             (loop $l (try_table (catch_all 0) (br_if $l (local.get 0))))))"#,
    )
    .unwrap();
    assert_eq!(with_unrolled_loops(&module).unwrap(), module);
}
