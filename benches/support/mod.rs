//! What the benchmarks need: a server on a temporary data directory with a SoftHSM token of its own.

use rssp::config::Config;

/// A temporary data directory whose SoftHSM token directory this process uses (`SOFTHSM2_CONF`), and the
/// configuration of a server on it: port 0, one HSM session per core.
// Each bench compiles this module; the one that runs the server binary does not use it.
#[allow(dead_code)]
pub fn embedded_server_config() -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
    )
    .unwrap();
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let mut config = Config { data_dir: dir.path().to_path_buf(), listen: "127.0.0.1:0".into(), ..Config::default() };
    config.hsm.pin = Some("12345678".into());
    config.hsm.sessions = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    (dir, config)
}

/// The `p` quantile (0 to 1) of sorted latencies.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The CPU time this process (server and client together) has used so far, from `/proc/self/stat`
/// (user and system time in USER_HZ ticks, 100 a second on Linux); zero where that file is missing.
// Each bench compiles this module; not all of them measure CPU.
#[allow(dead_code)]
pub fn process_cpu() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    std::time::Duration::from_millis((ticks(11) + ticks(12)) * 10)
}
