//! A test host in its own network namespace, linked to this one by a veth pair, so peers can
//! run on different addresses and the link between them can be cut and restored. Needs root
//! (CI runs as root); removed on drop.

use std::process::Command;

pub struct NamespaceHost {
    pub namespace: String,
    /// The address of this (the root) end of the link.
    pub local_address: String,
    /// The address inside the namespace.
    pub remote_address: String,
    remote_interface: String,
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("running ip (Debian package iproute2)");
    assert!(
        output.status.success(),
        "ip {}: {} (network namespace tests need root and iproute2)",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl NamespaceHost {
    /// Creates namespace `wh<id>` with the link 10.77.<n>.1 (here) ↔ 10.78.<n>.2 (there):
    /// two /24 networks, as owners count them (two replicas never share a network).
    pub fn create() -> NamespaceHost {
        let id = std::process::id() % 100_000;
        let namespace = format!("wh{id}");
        let local_interface = format!("wh{id}l");
        let remote_interface = format!("wh{id}r");
        let subnet = id % 250 + 1;
        let (local_address, remote_address) = (format!("10.77.{subnet}.1"), format!("10.78.{subnet}.2"));
        let _ = Command::new("ip").args(["netns", "del", &namespace]).output();
        ip(&["netns", "add", &namespace]);
        ip(&["link", "add", &local_interface, "type", "veth", "peer", "name", &remote_interface]);
        ip(&["link", "set", &remote_interface, "netns", &namespace]);
        ip(&["addr", "add", &local_address, "peer", &remote_address, "dev", &local_interface]);
        ip(&["link", "set", &local_interface, "up"]);
        ip(&[
            "-n",
            &namespace,
            "addr",
            "add",
            &remote_address,
            "peer",
            &local_address,
            "dev",
            &remote_interface,
        ]);
        ip(&["-n", &namespace, "link", "set", &remote_interface, "up"]);
        ip(&["-n", &namespace, "link", "set", "lo", "up"]);
        NamespaceHost { namespace, local_address, remote_address, remote_interface }
    }

    /// Cuts (`false`) or restores (`true`) the link.
    pub fn set_link(&self, up: bool) {
        ip(&["-n", &self.namespace, "link", "set", &self.remote_interface, if up { "up" } else { "down" }]);
    }
}

impl Drop for NamespaceHost {
    fn drop(&mut self) {
        // Deleting the namespace deletes both ends of the veth pair.
        let _ = Command::new("ip").args(["netns", "del", &self.namespace]).output();
    }
}
