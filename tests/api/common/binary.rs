//! The `rssp` binary as an operator runs it: none of the caller's settings, the embedded default under a
//! temporary directory.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// `rssp` with no `RSSP_*` setting and no `SOFTHSM2_CONF` of the caller, `dir` as working directory and
/// `dir/data` as data directory.
pub fn rssp_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rssp"));
    command.current_dir(dir).env_remove("SOFTHSM2_CONF").env("RSSP_DATA_DIR", dir.join("data"));
    for (key, _) in std::env::vars() {
        if key.starts_with("RSSP_") && key != "RSSP_DATA_DIR" {
            command.env_remove(key);
        }
    }
    command
}

/// Runs `rssp args…` as [`rssp_command`] makes it, with `env` added, to its end.
pub fn rssp(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    rssp_command(dir).args(args).envs(env.iter().copied()).output().unwrap()
}

/// Starts `rssp serve` from `command` on port 0 with stdout and stderr piped; returns the child and the
/// base URL it printed (`rssp listening on http://…`).
pub fn serve(mut command: Command) -> (Child, String) {
    let mut child = command
        .arg("serve")
        .env("RSSP_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let url = loop {
        line.clear();
        let n = stdout.read_line(&mut line).unwrap();
        assert!(n > 0, "server exited before listening");
        if let Some(url) = line.trim().strip_prefix("rssp listening on ") {
            break url.to_string();
        }
    };
    (child, url)
}
