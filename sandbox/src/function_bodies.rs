//! What the module rewrites (`integer_fast_paths.rs`, `loop_unrolling.rs`) read from a
//! function body before they write it anew.

use wasm_encoder::ValType;
use wasm_encoder::reencode::{self, Reencode};
use wasmparser::{FunctionBody, Operator};

/// The body's operators, in order.
pub(crate) fn read_operators<'a, E>(
    body: &FunctionBody<'a>,
) -> Result<Vec<Operator<'a>>, reencode::Error<E>> {
    let mut reader = body.get_operators_reader()?;
    let mut operators = Vec::new();
    while !reader.eof() {
        operators.push(reader.read()?);
    }
    Ok(operators)
}

/// The body's declared locals, re-encoded as they were.
pub(crate) fn declared_locals<R: Reencode>(
    reencoder: &mut R,
    body: &FunctionBody<'_>,
) -> Result<Vec<(u32, ValType)>, reencode::Error<R::Error>> {
    let mut locals = Vec::new();
    for pair in body.get_locals_reader()? {
        let (count, value_type) = pair?;
        locals.push((count, reencoder.val_type(value_type)?));
    }
    Ok(locals)
}
