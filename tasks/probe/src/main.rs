//! `probe`: a test guest that does one thing a task should not (or that shows what the
//! sandbox lets it see), chosen by its first argument. The sandbox tests run it under each
//! mode and check the status and output. Modes:
//!
//! `echo`, `repeat N` (stdin N times), `abi` (args and env), `loop`, `memory-bomb`, `recursion`, `stdout-flood`,
//! `stderr-flood`, `exit CODE`, `read-file`, `socket`, `clocks`, `random`, `nan`, `sleep`
//! (an hour, then a yield, then how long the monotonic clock says it took), `files` (what
//! Task ABI v2's read-only files show: listings, sizes, times, contents, refused writes).

use std::hint::black_box;
use std::io::{Read, Write};

const FLOOD_BYTES: usize = 16 << 20;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    match mode {
        "echo" => echo(),
        "repeat" => repeat(args.get(2).and_then(|count| count.parse().ok()).unwrap_or(1)),
        "abi" => print_abi(&args),
        "loop" => spin_forever(),
        "memory-bomb" => grow_memory_forever(),
        "recursion" => println!("{}", recurse(black_box(u64::MAX))),
        "stdout-flood" => flood(&mut std::io::stdout()),
        "stderr-flood" => {
            flood(&mut std::io::stderr());
            println!("survived the stderr flood");
        }
        "exit" => std::process::exit(args.get(2).and_then(|code| code.parse().ok()).unwrap_or(1)),
        "read-file" => match std::fs::read("/etc/passwd") {
            Ok(bytes) => println!("read {} bytes", bytes.len()),
            Err(error) => println!("read-file refused: {:?}", error.kind()),
        },
        "socket" => match std::net::TcpStream::connect("127.0.0.1:80") {
            Ok(_) => println!("connected"),
            Err(error) => println!("socket refused: {:?}", error.kind()),
        },
        "clocks" => print_clocks(),
        "sleep" => sleep_an_hour(),
        "random" => print_random(),
        "nan" => print_nan_bits(),
        "files" => print_files(),
        "count-input" => count_input(),
        other => {
            eprintln!("unknown probe mode {other:?}");
            std::process::exit(2);
        }
    }
}

fn echo() {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).expect("stdin");
    std::io::stdout().write_all(&input).expect("stdout");
}

fn repeat(count: usize) {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).expect("stdin");
    let mut stdout = std::io::stdout().lock();
    for _ in 0..count {
        stdout.write_all(&input).expect("stdout");
    }
}

fn print_abi(args: &[String]) {
    println!("args={args:?}");
    let mut variables: Vec<(String, String)> = std::env::vars().collect();
    variables.sort();
    println!("env={variables:?}");
    println!("preopened_root={:?}", std::fs::read_dir("/").map(|_| ()).map_err(|error| error.kind()));
}

fn spin_forever() {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn grow_memory_forever() {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        blocks.push(vec![1u8; 1 << 20]);
        black_box(&blocks);
    }
}

fn recurse(depth: u64) -> u64 {
    if depth == 0 {
        return 0;
    }
    let padding = black_box([depth; 16]);
    recurse(black_box(depth - 1)) + padding[3]
}

fn flood(stream: &mut dyn Write) {
    let block = vec![b'x'; 64 << 10];
    for _ in 0..FLOOD_BYTES / block.len() {
        if stream.write_all(&block).is_err() {
            std::process::exit(4);
        }
    }
}

fn print_clocks() {
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    let first = std::time::Instant::now();
    let second = std::time::Instant::now();
    println!("wall_ns={} monotonic_step_ns={}", wall.as_nanos(), second.duration_since(first).as_nanos());
}

fn sleep_an_hour() {
    let before = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_secs(3600));
    std::thread::yield_now();
    println!("slept_ns={}", before.elapsed().as_nanos());
}

fn print_random() {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("random_get");
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    println!("random={hex}");
}

fn print_nan_bits() {
    let (zero64, other_zero64) = (black_box(0.0f64), black_box(0.0f64));
    let (zero32, other_zero32) = (black_box(0.0f32), black_box(0.0f32));
    let minus_one = black_box(-1.0f64);
    println!(
        "f64_div={:016x} f32_div={:08x} f64_sqrt={:016x}",
        (zero64 / other_zero64).to_bits(),
        (zero32 / other_zero32).to_bits(),
        minus_one.sqrt().to_bits()
    );
}

/// Everything a unit can learn from its files, printed so replicas can compare.
fn print_files() {
    for directory in ["/", "/shared", "shared/.."] {
        let names: Vec<String> = match std::fs::read_dir(directory) {
            Ok(entries) => entries.map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect(),
            Err(error) => vec![format!("{:?}", error.kind())],
        };
        println!("list {directory}: {names:?}");
    }
    let mut paths = vec!["/input".to_string()];
    for entry in std::fs::read_dir("/shared").into_iter().flatten() {
        paths.push(format!("/shared/{}", entry.unwrap().file_name().into_string().unwrap()));
    }
    for path in &paths {
        let bytes = std::fs::read(path).unwrap();
        let metadata = std::fs::metadata(path).unwrap();
        let modified = metadata.modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap();
        let sum = bytes.iter().fold(0u64, |sum, &byte| sum.wrapping_mul(31).wrapping_add(u64::from(byte)));
        println!(
            "{path}: {} bytes, sum {sum}, modified {}s, read-only {}",
            bytes.len(),
            modified.as_secs(),
            metadata.permissions().readonly()
        );
    }
    let mut stdin = Vec::new();
    std::io::stdin().read_to_end(&mut stdin).unwrap();
    println!("stdin is /input: {}", stdin == std::fs::read("/input").unwrap());
    let attempts: [(&str, std::io::Result<()>); 5] = [
        ("create", std::fs::write("/shared/new", b"x")),
        ("overwrite", std::fs::write("/input", b"x")),
        ("remove", std::fs::remove_file("/input")),
        ("mkdir", std::fs::create_dir("/tmp")),
        ("escape", std::fs::read("/../etc/passwd").map(|_| ())),
    ];
    for (what, attempt) in attempts {
        println!("{what}: {:?}", attempt.map_err(|error| error.kind()));
    }
}

/// Reads stdin in 1 MiB pieces: its length and a checksum, without holding it.
fn count_input() {
    let mut buffer = vec![0u8; 1 << 20];
    let (mut length, mut sum) = (0u64, 0u64);
    let mut stdin = std::io::stdin();
    loop {
        let count = stdin.read(&mut buffer).unwrap();
        if count == 0 {
            break;
        }
        length += count as u64;
        sum =
            buffer[..count].iter().fold(sum, |sum, &byte| sum.wrapping_mul(31).wrapping_add(u64::from(byte)));
    }
    println!("{length} bytes, sum {sum}");
}
