//! The division fast path against the untransformed module: same values, same traps, on
//! the edge cases and on random operands.

use crate::integer_fast_paths::with_integer_fast_paths;
use proptest::prelude::*;
use wasmtime::{Engine, Instance, Module, Store, Trap};

/// Each operation as its own function, after an import (function indexes shift) and with
/// declared locals in one of them (the scratch locals are numbered after them).
const OPERATIONS: &str = r#"(module
  (import "host" "ignore" (func $ignore (param i32)))
  (func (export "div_u") (param i64 i64) (result i64) local.get 0 local.get 1 i64.div_u)
  (func (export "div_s") (param i64 i64) (result i64) local.get 0 local.get 1 i64.div_s)
  (func (export "rem_u") (param i64 i64) (result i64) local.get 0 local.get 1 i64.rem_u)
  (func (export "rem_s") (param $a i64) (param $b i64) (result i64)
    (local $kept i32) (local $sum i64)
    i32.const 7 local.set $kept
    local.get $a local.get $b i64.rem_s
    local.get $kept call $ignore
    local.get $kept i64.extend_i32_u i64.const 7 i64.sub i64.add)
  ;; A division, then the remainder of the same operands (from the quotient), combined.
  (func (export "divrem_u") (param $a i64) (param $b i64) (result i64)
    (i64.add (i64.mul (i64.div_u (local.get $a) (local.get $b)) (i64.const 31))
             (i64.rem_u (local.get $a) (local.get $b))))
  (func (export "divrem_s") (param $a i64) (param $b i64) (result i64)
    (i64.add (i64.mul (i64.div_s (local.get $a) (local.get $b)) (i64.const 31))
             (i64.rem_s (local.get $a) (local.get $b))))
  ;; Remainders of other operands than the last division's, and of the last division's
  ;; operands after a division of the other signedness.
  (func (export "stale") (param $a i64) (param $b i64) (result i64) (local $c i64)
    (local.set $c (i64.add (local.get $b) (i64.const 1)))
    (i64.xor
      (i64.xor (i64.div_u (local.get $a) (local.get $b)) (i64.rem_u (local.get $a) (local.get $c)))
      (i64.xor (i64.rem_u (local.get $c) (local.get $b))
               (i64.xor (i64.div_s (local.get $b) (local.get $c)) (i64.rem_u (local.get $a) (local.get $b))))))
  ;; Multiplications by 3, 5 and 9 become a shift and an add (x86's `lea`); by 7 left alone.
  (func (export "times") (param $a i64) (param $b i64) (result i64)
    (i64.add (i64.add (i64.mul (local.get $a) (i64.const 3)) (i64.mul (local.get $b) (i64.const 5)))
             (i64.add (i64.mul (i64.add (local.get $a) (local.get $b)) (i64.const 9))
                      (i64.mul (local.get $b) (i64.const 7)))))
  (func (export "times_32") (param $a i64) (param $b i64) (result i64)
    (i64.extend_i32_u (i32.xor (i32.mul (i32.wrap_i64 (local.get $a)) (i32.const 3))
      (i32.xor (i32.mul (i32.wrap_i64 (local.get $b)) (i32.const 9)) (i32.mul (i32.wrap_i64 (local.get $a)) (i32.const 5))))))
  ;; Constant divisors are left to the compiler.
  (func (export "by_constant") (param $a i64) (param $b i64) (result i64)
    (i64.add (i64.add (i64.div_u (local.get $a) (i64.const 10)) (i64.rem_u (local.get $a) (i64.const 10)))
             (i64.add (i64.div_s (local.get $a) (i64.const 2)) (i64.rem_s (local.get $a) (i64.const -3)))))
)"#;

const NAMES: [&str; 10] =
    ["div_u", "div_s", "rem_u", "rem_s", "divrem_u", "divrem_s", "stale", "by_constant", "times", "times_32"];

/// An instance of the original module and one of the rewritten module.
struct Both {
    store: Store<()>,
    original: Instance,
    rewritten: Instance,
}

impl Both {
    fn new() -> Both {
        let engine = Engine::default();
        let original = wat::parse_str(OPERATIONS).unwrap();
        let rewritten = with_integer_fast_paths(&original).unwrap();
        assert_ne!(original, rewritten, "the module was rewritten");
        let mut store = Store::new(&engine, ());
        let mut instantiate = |bytes: &[u8]| {
            let module = Module::new(&engine, bytes).unwrap();
            let ignore = wasmtime::Func::wrap(&mut store, |_: i32| {});
            Instance::new(&mut store, &module, &[ignore.into()]).unwrap()
        };
        let (original, rewritten) = (instantiate(&original), instantiate(&rewritten));
        Both { store, original, rewritten }
    }

    /// Both answers for one operation, each a value or a trap code.
    fn answers(&mut self, name: &str, a: i64, b: i64) -> (Result<i64, Trap>, Result<i64, Trap>) {
        let mut call = |instance: Instance| {
            let function = instance.get_typed_func::<(i64, i64), i64>(&mut self.store, name).unwrap();
            function
                .call(&mut self.store, (a, b))
                .map_err(|error| *error.downcast_ref::<Trap>().expect("a trap, not another error"))
        };
        (call(self.original), call(self.rewritten))
    }

    fn assert_same(&mut self, a: i64, b: i64) {
        for name in NAMES {
            let (original, rewritten) = self.answers(name, a, b);
            assert_eq!(original, rewritten, "{name}({a}, {b})");
        }
    }
}

const EDGES: [i64; 20] = [
    0,
    1,
    2,
    3,
    7,
    -1,
    -2,
    -7,
    i32::MAX as i64,
    i32::MAX as i64 + 1,
    u32::MAX as i64 - 1,
    u32::MAX as i64,
    u32::MAX as i64 + 1,
    u32::MAX as i64 + 2,
    -(u32::MAX as i64),
    -(u32::MAX as i64) - 1,
    i64::MAX,
    i64::MAX - 1,
    i64::MIN,
    i64::MIN + 1,
];

#[test]
fn edge_cases_give_the_same_values_and_the_same_traps() {
    let mut both = Both::new();
    for a in EDGES {
        for b in EDGES {
            both.assert_same(a, b);
        }
    }
    assert_eq!(both.answers("div_u", 5, 0).1, Err(Trap::IntegerDivisionByZero), "zero divisor, fast path");
    assert_eq!(both.answers("div_s", i64::MIN, -1).1, Err(Trap::IntegerOverflow));
    assert_eq!(both.answers("rem_s", i64::MIN, -1).1, Ok(0), "i64::MIN % -1 is 0, no trap");
    assert_eq!(both.answers("div_s", -7, 2).1, Ok(-3), "negative operands take the 64-bit path");
}

/// One pair of instances for every random case (compiling two modules per case would
/// dominate the test's time).
static SHARED: std::sync::LazyLock<std::sync::Mutex<Both>> =
    std::sync::LazyLock::new(|| std::sync::Mutex::new(Both::new()));

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]
    #[test]
    fn random_operands_give_the_same_values_and_traps(
        a in prop_oneof![any::<i64>(), 0..=u32::MAX as i64, -(1i64 << 33)..(1i64 << 33)],
        b in prop_oneof![any::<i64>(), 0..=u32::MAX as i64, -3i64..3, 1..=u16::MAX as i64],
    ) {
        SHARED.lock().unwrap().assert_same(a, b);
    }
}

#[test]
fn a_module_without_division_is_unchanged_and_garbage_is_refused() {
    let plain =
        wat::parse_str(r#"(module (func (export "f") (result i64) i64.const 1 i64.const 2 i64.add))"#)
            .unwrap();
    assert_eq!(with_integer_fast_paths(&plain).unwrap(), plain);
    assert!(with_integer_fast_paths(b"\0asm\x01\0\0\0\x0a\x05garbage").is_err());
    assert!(with_integer_fast_paths(b"not wasm at all").is_err());
}

#[test]
fn multiplications_by_three_five_and_nine_become_a_shift_and_an_add() {
    let module = wat::parse_str(
        r#"(module (func (param i64 i32) (result i64)
             (i64.mul (local.get 0) (i64.const 3)) (i64.mul (local.get 0) (i64.const 5))
             (i64.mul (local.get 0) (i64.const 9)) (i64.mul (local.get 0) (i64.const 7))
             (i64.add) (i64.add) (i64.add)
             (i32.mul (local.get 1) (i32.const 5)) (i32.mul (local.get 1) (i32.const 6)) (i32.add)
             (i64.extend_i32_u) (i64.add)))"#,
    )
    .unwrap();
    let multiplications = |bytes: &[u8]| {
        let mut count = 0;
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            if let wasmparser::Payload::CodeSectionEntry(body) = payload.unwrap() {
                let mut operators = body.get_operators_reader().unwrap();
                while !operators.eof() {
                    let operator = operators.read().unwrap();
                    count += usize::from(matches!(
                        operator,
                        wasmparser::Operator::I64Mul | wasmparser::Operator::I32Mul
                    ));
                }
            }
        }
        count
    };
    assert_eq!(multiplications(&module), 6);
    let rewritten = with_integer_fast_paths(&module).unwrap();
    assert_eq!(multiplications(&rewritten), 2, "by 7 and by 6 stay multiplications");
}

#[test]
fn functions_without_a_rewritten_division_keep_their_locals() {
    let module = wat::parse_str(
        r#"(module
          (func (export "divides") (param i64 i64) (result i64) local.get 0 local.get 1 i64.div_u)
          (func (export "by_ten") (param i64) (result i64) local.get 0 i64.const 10 i64.div_u)
          (func (export "adds") (param i64) (result i64) (local i32) local.get 0 i64.const 1 i64.add))"#,
    )
    .unwrap();
    let rewritten = with_integer_fast_paths(&module).unwrap();
    let mut locals_per_function = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&rewritten) {
        if let wasmparser::Payload::CodeSectionEntry(body) = payload.unwrap() {
            let declared: u32 =
                body.get_locals_reader().unwrap().into_iter().map(|pair| pair.unwrap().0).sum();
            locals_per_function.push(declared);
        }
    }
    assert_eq!(locals_per_function, [9, 0, 1], "scratch locals only where a division is rewritten");
}
