//! On battery? From `/sys/class/power_supply`: a battery is present and no mains supply is
//! online (or the battery says it is discharging). No power-supply information (desktops,
//! servers, containers) means mains.

use std::path::Path;

pub const POWER_SUPPLY_DIR: &str = "/sys/class/power_supply";

pub fn on_battery(power_supply_dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(power_supply_dir) else { return false };
    let read = |path: &Path, name: &str| {
        std::fs::read_to_string(path.join(name)).map(|text| text.trim().to_string()).unwrap_or_default()
    };
    let (mut battery, mut discharging, mut mains_online) = (false, false, false);
    for entry in entries.flatten() {
        let path = entry.path();
        match read(&path, "type").as_str() {
            "Battery" => {
                battery = true;
                discharging |= read(&path, "status") == "Discharging";
            }
            "Mains" | "USB" => mains_online |= read(&path, "online") == "1",
            _ => {}
        }
    }
    battery && (discharging || !mains_online)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supply(root: &Path, name: &str, files: &[(&str, &str)]) {
        std::fs::create_dir_all(root.join(name)).unwrap();
        for (file, text) in files {
            std::fs::write(root.join(name).join(file), format!("{text}\n")).unwrap();
        }
    }

    #[test]
    fn a_laptop_unplugged_is_on_battery_and_plugged_in_is_not() {
        let root = std::env::temp_dir().join(format!("wasmhive-power-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        supply(&root, "BAT0", &[("type", "Battery"), ("status", "Charging")]);
        supply(&root, "AC", &[("type", "Mains"), ("online", "1")]);
        assert!(!on_battery(&root));
        supply(&root, "AC", &[("type", "Mains"), ("online", "0")]);
        assert!(on_battery(&root));
        assert!(!on_battery(&root.join("missing")), "no information means mains");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
