//! The Rust task modules as bytes, built by this crate's build script for `wasm32-wasip1`.
//!
//! | name | input | output |
//! | --- | --- | --- |
//! | `sum` | `START END` | sum of the integers in [START, END) |
//! | `primes` | `START END` | count of primes in [START, END) |
//! | `pi` | `SAMPLES` | `HITS SAMPLES ESTIMATE` (Monte Carlo, seeded WASI random) |
//! | `mandelbrot` | `WIDTH HEIGHT ROW_START ROW_END MAX_ITER` | PGM tile of those rows |
//! | `hashcash` | `PREFIX BITS` | `NONCE HASH_HEX` |
//! | `heat` | `WIDTH HEIGHT STEPS` | `MEAN HASH`: heat diffusion on a plate (vectorised) |
//! | `probe` | (argv selects a misbehaviour) | test guest for the sandbox |
//! | `collatz` | `START END` | `N STEPS`: the longest Collatz trajectory in [START, END) |
//! | `sum-columns` | accepted outputs, concatenated | column sums (a reducer) |
//! | `tolerant-compare` | `LEN\n` + output A + output B | exit 0 if they agree (a validator) |
//! | `digest` | any bytes (argv: `sha256` or `checksum`) | the first 8 bytes of their SHA-256 in hex, or a checksum |

macro_rules! task_module {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".wasm"))
    };
}

pub const SUM: &[u8] = task_module!("sum");
pub const PRIMES: &[u8] = task_module!("primes");
pub const PI: &[u8] = task_module!("pi");
pub const MANDELBROT: &[u8] = task_module!("mandelbrot");
pub const HASHCASH: &[u8] = task_module!("hashcash");
pub const HEAT: &[u8] = task_module!("heat");
pub const PROBE: &[u8] = task_module!("probe");
pub const SUM_COLUMNS: &[u8] = task_module!("sum-columns");
pub const COLLATZ: &[u8] = task_module!("collatz");
pub const TOLERANT_COMPARE: &[u8] = task_module!("tolerant-compare");
pub const DIGEST: &[u8] = task_module!("digest");

/// Every embedded task module by name (the probe, a test guest, included).
pub const ALL: &[(&str, &[u8])] = &[
    ("sum", SUM),
    ("primes", PRIMES),
    ("pi", PI),
    ("mandelbrot", MANDELBROT),
    ("hashcash", HASHCASH),
    ("heat", HEAT),
    ("probe", PROBE),
    ("sum-columns", SUM_COLUMNS),
    ("collatz", COLLATZ),
    ("tolerant-compare", TOLERANT_COMPARE),
    ("digest", DIGEST),
];

/// The test guest among [`ALL`]: embedded for the tests, not a task anyone submits.
pub const TEST_GUEST: &str = "probe";

/// The names of the built-in tasks (every embedded module but the test guest).
pub fn task_names() -> impl Iterator<Item = &'static str> {
    ALL.iter().map(|(name, _)| *name).filter(|name| *name != TEST_GUEST)
}

/// The module named `name`, if embedded.
pub fn by_name(name: &str) -> Option<&'static [u8]> {
    ALL.iter().find(|(module_name, _)| *module_name == name).map(|(_, bytes)| *bytes)
}
