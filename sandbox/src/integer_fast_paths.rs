//! Integer fast paths native compilers take and Cranelift does not, applied to a module when
//! this host compiles it: the 32-bit divide for 64-bit division, and `lea` for
//! multiplications by 3, 5 and 9.
//!
//! Cranelift always emits x86-64's 64-bit divide for `i64.div_*`/`i64.rem_*` (wasmtime
//! issue #2439); LLVM's native code first tests whether both operands fit in 32 bits and
//! then uses the much faster 32-bit divide. Trial division written with `u64` (the common
//! case: values below 2^32) therefore ran 2–2.3× slower in the sandbox than natively. This
//! transform (wasm to wasm, before compilation) rewrites each of the four instructions into
//! the same test and the 32-bit instruction on the fast path:
//!
//! ```text
//! i64.div_u  ⇒  local.set $b  local.set $a
//!               (a | b) >> 32 == 0 ? i64.extend_i32_u(i32.div_u(wrap a, wrap b)) : i64.div_u(a, b)
//! ```
//!
//! and the same for `rem_u`; for `div_s` and `rem_s` the fast path is taken under the same
//! test (both operands in [0, 2^32): non-negative, so the signed result is the unsigned
//! one) with `i32.div_u`/`i32.rem_u`. Results are identical bit for bit, and so are traps:
//! a zero divisor traps "integer divide by zero" on either path, and `i64::MIN / -1` (whose
//! operands never pass the test) traps "integer overflow" on the 64-bit path.
//!
//! Two more things native code does: a remainder of the same operands as the function's
//! last division of its kind is `a - q * b` (x86 gets quotient and remainder from one
//! divide; trial division `d <= n / d` then `n % d` divides once, not twice), and a
//! division by a constant is left alone (Cranelift makes it shifts or a multiplication;
//! wrapping it in the test made a Collatz loop 1.4× slower). And `x * 3`, `x * 5`, `x * 9`
//! become `x + (x << k)`, which Cranelift emits as one `lea` (see [`multiplication_at`]).
//!
//! Invariants:
//! - what a module computes is unchanged: outputs, exit codes and trap kinds are those of
//!   the original (tests run both on edge cases and random operands);
//! - the module's hash, the unit's digests and quorum do not see the transform: it is
//!   applied to the bytes handed to the compiler, never to what is stored or sent;
//! - it adds instructions, so it is applied only when fuel is not metered (fuel counts
//!   instructions, and a replica must not run out of fuel where another does not); the
//!   engine class and the compiled-artifact folder name its version;
//! - a module it cannot parse or re-encode is compiled as it came (and the compiler's own
//!   verdict stands).

use crate::function_bodies::{declared_locals, read_operators};
use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{BlockType, CodeSection, Function, Instruction, ValType};
use wasmparser::{CompositeInnerType, Operator, Payload, TypeRef};

/// Named in the engine class and the artifact folder: a new version recompiles.
pub const INTEGER_FAST_PATHS_VERSION: u32 = 4;

/// The module with the 32-bit fast path on every 64-bit division and remainder and `lea`
/// multiplications; `Err` when it cannot be parsed (compile the original then, and let
/// the compiler say why).
pub fn with_integer_fast_paths(module: &[u8]) -> Result<Vec<u8>, String> {
    let mut rewriter = IntegerRewriter::of(module)?;
    if !rewriter.has_candidate {
        return Ok(module.to_vec());
    }
    let mut encoded = wasm_encoder::Module::new();
    rewriter
        .parse_core_module(&mut encoded, wasmparser::Parser::new(0), module)
        .map_err(|error| format!("re-encoding the module failed: {error}"))?;
    Ok(encoded.finish())
}

/// What the rewrite needs to know of the module before its code: each function's
/// parameter count, to number the two scratch locals it adds.
struct IntegerRewriter {
    params_per_type: Vec<u32>,
    /// Type index of every function, imported ones first.
    type_of_function: Vec<u32>,
    imported_functions: u32,
    defined_functions_seen: u32,
    /// Whether any function divides or multiplies (a superset of what is rewritten).
    has_candidate: bool,
}

impl IntegerRewriter {
    fn of(module: &[u8]) -> Result<IntegerRewriter, String> {
        let mut rewriter = IntegerRewriter {
            params_per_type: Vec::new(),
            type_of_function: Vec::new(),
            imported_functions: 0,
            defined_functions_seen: 0,
            has_candidate: false,
        };
        for payload in wasmparser::Parser::new(0).parse_all(module) {
            match payload.map_err(|error| error.to_string())? {
                Payload::TypeSection(types) => {
                    for group in types {
                        for sub_type in group.map_err(|error| error.to_string())?.into_types() {
                            let params = match &sub_type.composite_type.inner {
                                CompositeInnerType::Func(function) => function.params().len() as u32,
                                _ => 0,
                            };
                            rewriter.params_per_type.push(params);
                        }
                    }
                }
                Payload::ImportSection(imports) => {
                    for import in imports.into_imports() {
                        if let TypeRef::Func(type_index) = import.map_err(|error| error.to_string())?.ty {
                            rewriter.type_of_function.push(type_index);
                            rewriter.imported_functions += 1;
                        }
                    }
                }
                Payload::FunctionSection(functions) => {
                    for type_index in functions {
                        rewriter.type_of_function.push(type_index.map_err(|error| error.to_string())?);
                    }
                }
                Payload::CodeSectionEntry(body) => {
                    let mut operators = body.get_operators_reader().map_err(|error| error.to_string())?;
                    while !operators.eof() {
                        let operator = operators.read().map_err(|error| error.to_string())?;
                        rewriter.has_candidate |= is_64_bit_division(&operator)
                            || matches!(operator, Operator::I64Mul | Operator::I32Mul);
                    }
                }
                _ => {}
            }
        }
        Ok(rewriter)
    }

    fn params_of_defined_function(&self, defined_index: u32) -> Option<u32> {
        let type_index = *self.type_of_function.get((self.imported_functions + defined_index) as usize)?;
        self.params_per_type.get(type_index as usize).copied()
    }
}

fn is_64_bit_division(operator: &Operator<'_>) -> bool {
    matches!(operator, Operator::I64DivU | Operator::I64DivS | Operator::I64RemU | Operator::I64RemS)
}

impl Reencode for IntegerRewriter {
    type Error = String;

    fn parse_function_body(
        &mut self,
        code: &mut CodeSection,
        body: wasmparser::FunctionBody<'_>,
    ) -> Result<(), reencode::Error<String>> {
        let defined_index = self.defined_functions_seen;
        self.defined_functions_seen += 1;
        if !rewrites_any(&body)? {
            // Left byte for byte as it came: no scratch locals, no larger frame.
            return reencode::utils::parse_function_body(self, code, body);
        }
        let params = self
            .params_of_defined_function(defined_index)
            .ok_or_else(|| reencode::Error::UserError(format!("function {defined_index} has no type")))?;
        let mut locals = declared_locals(self, &body)?;
        let declared_count = locals.iter().fold(0u32, |total, (count, _)| total.saturating_add(*count));
        let first_added = params.checked_add(declared_count).filter(|first| *first < u32::MAX - ADDED_LOCALS);
        let first_added =
            first_added.ok_or_else(|| reencode::Error::UserError("too many locals".to_string()))?;
        locals.push((ADDED_LOCALS, ValType::I64));
        locals.push((1, ValType::I32));
        let locals_added = AddedLocals::from(first_added);
        let mut function = Function::new(locals);
        let operators = read_operators(&body)?;
        let mut index = 0;
        while let Some(operator) = operators.get(index) {
            if let Some(shift) = multiplication_at(&operators, index) {
                emit_multiplication(&mut function, &locals_added, shift);
                index += 2;
                continue;
            }
            let previous = index.checked_sub(1).map(|previous| &operators[previous]);
            match rewritten(operator, previous) {
                Some(division) => emit_division(&mut function, &locals_added, division),
                None => {
                    function.instruction(&self.instruction(operator.clone())?);
                }
            }
            index += 1;
        }
        code.function(&function);
        Ok(())
    }
}

/// i64 locals added to every rewritten function: the two operands, and the last unsigned
/// and signed division's operands and quotient (a remainder of the same operands is then
/// `a - q * b`, as native code gets both from one divide instruction); then one i32 local,
/// a 32-bit multiplication's operand.
const ADDED_LOCALS: u32 = 8;

struct AddedLocals {
    a: u32,
    b: u32,
    narrow: u32,
    /// (dividend, divisor, quotient) of the last unsigned division, then of the last signed one.
    unsigned: [u32; 3],
    signed: [u32; 3],
}

impl From<u32> for AddedLocals {
    fn from(first: u32) -> AddedLocals {
        AddedLocals {
            a: first,
            b: first + 1,
            unsigned: [first + 2, first + 3, first + 4],
            signed: [first + 5, first + 6, first + 7],
            narrow: first + ADDED_LOCALS,
        }
    }
}

/// A 64-bit division or remainder: its own instruction and its 32-bit fast path.
struct Division {
    wide: Instruction<'static>,
    narrow: Instruction<'static>,
    signed: bool,
    remainder: bool,
}

/// Whether a function has a division or multiplication this rewrite changes.
fn rewrites_any(body: &wasmparser::FunctionBody<'_>) -> Result<bool, reencode::Error<String>> {
    let operators = read_operators(body)?;
    Ok((0..operators.len()).any(|index| {
        let previous = index.checked_sub(1).map(|previous| &operators[previous]);
        multiplication_at(&operators, index).is_some() || rewritten(&operators[index], previous).is_some()
    }))
}

/// A multiplication by 3, 5 or 9 starting at `index` (the constant, then the multiply):
/// `x * (2^k + 1)` is `x + (x << k)`, which Cranelift emits as one `lea`, as LLVM does for
/// native code, instead of a 3-cycle `imul` (Collatz's `3n + 1`: 1.79× native → 1.17×).
fn multiplication_at(operators: &[Operator<'_>], index: usize) -> Option<ShiftAdd> {
    let shift_of = |factor: i64| match factor {
        3 => Some(1),
        5 => Some(2),
        9 => Some(3),
        _ => None,
    };
    match (operators.get(index)?, operators.get(index + 1)?) {
        (Operator::I64Const { value }, Operator::I64Mul) => {
            Some(ShiftAdd { wide: true, shift: shift_of(*value)? })
        }
        (Operator::I32Const { value }, Operator::I32Mul) => {
            Some(ShiftAdd { wide: false, shift: shift_of(i64::from(*value))? })
        }
        _ => None,
    }
}

/// `x * (2^shift + 1)` in 64 (`wide`) or 32 bits.
struct ShiftAdd {
    wide: bool,
    shift: i32,
}

/// `[x] → [x + (x << shift)]`, the same bits as the multiplication (both wrap).
fn emit_multiplication(function: &mut Function, locals: &AddedLocals, multiplication: ShiftAdd) {
    let instructions = if multiplication.wide {
        [
            Instruction::LocalTee(locals.a),
            Instruction::LocalGet(locals.a),
            Instruction::I64Const(i64::from(multiplication.shift)),
            Instruction::I64Shl,
            Instruction::I64Add,
        ]
    } else {
        [
            Instruction::LocalTee(locals.narrow),
            Instruction::LocalGet(locals.narrow),
            Instruction::I32Const(multiplication.shift),
            Instruction::I32Shl,
            Instruction::I32Add,
        ]
    };
    for instruction in instructions {
        function.instruction(&instruction);
    }
}

/// The division `operator` becomes, unless its divisor is a constant (the instruction
/// before it): Cranelift turns that into shifts or a multiplication, faster than either
/// divide, so it is left alone.
fn rewritten(operator: &Operator<'_>, previous: Option<&Operator<'_>>) -> Option<Division> {
    if matches!(previous, Some(Operator::I64Const { .. })) {
        return None;
    }
    division_of(operator)
}

fn division_of(operator: &Operator<'_>) -> Option<Division> {
    let (wide, narrow, signed, remainder) = match operator {
        Operator::I64DivU => (Instruction::I64DivU, Instruction::I32DivU, false, false),
        Operator::I64RemU => (Instruction::I64RemU, Instruction::I32RemU, false, true),
        // Both operands in [0, 2^32) on the fast path: the signed result is the unsigned one.
        Operator::I64DivS => (Instruction::I64DivS, Instruction::I32DivU, true, false),
        Operator::I64RemS => (Instruction::I64RemS, Instruction::I32RemU, true, true),
        _ => return None,
    };
    Some(Division { wide, narrow, signed, remainder })
}

/// `[a, b] → [a op b]`: a remainder of the operands of the last division of its kind is
/// `a - q * b`; anything else divides, in 32 bits when both operands fit; a division
/// remembers its operands and quotient.
fn emit_division(function: &mut Function, locals: &AddedLocals, division: Division) {
    let (a, b) = (locals.a, locals.b);
    let [last_a, last_b, last_quotient] = if division.signed { locals.signed } else { locals.unsigned };
    function.instruction(&Instruction::LocalSet(b));
    function.instruction(&Instruction::LocalSet(a));
    if division.remainder {
        // The last division's divisor is never 0 (that division trapped), so a function's
        // zeroed locals never match.
        for instruction in [
            Instruction::LocalGet(a),
            Instruction::LocalGet(last_a),
            Instruction::I64Eq,
            Instruction::LocalGet(b),
            Instruction::LocalGet(last_b),
            Instruction::I64Eq,
            Instruction::I32And,
            Instruction::LocalGet(last_b),
            Instruction::I64Eqz,
            Instruction::I32Eqz,
            Instruction::I32And,
            Instruction::If(BlockType::Result(ValType::I64)),
            Instruction::LocalGet(a),
            Instruction::LocalGet(last_quotient),
            Instruction::LocalGet(b),
            Instruction::I64Mul,
            Instruction::I64Sub,
            Instruction::Else,
        ] {
            function.instruction(&instruction);
        }
    }
    for instruction in [
        Instruction::LocalGet(a),
        Instruction::LocalGet(b),
        Instruction::I64Or,
        Instruction::I64Const(32),
        Instruction::I64ShrU,
        Instruction::I64Eqz,
        Instruction::If(BlockType::Result(ValType::I64)),
        Instruction::LocalGet(a),
        Instruction::I32WrapI64,
        Instruction::LocalGet(b),
        Instruction::I32WrapI64,
        division.narrow,
        Instruction::I64ExtendI32U,
        Instruction::Else,
        Instruction::LocalGet(a),
        Instruction::LocalGet(b),
        division.wide,
        Instruction::End,
    ] {
        function.instruction(&instruction);
    }
    if division.remainder {
        function.instruction(&Instruction::End);
    } else {
        for instruction in [
            Instruction::LocalTee(last_quotient),
            Instruction::LocalGet(a),
            Instruction::LocalSet(last_a),
            Instruction::LocalGet(b),
            Instruction::LocalSet(last_b),
        ] {
            function.instruction(&instruction);
        }
    }
}
