//! `goticket`: the admin CLI. It parses arguments, calls goticket-core's service and
//! renders the result; no business rule lives here.

mod args;
mod bench;
mod commands;
mod demo;
#[cfg(feature = "http")]
mod http;
mod import_export;
mod output;
mod parse;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout().lock();
    match commands::run(cli, stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A reader that went away (`goticket event list | head -1`) is not an error.
            if err.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe))
            {
                return ExitCode::SUCCESS;
            }
            let code =
                err.chain().find_map(|c| c.downcast_ref::<goticket_core::Error>()).map_or(1, |e| e.kind().exit_code());
            let _ = writeln!(io::stderr(), "goticket: error: {err:#}");
            ExitCode::from(code)
        }
    }
}
