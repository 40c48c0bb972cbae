//! Settings of `wasmhive worker` and `wasmhive peer`: defaults, then the config file, then
//! flags. The config file is TOML at `--config FILE`, else `$WASMHIVE_CONFIG`, else
//! `$XDG_CONFIG_HOME/wasmhive/config.toml` (`~/.config/...`) when it exists:
//!
//! ```toml
//! data = "/var/lib/wasmhive"
//! cpus = 2
//! cpu_percent = 50                 # duty cycle of each unit thread
//! pause_when_busy = 25             # % of the machine used by other programs
//! busy_grace = "10s"
//! schedule = ["mon-fri 22:00-07:00", "sat,sun 00:00-24:00"]
//! pause_on_battery = true
//! memory = "4 GiB"                 # linear memory of all running units together
//! unit_time_max = "10m"            # longest one unit runs here, whatever its owner asks
//! unit_output_max = "64 MiB"       # largest output of one unit; larger leases go back
//! cache = "1 GiB"                  # module cache on disk
//! [worker]
//! join = "owner.example:7878"
//! grace = "30s"
//! [peer]
//! listen = "0.0.0.0:7878"
//! join = ["seed.example:7878"]
//! ```
//!
//! `--print-config` prints every effective setting and where it came from. A bad value
//! names the file, the key and the fix.

use crate::local::data_dir;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use toml::{Table, Value};
use wasmhive_coordinator::human_units::{parse_byte_size, parse_duration};
use wasmhive_worker::volunteer::{Schedule, VolunteerSettings};

const COMMON_KEYS: &[&str] = &[
    "data",
    "cpus",
    "cpu_percent",
    "pause_when_busy",
    "busy_grace",
    "schedule",
    "pause_on_battery",
    "memory",
    "unit_time_max",
    "unit_output_max",
    "cache",
    "worker",
    "peer",
];

/// Flags every volunteer role shares.
#[derive(Args, Clone, Debug, Default)]
pub struct VolunteerArgs {
    /// Config file (default: $WASMHIVE_CONFIG, else $XDG_CONFIG_HOME/wasmhive/config.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective settings and where each came from, then exit.
    #[arg(long)]
    pub print_config: bool,
    /// Data directory (identity, modules, compiled artifacts; a peer's jobs too).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The local IP address connections to owners and peers leave from (a machine with
    /// several; a peer defaults to its --listen IP).
    #[arg(long, value_name = "IP")]
    pub bind_address: Option<std::net::IpAddr>,
    /// Cores to run units on (default: all).
    #[arg(long)]
    pub cpus: Option<usize>,
    /// Share of each core a unit thread may use, 1 to 100 (a duty cycle).
    #[arg(long, value_name = "PERCENT")]
    pub cpu_percent: Option<u32>,
    /// Pause while other programs use more than this % of the machine (default: off).
    #[arg(long, value_name = "PERCENT")]
    pub pause_when_busy: Option<u32>,
    /// How long the machine must stay busy (idle) before pausing (resuming).
    #[arg(long, value_name = "DURATION")]
    pub busy_grace: Option<String>,
    /// When to run, e.g. "mon-fri 22:00-07:00" (repeatable; default: always).
    #[arg(long, value_name = "WINDOW")]
    pub schedule: Vec<String>,
    /// Pause while the machine runs on battery.
    #[arg(long, value_name = "true|false")]
    pub pause_on_battery: Option<bool>,
    /// Linear memory all running units may reserve together (default: half the RAM).
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Longest a unit may run here, whatever its owner asks (default: 10m).
    #[arg(long, value_name = "DURATION")]
    pub unit_time_max: Option<String>,
    /// Largest output a unit may produce here; leases allowing more are handed back
    /// (default: 64 MiB).
    #[arg(long, value_name = "SIZE")]
    pub unit_output_max: Option<String>,
    /// Bytes of modules kept in the on-disk cache (default: 1 GiB).
    #[arg(long, value_name = "SIZE")]
    pub cache: Option<String>,
    /// Bytes of blobs (unit inputs, shared data) kept on disk; the least recently used that
    /// no queued or running unit reads are evicted beyond it (default: 16 GiB). Inputs of
    /// units already run here and acknowledged outputs keep at most a quarter of it (256 MiB
    /// at most) and go first.
    #[arg(long, value_name = "SIZE")]
    pub blob_cache: Option<String>,
    /// Bytes per second of blobs this host sends (to the swarm, and as an owner to its
    /// workers), e.g. "10 MiB"; default: no limit.
    #[arg(long, value_name = "SIZE")]
    pub upload_rate: Option<String>,
    /// Where power supplies are described (for tests).
    #[arg(long, hide = true)]
    pub power_supply_dir: Option<PathBuf>,
}

/// The effective settings, with where each came from.
pub struct Settings {
    pub data_dir: PathBuf,
    pub cpus: usize,
    pub cache_bytes: u64,
    pub blob_cache_bytes: u64,
    /// `--upload-rate` in bytes per second (`None`: no limit).
    pub upload_bytes_per_second: Option<u64>,
    pub volunteer: VolunteerSettings,
    resolver: Resolver,
}

impl Settings {
    /// Reads the config file (if any) and applies `flags` over it. `role` is `worker` or
    /// `peer` (the section read by [`Settings::role_string`] and friends).
    pub fn resolve(flags: &VolunteerArgs, role: &'static str) -> anyhow::Result<Settings> {
        let mut resolver = Resolver::load(flags.config.clone(), role)?;
        let defaults = VolunteerSettings::default();
        let all_cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        let data_dir = resolver.pick("data", flags.data.clone(), data_dir(None), |value| {
            value.as_str().map(PathBuf::from).ok_or("must be a path in quotes".into())
        })?;
        let cpus = resolver.pick("cpus", flags.cpus, all_cores, |value| match value.as_integer() {
            Some(cpus) if cpus >= 1 => Ok(cpus as usize),
            _ => Err("must be a whole number of cores, at least 1".into()),
        })?;
        resolver.check("cpus", cpus >= 1, "use at least 1")?;
        let cpu_percent = resolver.pick("cpu_percent", flags.cpu_percent, defaults.cpu_percent, percent)?;
        resolver.check(
            "cpu_percent",
            (1..=100).contains(&cpu_percent),
            "use 1 to 100 (100 = no throttle)",
        )?;
        let pause_when_busy =
            resolver.pick("pause_when_busy", flags.pause_when_busy.map(Some), None, |value| {
                percent(value).map(Some)
            })?;
        resolver.show_last(pause_when_busy.map_or("off".into(), |busy| format!("{busy}%")));
        resolver.check(
            "pause_when_busy",
            pause_when_busy.is_none_or(|busy| (1..=100).contains(&busy)),
            "use 1 to 100 (% of the whole machine used by other programs)",
        )?;
        let busy_grace = resolver.pick_parsed(
            "busy_grace",
            flags.busy_grace.clone(),
            defaults.busy_grace,
            parse_duration,
        )?;
        let schedule_flags = (!flags.schedule.is_empty()).then(|| flags.schedule.clone());
        let windows = resolver.pick("schedule", schedule_flags, Vec::new(), string_list)?;
        let schedule = Schedule::parse(&windows).map_err(|problem| resolver.error("schedule", &problem))?;
        resolver.show_last(schedule.to_string());
        let pause_on_battery = resolver.pick("pause_on_battery", flags.pause_on_battery, true, |value| {
            value.as_bool().ok_or("must be true or false".into())
        })?;
        let memory_bytes_max = resolver.pick_parsed(
            "memory",
            flags.memory.clone(),
            defaults.memory_bytes_max,
            parse_byte_size,
        )?;
        resolver.show_last(format!("{} MiB", memory_bytes_max >> 20));
        resolver.check("memory", memory_bytes_max >= 1 << 20, "use at least 1 MiB")?;
        let unit_time_max = resolver.pick_parsed(
            "unit_time_max",
            flags.unit_time_max.clone(),
            defaults.unit_time_max,
            parse_duration,
        )?;
        resolver.check(
            "unit_time_max",
            !unit_time_max.is_zero(),
            "use a duration above zero, e.g. \"10m\"",
        )?;
        let unit_output_bytes_max = resolver.pick_parsed(
            "unit_output_max",
            flags.unit_output_max.clone(),
            defaults.unit_output_bytes_max,
            parse_byte_size,
        )?;
        resolver.show_last(format!("{} KiB", unit_output_bytes_max >> 10));
        let cache_bytes = resolver.pick_parsed("cache", flags.cache.clone(), 1 << 30, parse_byte_size)?;
        resolver.show_last(format!("{} MiB", cache_bytes >> 20));
        let blob_cache_bytes = resolver.pick_parsed(
            "blob_cache",
            flags.blob_cache.clone(),
            wasmhive_worker::BLOB_CACHE_BYTES_MAX,
            parse_byte_size,
        )?;
        resolver.show_last(format!("{} MiB", blob_cache_bytes >> 20));
        let upload_rate =
            resolver.pick_parsed("upload_rate", flags.upload_rate.clone(), 0, parse_byte_size)?;
        resolver.show_last(if upload_rate == 0 {
            "no limit".into()
        } else {
            format!("{} KiB/s", upload_rate >> 10)
        });
        let upload_bytes_per_second = (upload_rate > 0).then_some(upload_rate);
        let volunteer = VolunteerSettings {
            cpu_percent,
            pause_when_busy_percent: pause_when_busy,
            busy_grace,
            schedule,
            pause_on_battery,
            memory_bytes_max,
            unit_time_max,
            unit_output_bytes_max,
            power_supply_dir: flags.power_supply_dir.clone().unwrap_or(defaults.power_supply_dir),
        };
        Ok(Settings {
            data_dir,
            cpus,
            cache_bytes,
            blob_cache_bytes,
            upload_bytes_per_second,
            volunteer,
            resolver,
        })
    }

    /// A string of the role's section (`[worker] join`), the flag winning.
    pub fn role_string(&mut self, key: &str, flag: Option<String>, default: &str) -> anyhow::Result<String> {
        let key = self.resolver.role_key(key);
        self.resolver.pick(&key, flag, default.to_string(), |value| {
            value.as_str().map(str::to_string).ok_or("must be a string in quotes".into())
        })
    }

    /// A list of strings of the role's section (`[peer] join`), the flags winning.
    pub fn role_list(&mut self, key: &str, flags: Vec<String>) -> anyhow::Result<Vec<String>> {
        let key = self.resolver.role_key(key);
        self.resolver.pick(&key, (!flags.is_empty()).then_some(flags), Vec::new(), string_list)
    }

    /// A duration of the role's section (`[worker] grace`), the flag winning.
    pub fn role_duration(
        &mut self,
        key: &str,
        flag: Option<String>,
        default: Duration,
    ) -> anyhow::Result<Duration> {
        let key = self.resolver.role_key(key);
        self.resolver.pick_parsed(&key, flag, default, seconds_or_duration)
    }

    /// Prints `KEY VALUE (SOURCE)` for every setting read so far.
    pub fn print(&self) {
        match &self.resolver.file {
            Some((path, _)) => println!("# config file: {}", path.display()),
            None => println!("# config file: none (looked for {})", self.resolver.looked_for.display()),
        }
        for (key, value, source) in &self.resolver.rows {
            println!("{key:<18} {value:<36} ({source})");
        }
    }
}

struct Resolver {
    file: Option<(PathBuf, Table)>,
    looked_for: PathBuf,
    role: &'static str,
    rows: Vec<(String, String, String)>,
}

impl Resolver {
    fn load(explicit: Option<PathBuf>, role: &'static str) -> anyhow::Result<Resolver> {
        let required = explicit.is_some() || std::env::var_os("WASMHIVE_CONFIG").is_some();
        let path = explicit
            .or_else(|| std::env::var_os("WASMHIVE_CONFIG").map(PathBuf::from))
            .unwrap_or_else(default_config_path);
        let mut resolver = Resolver { file: None, looked_for: path.clone(), role, rows: Vec::new() };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(_) if !required => return Ok(resolver),
            Err(error) => anyhow::bail!(
                "{}: cannot read the config file: {error}; check the path given to --config",
                path.display()
            ),
        };
        let table: Table = text.parse().map_err(|error: toml::de::Error| {
            anyhow::anyhow!(
                "{}: not valid TOML: {}; fix the syntax at the place shown",
                path.display(),
                error.message()
            )
        })?;
        resolver.file = Some((path, table));
        resolver.reject_unknown_keys()?;
        Ok(resolver)
    }

    fn reject_unknown_keys(&self) -> anyhow::Result<()> {
        let Some((_, table)) = &self.file else { return Ok(()) };
        let sections: [(&str, &[&str]); 2] =
            [("worker", &["join", "grace"]), ("peer", &["listen", "join", "no_listen"])];
        for (key, value) in table {
            if !COMMON_KEYS.contains(&key.as_str()) {
                return Err(
                    self.error(key, &format!("is not a known key; use one of: {}", COMMON_KEYS.join(", ")))
                );
            }
            if let Some((section, known)) = sections.iter().find(|(section, _)| section == key) {
                let Some(section_table) = value.as_table() else {
                    return Err(self.error(key, &format!("must be a [{section}] section")));
                };
                if let Some(unknown) = section_table.keys().find(|inner| !known.contains(&inner.as_str())) {
                    return Err(self.error(
                        &format!("{section}.{unknown}"),
                        &format!("is not a known key; use one of: {}", known.join(", ")),
                    ));
                }
            }
        }
        Ok(())
    }

    fn role_key(&self, key: &str) -> String {
        format!("{}.{key}", self.role)
    }

    fn file_value(&self, key: &str) -> Option<&Value> {
        let (_, table) = self.file.as_ref()?;
        match key.split_once('.') {
            Some((section, inner)) => table.get(section)?.as_table()?.get(inner),
            None => table.get(key),
        }
    }

    /// An error naming the config file and key, or the flag, whichever gave the value.
    fn error(&self, key: &str, problem: &str) -> anyhow::Error {
        let from_flag = self
            .rows
            .iter()
            .rev()
            .find(|(row, ..)| row == key)
            .is_some_and(|(_, _, source)| source.starts_with("flag"));
        match &self.file {
            Some((path, _)) if !from_flag => anyhow::anyhow!("{}: {key}: {problem}", path.display()),
            _ => anyhow::anyhow!("--{}: {problem}", flag_name(key)),
        }
    }

    /// Replaces how the setting read last is shown.
    fn show_last(&mut self, text: String) {
        if let Some(row) = self.rows.last_mut() {
            row.1 = text;
        }
    }

    fn check(&self, key: &str, holds: bool, fix: &str) -> anyhow::Result<()> {
        if holds { Ok(()) } else { Err(self.error(key, &format!("is out of range; {fix}"))) }
    }

    /// The flag, else the file's value (converted by `from_file`), else `default`; records
    /// where it came from.
    fn pick<T: std::fmt::Debug>(
        &mut self,
        key: &str,
        flag: Option<T>,
        default: T,
        from_file: impl Fn(&Value) -> Result<T, String>,
    ) -> anyhow::Result<T> {
        let (value, source) = if let Some(value) = flag {
            (value, format!("flag --{}", flag_name(key)))
        } else if let Some(value) = self.file_value(key) {
            let converted = from_file(value).map_err(|problem| self.error(key, &problem))?;
            let path = self.file.as_ref().map(|(path, _)| path.display().to_string()).unwrap_or_default();
            (converted, format!("config file {path}"))
        } else {
            (default, "default".to_string())
        };
        self.rows.push((key.to_string(), shown(&value), source));
        Ok(value)
    }

    /// Like `pick` for values written as text (`"10s"`, `"4 GiB"`) in flags and file.
    fn pick_parsed<T: std::fmt::Debug + Clone>(
        &mut self,
        key: &str,
        flag: Option<String>,
        default: T,
        parse: fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<T> {
        let flag = flag
            .map(|text| parse(&text))
            .transpose()
            .map_err(|problem| anyhow::anyhow!("--{}: {problem}", flag_name(key)))?;
        self.pick(key, flag, default, |value| match value {
            Value::String(text) => parse(text),
            Value::Integer(number) => parse(&number.to_string()),
            other => Err(format!(
                "a {} is not valid here; write it in quotes, e.g. \"10s\" or \"4 GiB\"",
                other.type_str()
            )),
        })
    }
}

/// `30` (seconds) or a duration such as `30s` or `2m`.
fn seconds_or_duration(text: &str) -> Result<Duration, String> {
    text.trim().parse::<u64>().map(Duration::from_secs).or_else(|_| parse_duration(text))
}

/// `worker.join` → `join`, `cpu_percent` → `cpu-percent`.
fn flag_name(key: &str) -> String {
    key.rsplit('.').next().unwrap_or(key).replace('_', "-")
}

fn percent(value: &Value) -> Result<u32, String> {
    match value.as_integer() {
        Some(number) if (0..=100).contains(&number) => Ok(number as u32),
        _ => Err("must be a whole number from 1 to 100".into()),
    }
}

fn string_list(value: &Value) -> Result<Vec<String>, String> {
    let fix = "write a list of strings, e.g. [\"mon-fri 22:00-07:00\"]";
    let array = value.as_array().ok_or(format!("must be a list; {fix}"))?;
    array
        .iter()
        .map(|item| item.as_str().map(str::to_string).ok_or(format!("must hold strings; {fix}")))
        .collect()
}

fn shown<T: std::fmt::Debug>(value: &T) -> String {
    let text = format!("{value:?}");
    text.trim_matches('"').to_string()
}

/// `$XDG_CONFIG_HOME/wasmhive/config.toml`, else `~/.config/wasmhive/config.toml`.
pub fn default_config_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from).join(".config")
    });
    base.join("wasmhive").join("config.toml")
}
