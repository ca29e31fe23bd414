//! The `rssp` command: `rssp serve` and the operator commands (see `rssp --help`).

use clap::Parser;

fn main() {
    // Before anything logs; a bad RSSP_LOG or RSSP_LOG_FORMAT stops every command, naming the setting.
    if let Err(e) = rssp::telemetry::init_logging() {
        eprintln!("rssp: {e}");
        std::process::exit(2);
    }
    let cli = rssp::cli::Cli::parse();
    match rssp::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("rssp: {e:#}");
            std::process::exit(2);
        }
    }
}
