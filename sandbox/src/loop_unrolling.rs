//! Fewer wall-clock guard checks in inner loops: their bodies repeated up to 8 times per
//! trip around the loop, applied to a module when this host compiles it.
//!
//! The wall-clock guard is wasmtime's epoch check, at every function entry and loop head.
//! Its slow path is a call, and on x86-64 a call clobbers every float register, so
//! Cranelift keeps a float loop's values in stack slots for the whole loop: a store and a
//! load per value per trip (wasmtime issue #7244). Mandelbrot's inner loop ran 2.0× slower
//! than native because of it, and 1.02× with the guard off. Repeating the body k times
//! inside one `loop` leaves one check and one round of spills per k trips:
//!
//! ```text
//! loop            ⇒  block $B
//!   BODY               loop $L
//! end                    block $c_{k-2} … block $c_0
//!                          BODY_0      (continue ⇒ br $c_0: on to the next copy)
//!                          br $B       (the body ended: the loop is done)
//!                        end  …  BODY_{k-2}  br $B  end
//!                        BODY_{k-1}    (continue ⇒ br $L)
//!                      end
//!                    end
//! ```
//!
//! Inside copy i, a branch to the loop keeps its depth (it now names the block that ends
//! in the next copy, or the loop itself in the last), and a branch to a label outside the
//! loop gets k − i deeper. Measured on mandelbrot's loop: 2.03× native at k = 1, 1.56× at
//! 2, 1.32× at 4, 1.18× at 8.
//!
//! Invariants:
//! - what a module computes is unchanged: the copies run the same instructions in the same
//!   order (tests run both modules on the same inputs and compare);
//! - the guard's guarantee holds: every trip of k copies passes the loop head's check, and
//!   each copy is straight-line code or has its own loops and calls, which check;
//! - only innermost `loop`s with no parameters or results are repeated, in functions
//!   whose branches are all `br`, `br_if` and `br_table` (no exception handling, no
//!   typed-reference branches); functions with none are left byte for byte;
//! - growth is bounded: a body of n instructions is repeated 8 times up to 64, 4 times up
//!   to 128 and twice up to 256; a function grows by at most its own size or 4,096
//!   instructions, whichever is more, so a hostile module compiles at most ~2× slower;
//! - it adds instructions (`block`, `br`), so, like the division fast path, it is applied
//!   only when fuel is not metered; the artifact folder names its version.

use crate::function_bodies::{declared_locals, read_operators};
use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{BlockType, CodeSection, Function, Instruction};
use wasmparser::{Operator, Payload};

/// Named in the artifact folder: a new version recompiles.
pub const LOOP_UNROLLING_VERSION: u32 = 1;

/// Instructions a function may gain, beyond its own size.
const GROWTH_FLOOR: usize = 4_096;

/// The module with its inner loops' bodies repeated; `Err` when it cannot be parsed.
pub fn with_unrolled_loops(module: &[u8]) -> Result<Vec<u8>, String> {
    if !has_loop(module)? {
        return Ok(module.to_vec());
    }
    let mut encoded = wasm_encoder::Module::new();
    LoopUnroller
        .parse_core_module(&mut encoded, wasmparser::Parser::new(0), module)
        .map_err(|error| format!("re-encoding the module failed: {error}"))?;
    Ok(encoded.finish())
}

fn has_loop(module: &[u8]) -> Result<bool, String> {
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let Payload::CodeSectionEntry(body) = payload.map_err(|error| error.to_string())? {
            let mut operators = body.get_operators_reader().map_err(|error| error.to_string())?;
            while !operators.eof() {
                if matches!(operators.read().map_err(|error| error.to_string())?, Operator::Loop { .. }) {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

struct LoopUnroller;

impl Reencode for LoopUnroller {
    type Error = String;

    fn parse_function_body(
        &mut self,
        code: &mut CodeSection,
        body: wasmparser::FunctionBody<'_>,
    ) -> Result<(), reencode::Error<String>> {
        let operators = read_operators(&body)?;
        let plan = unrolling_plan(&operators);
        if plan.is_empty() {
            return reencode::utils::parse_function_body(self, code, body);
        }
        let mut function = Function::new(declared_locals(self, &body)?);
        let mut next = 0;
        for unrolled in &plan {
            for operator in &operators[next..unrolled.loop_start] {
                function.instruction(&self.instruction(operator.clone())?);
            }
            self.emit_unrolled(
                &mut function,
                &operators[unrolled.loop_start + 1..unrolled.loop_end],
                unrolled.copies,
            )?;
            next = unrolled.loop_end + 1;
        }
        for operator in &operators[next..] {
            function.instruction(&self.instruction(operator.clone())?);
        }
        code.function(&function);
        Ok(())
    }
}

impl LoopUnroller {
    /// The loop whose body (without its `loop` and `end`) is `body`, as `copies` copies.
    fn emit_unrolled(
        &mut self,
        function: &mut Function,
        body: &[Operator<'_>],
        copies: u32,
    ) -> Result<(), reencode::Error<String>> {
        function.instruction(&Instruction::Block(BlockType::Empty));
        function.instruction(&Instruction::Loop(BlockType::Empty));
        for _ in 1..copies {
            function.instruction(&Instruction::Block(BlockType::Empty));
        }
        for copy in 0..copies {
            let deeper = copies - copy;
            let mut nesting = 0u32;
            for operator in body {
                function.instruction(&self.in_copy(operator, nesting, deeper)?);
                nesting = match operator {
                    Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => nesting + 1,
                    Operator::End => nesting.saturating_sub(1),
                    _ => nesting,
                };
            }
            if copy + 1 < copies {
                function.instruction(&Instruction::Br(deeper));
                function.instruction(&Instruction::End);
            }
        }
        function.instruction(&Instruction::End);
        function.instruction(&Instruction::End);
        Ok(())
    }

    /// `operator` inside a copy at `nesting` blocks deep in the body: branches to labels
    /// outside the loop pass `deeper` more labels.
    fn in_copy<'a>(
        &mut self,
        operator: &Operator<'a>,
        nesting: u32,
        deeper: u32,
    ) -> Result<Instruction<'a>, reencode::Error<String>> {
        let moved = |depth: u32| if depth > nesting { depth + deeper } else { depth };
        Ok(match operator {
            Operator::Br { relative_depth } => Instruction::Br(moved(*relative_depth)),
            Operator::BrIf { relative_depth } => Instruction::BrIf(moved(*relative_depth)),
            Operator::BrTable { targets } => {
                let mut depths = Vec::with_capacity(targets.len() as usize);
                for target in targets.targets() {
                    depths.push(moved(target?));
                }
                Instruction::BrTable(depths.into(), moved(targets.default()))
            }
            other => self.instruction(other.clone())?,
        })
    }
}

/// One loop to repeat: the indexes of its `loop` and its `end` in the function's operators.
#[derive(Debug, PartialEq, Eq)]
struct UnrolledLoop {
    loop_start: usize,
    loop_end: usize,
    copies: u32,
}

/// An open block while the function is scanned.
struct OpenBlock {
    start: usize,
    /// An innermost `loop` without parameters or results, with only branches we move.
    candidate: bool,
}

/// The loops of a function to repeat, in order, within the function's growth budget.
fn unrolling_plan(operators: &[Operator<'_>]) -> Vec<UnrolledLoop> {
    if !operators.iter().all(is_movable) {
        return Vec::new();
    }
    let mut budget = operators.len().max(GROWTH_FLOOR);
    let mut plan = Vec::new();
    let mut open: Vec<OpenBlock> = Vec::new();
    for (index, operator) in operators.iter().enumerate() {
        match operator {
            Operator::Loop { blockty } => {
                // A loop inside makes every enclosing loop an outer one.
                open.iter_mut().for_each(|block| block.candidate = false);
                let candidate = matches!(blockty, wasmparser::BlockType::Empty);
                open.push(OpenBlock { start: index, candidate });
            }
            Operator::Block { .. } | Operator::If { .. } => {
                open.push(OpenBlock { start: index, candidate: false });
            }
            Operator::End => {
                let Some(block) = open.pop() else { continue };
                if !block.candidate {
                    continue;
                }
                let body = index - block.start - 1;
                let copies = copies_for(body);
                let added = body * (copies as usize - 1) + 2 * copies as usize;
                if copies > 1 && added <= budget {
                    budget -= added;
                    plan.push(UnrolledLoop { loop_start: block.start, loop_end: index, copies });
                }
            }
            _ => {}
        }
    }
    plan
}

/// How many copies of a body of `instructions`: fewer as it grows.
fn copies_for(instructions: usize) -> u32 {
    match instructions {
        0..=64 => 8,
        65..=128 => 4,
        129..=256 => 2,
        _ => 1,
    }
}

/// Whether a function with `operator` in it can have its loops repeated: anything but a
/// branch or block kind the rewrite does not move (exception handling, typed-reference
/// branches).
fn is_movable(operator: &Operator<'_>) -> bool {
    !matches!(
        operator,
        Operator::Try { .. }
            | Operator::TryTable { .. }
            | Operator::Catch { .. }
            | Operator::CatchAll
            | Operator::Delegate { .. }
            | Operator::Rethrow { .. }
            | Operator::BrOnNull { .. }
            | Operator::BrOnNonNull { .. }
            | Operator::BrOnCast { .. }
            | Operator::BrOnCastFail { .. }
    )
}

#[cfg(test)]
#[path = "loop_unrolling_tests.rs"]
mod tests;
