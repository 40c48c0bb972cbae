//! `wasmhive new NAME --lang LANGUAGE`: a task project that builds and runs at once. Each
//! has the task (it counts words), the language's helper (the same file wasmhive's own
//! tasks use), a `build.sh` and a README explaining the ABI.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct NewArgs {
    /// The task's name: lowercase letters, digits and dashes, starting with a letter.
    name: String,
    #[arg(long, value_enum)]
    lang: Language,
    /// Where to create the project folder NAME (default: here).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Language {
    Rust,
    C,
    Zig,
    Go,
    Assemblyscript,
    Wat,
}

const README: &str = include_str!("../../templates/README.md");

/// (path in the project, contents) with `{{name}}` still to fill in.
fn files(language: Language) -> Vec<(&'static str, String)> {
    let file = |path: &'static str, text: &str| (path, text.to_string());
    match language {
        Language::Rust => vec![
            file("Cargo.toml", include_str!("../../templates/rust/Cargo.toml")),
            file("src/main.rs", include_str!("../../templates/rust/main.rs")),
            file("src/wasmhive.rs", include_str!("../../../tasks/kernels/src/guest.rs")),
            file("build.sh", include_str!("../../templates/rust/build.sh")),
            file(".gitignore", "target/\n*.wasm\n"),
        ],
        Language::C => vec![
            file("{{name}}.c", include_str!("../../templates/c/main.c")),
            file("wasmhive.h", include_str!("../../../tasks/languages/c/wasmhive.h")),
            file("build.sh", include_str!("../../templates/c/build.sh")),
        ],
        Language::Zig => vec![
            file("{{name}}.zig", include_str!("../../templates/zig/main.zig")),
            file("wasmhive.zig", include_str!("../../../tasks/languages/zig/wasmhive.zig")),
            file("build.sh", include_str!("../../templates/zig/build.sh")),
        ],
        Language::Go => vec![
            file("go.mod", include_str!("../../templates/go/go.mod")),
            file("main.go", include_str!("../../templates/go/main.go")),
            file("wasmhive/wasmhive.go", include_str!("../../../tasks/languages/go/wasmhive/wasmhive.go")),
            file("build.sh", include_str!("../../templates/go/build.sh")),
        ],
        Language::Assemblyscript => vec![
            file("package.json", include_str!("../../templates/assemblyscript/package.json")),
            file("assembly/{{name}}.ts", include_str!("../../templates/assemblyscript/main.ts")),
            file(
                "assembly/wasmhive.ts",
                include_str!("../../../tasks/languages/assemblyscript/assembly/wasmhive.ts"),
            ),
            file("build.sh", include_str!("../../templates/assemblyscript/build.sh")),
            file(".gitignore", "node_modules/\n*.wasm\n"),
        ],
        Language::Wat => {
            let helper = include_str!("../../../tasks/languages/wat/wasmhive.wat");
            let task = include_str!("../../templates/wat/main.wat");
            vec![
                ("{{name}}.wat", format!("(module\n{helper}\n{task})\n")),
                file("build.sh", include_str!("../../templates/wat/build.sh")),
            ]
        }
    }
}

fn describe(language: Language) -> (&'static str, &'static str) {
    match language {
        Language::Rust => ("Rust", "cargo build --release --target wasm32-wasip1"),
        Language::C => ("C", "clang --target=wasm32-wasi -O2"),
        Language::Zig => ("Zig", "zig build-exe -target wasm32-wasi -O ReleaseSmall"),
        Language::Go => ("Go", "GOOS=wasip1 GOARCH=wasm go build"),
        Language::Assemblyscript => ("AssemblyScript", "asc with @assemblyscript/wasi-shim"),
        Language::Wat => ("WebAssembly text", "wat2wasm"),
    }
}

pub fn new(arguments: NewArgs) -> anyhow::Result<i32> {
    let name = &arguments.name;
    let valid = name.len() <= 40
        && name.starts_with(|first: char| first.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        bail!(
            "{name:?} is not a task name: use lowercase letters, digits and dashes, starting with a letter (e.g. `primes-c`)"
        );
    }
    let project = arguments.dir.join(name);
    if project.exists() {
        bail!("{} already exists; pick another name or --dir", project.display());
    }
    let (language, build) = describe(arguments.lang);
    let readme = README.replace("{{language}}", language).replace("{{build}}", build);
    let mut all = files(arguments.lang);
    all.push(("README.md", readme));
    for (path, text) in all {
        write(&project, &path.replace("{{name}}", name), &text.replace("{{name}}", name))?;
    }
    println!("created {} ({language}); next:", project.display());
    println!("  cd {} && ./build.sh && wasmhive run {name}.wasm --input-text \"a b c\"", project.display());
    Ok(0)
}

fn write(project: &Path, relative: &str, text: &str) -> anyhow::Result<()> {
    let path = project.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    if relative == "build.sh" {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}
