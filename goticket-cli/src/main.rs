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
#[cfg(feature = "amqp")]
mod relay;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use crate::args::Cli;

fn main() -> ExitCode {
    let parsed = <Cli as clap::CommandFactory>::command().try_get_matches().and_then(|m| {
        let mut cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m)?;
        cli.db_on_command_line = m.value_source("db") == Some(clap::parser::ValueSource::CommandLine);
        Ok(cli)
    });
    let cli = match parsed {
        Ok(cli) => cli,
        // Help and version go to stdout as clap prints them; a usage error gets the
        // prefix every other error has (`goticket: error: ...`) and exit 2.
        Err(e) if !e.use_stderr() => e.exit(),
        // `goticket` or `goticket event` alone: the help, as clap shows it.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => {
            let styled = io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            let text = if styled { e.render().ansi().to_string() } else { e.render().to_string() };
            let _ = write!(io::stderr(), "goticket: {text}");
            return ExitCode::from(2);
        }
    };
    let stdout = io::stdout().lock();
    match commands::run(cli, stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A reader that went away (`goticket event list | head -1`) is not an error.
            let broken = |c: &(dyn std::error::Error + 'static)| {
                let pipe = io::ErrorKind::BrokenPipe;
                c.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == pipe)
                    || c.downcast_ref::<serde_json::Error>().is_some_and(|e| e.io_error_kind() == Some(pipe))
                    || c.downcast_ref::<csv::Error>()
                        .is_some_and(|e| matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == pipe))
            };
            if err.chain().any(broken) {
                return ExitCode::SUCCESS;
            }
            let code =
                err.chain().find_map(|c| c.downcast_ref::<goticket_core::Error>()).map_or(1, |e| e.kind().exit_code());
            let _ = writeln!(io::stderr(), "goticket: error: {err:#}");
            ExitCode::from(code)
        }
    }
}
