//! The plugin exits on its own when the process that launched it dies without asking it to
//! (Vault SIGKILLed or OOM-killed), and keeps serving while that process lives.

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const PLUGIN: &str = env!("CARGO_BIN_EXE_vault-plugin-secrets-mongodbatlas");
/// The plugin checks its parent every second; this leaves room for a loaded machine.
const EXIT_BOUND: Duration = Duration::from_secs(10);
/// Longer than the plugin's poll interval: a healthy parent must survive a few checks.
const ALIVE_WINDOW: Duration = Duration::from_millis(2500);

/// Whether `pid` is running. A zombie has exited (its new parent may never reap it).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Kills what the test started, whatever the outcome.
struct Cleanup {
    launcher: Child,
    plugin: Option<u32>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.launcher.kill();
        let _ = self.launcher.wait();
        if let Some(pid) = self.plugin.filter(|&pid| running(pid)) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[test]
fn plugin_exits_when_its_launcher_is_killed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log_path = dir.path().join("plugin.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    // A stand-in for Vault: a shell that launches the plugin and waits for it.
    let mut launcher = Command::new("sh")
        .args(["-c", r#""$1" & echo "$!"; wait"#, "sh", PLUGIN])
        .env(
            "VAULT_BACKEND_PLUGIN",
            "6669da05-b1c8-4f49-97d9-c8e5bed98e20",
        )
        .env("PLUGIN_PROTOCOL_VERSIONS", "5")
        .env("PLUGIN_UNIX_SOCKET_DIR", dir.path())
        .env("PLUGIN_LOG_LEVEL", "info")
        .env_remove("PLUGIN_CLIENT_CERT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start sh");
    let stdout = launcher.stdout.take().expect("stdout");
    let mut cleanup = Cleanup {
        launcher,
        plugin: None,
    };

    // The shell prints the plugin's pid, the plugin its handshake line, in either order.
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut handshake = None;
    while cleanup.plugin.is_none() || handshake.is_none() {
        let line = lines
            .recv_timeout(EXIT_BOUND.saturating_sub(started.elapsed()))
            .expect("the pid and the handshake line in time");
        match line.parse::<u32>() {
            Ok(pid) => cleanup.plugin = Some(pid),
            Err(_) => handshake = Some(line),
        }
    }
    let pid = cleanup.plugin.expect("pid");
    let handshake = handshake.expect("handshake");
    assert!(handshake.starts_with("1|5|unix|"), "{handshake}");

    // Deliberately longer than the poll interval: the plugin must not leave a live parent.
    std::thread::sleep(ALIVE_WINDOW);
    assert!(running(pid), "the plugin exited while its parent lived");

    cleanup.launcher.kill().expect("SIGKILL the launcher");
    cleanup.launcher.wait().expect("reap the launcher");
    let killed = Instant::now();
    while running(pid) && killed.elapsed() < EXIT_BOUND {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !running(pid),
        "the orphaned plugin still runs {:?} after its parent died",
        killed.elapsed()
    );
    let logged = std::fs::read_to_string(&log_path).expect("plugin log");
    assert!(
        logged.contains("the Vault process that started this plugin is gone; exiting"),
        "{logged}"
    );
}
