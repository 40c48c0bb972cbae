//! `wasmhive results JOB`: the verified results of a job.
//!
//! - default: the reduced result when the job has a reducer (and `--units` is not given),
//!   else one line per unit, `UNIT<TAB>INPUT<TAB>OUTPUT` (output text on one line);
//! - `--jsonl`: one JSON object per unit (`unit`, `input`, `state`, `status`, `output`,
//!   `output_base64` or `output_blob` (`hash`, `size`) for outputs above 256 KiB, `digest`,
//!   `replicas`, `failure`);
//! - `--out DIR`: one file per unit, `DIR/unit-000042.out` (or `.failed` with the reason);
//!   outputs that are blobs stream from the owner to their files, checked against their hash;
//! - `--png FILE`: stacks the units' PGM tiles (the mandelbrot task) into one PNG.

use crate::client::Connection;
use anyhow::{Context, bail};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmhive_protocol::api::{JobStatus, ReducedResult, UnitResult};
use wasmhive_protocol::base64_bytes;

#[derive(Args)]
pub struct ResultsArgs {
    /// The job id.
    job: String,
    #[command(flatten)]
    connection: Connection,
    /// Write one file per unit into this directory.
    #[arg(long, conflicts_with_all = ["jsonl", "png"])]
    out: Option<PathBuf>,
    /// Print one JSON object per unit.
    #[arg(long, conflicts_with = "png")]
    jsonl: bool,
    /// Assemble the units' PGM tiles, top to bottom, into this PNG file.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Per-unit results even when the job has a reduced result.
    #[arg(long)]
    units: bool,
}

pub fn results(arguments: ResultsArgs) -> anyhow::Result<i32> {
    let client = arguments.connection.client()?;
    let plain = !arguments.units && !arguments.jsonl && arguments.out.is_none() && arguments.png.is_none();
    if plain {
        let status: JobStatus = client.get(&format!("/api/jobs/{}", arguments.job))?;
        if status.reduced.is_some() {
            return print_reduced(&client, &arguments.job);
        }
    }
    let lines = client.get_lines(&format!("/api/jobs/{}/results", arguments.job))?;
    let mut tiles = Vec::new();
    let mut stdout = std::io::stdout().lock();
    for line in lines {
        let line = line.context("reading the results stream")?;
        if arguments.jsonl {
            writeln!(stdout, "{line}")?;
            continue;
        }
        let result: UnitResult =
            serde_json::from_str(&line).context("a results line is not a unit result")?;
        if let Some(directory) = &arguments.out {
            write_unit_file(&client, directory, &result)?;
        } else if arguments.png.is_some() {
            tiles.push(output_bytes(&client, &result)?);
        } else {
            let shown = match (&result.output, &result.output_blob) {
                (Some(text), _) => text.clone(),
                (None, Some(blob)) => {
                    format!("({} bytes in blob {}: `--out DIR` writes it)", blob.size, blob.hash)
                }
                (None, None) => result.failure.clone().unwrap_or_default(),
            };
            writeln!(stdout, "{}\t{}\t{}", result.unit, result.input, shown.trim_end().replace('\n', " "))?;
        }
    }
    if let Some(path) = &arguments.png {
        write_png(path, &tiles)?;
        eprintln!("wrote {} ({} tiles)", path.display(), tiles.len());
    }
    Ok(0)
}

/// Prints the reduced result (exit 1 when the reducer failed or has not finished).
fn print_reduced(client: &crate::client::Client, job_id: &str) -> anyhow::Result<i32> {
    let reduced: ReducedResult = client.get(&format!("/api/jobs/{job_id}/reduced"))?;
    if !reduced.status.is_success() {
        eprintln!("the reducer failed: {}; {}", reduced.status, reduced.message);
        return Ok(1);
    }
    let bytes = match (reduced.output, reduced.output_base64) {
        (Some(text), _) => text.into_bytes(),
        (None, Some(encoded)) => base64_bytes::decode(&encoded).map_err(|error| anyhow::anyhow!(error))?,
        (None, None) => Vec::new(),
    };
    std::io::stdout().lock().write_all(&bytes)?;
    eprintln!("(the reduced result; `--units` shows each unit's)");
    Ok(0)
}

fn output_bytes(client: &crate::client::Client, result: &UnitResult) -> anyhow::Result<Vec<u8>> {
    if let Some(blob) = &result.output_blob {
        let mut bytes = Vec::new();
        client
            .download_blob(blob, &mut bytes)
            .with_context(|| format!("the output of unit {}", result.unit))?;
        return Ok(bytes);
    }
    if let Some(text) = &result.output {
        return Ok(text.clone().into_bytes());
    }
    if let Some(encoded) = &result.output_base64 {
        return base64_bytes::decode(encoded)
            .map_err(|error| anyhow::anyhow!("unit {}: {error}", result.unit));
    }
    bail!("unit {} has no output: {}", result.unit, result.failure.clone().unwrap_or_default())
}

fn write_unit_file(
    client: &crate::client::Client,
    directory: &Path,
    result: &UnitResult,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(directory).with_context(|| format!("creating {}", directory.display()))?;
    if let Some(blob) = &result.output_blob {
        // Streamed: a large output is never whole in memory. Written under a temporary
        // name and renamed, so a file that is there is whole.
        let path = directory.join(format!("unit-{:06}.out", result.unit));
        let partial = directory.join(format!(".unit-{:06}.out.partial", result.unit));
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?,
        );
        client
            .download_blob(blob, &mut file)
            .with_context(|| format!("the output of unit {}", result.unit))?;
        file.flush()?;
        std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
        return Ok(());
    }
    match output_bytes(client, result) {
        Ok(bytes) => std::fs::write(directory.join(format!("unit-{:06}.out", result.unit)), bytes)?,
        Err(error) => {
            std::fs::write(directory.join(format!("unit-{:06}.failed", result.unit)), format!("{error}\n"))?
        }
    }
    Ok(())
}

/// One binary PGM (`P5 W H 255` + W·H bytes): (width, height, pixels).
fn parse_pgm(bytes: &[u8]) -> anyhow::Result<(u32, u32, &[u8])> {
    let mut fields = Vec::new();
    let mut position = 0;
    while fields.len() < 4 {
        while position < bytes.len() && bytes[position].is_ascii_whitespace() {
            position += 1;
        }
        let start = position;
        while position < bytes.len() && !bytes[position].is_ascii_whitespace() {
            position += 1;
        }
        if start == position {
            bail!("not a binary PGM: the header ends early");
        }
        fields.push(std::str::from_utf8(&bytes[start..position])?.to_string());
    }
    if fields[0] != "P5" || fields[3] != "255" {
        bail!("not an 8-bit binary PGM (P5 … 255)");
    }
    let (width, height): (u32, u32) = (fields[1].parse()?, fields[2].parse()?);
    let pixels = &bytes[(position + 1).min(bytes.len())..];
    if pixels.len() != width as usize * height as usize {
        bail!("PGM of {width}×{height} has {} pixel bytes", pixels.len());
    }
    Ok((width, height, pixels))
}

fn write_png(path: &Path, tiles: &[Vec<u8>]) -> anyhow::Result<()> {
    let mut width = None;
    let mut height = 0;
    let mut pixels = Vec::new();
    for (index, tile) in tiles.iter().enumerate() {
        let (tile_width, tile_height, tile_pixels) =
            parse_pgm(tile).with_context(|| format!("tile {index}"))?;
        if *width.get_or_insert(tile_width) != tile_width {
            bail!("tile {index} is {tile_width} wide, the others {}", width.unwrap_or(0));
        }
        height += tile_height;
        pixels.extend_from_slice(tile_pixels);
    }
    let width = width.context("the job has no results to assemble")?;
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width, height);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&pixels)?;
    Ok(())
}
