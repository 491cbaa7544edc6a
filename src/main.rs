//! The `skewer` binary: parse arguments, call the library, map errors to exit codes
//! (0 done, 1 failed or bad input, 2 usage, 3 too many bad records).

mod cli;

use std::io::{self, ErrorKind};
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with 2.
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Plan(args) => {
            skewer::app::plan(&args.into_config(), &mut io::stdout().lock())
        }
        cli::Command::Gen(args) => match args.into_config() {
            Ok(config) => skewer::app::generate(&config, &mut io::stdout().lock()),
            Err(msg) => {
                use clap::CommandFactory;
                cli::Cli::command()
                    .error(clap::error::ErrorKind::ArgumentConflict, msg)
                    .exit()
            }
        },
        cli::Command::Checksum(args) => skewer::app::checksum(
            &args.dataset,
            args.expected.as_deref(),
            &mut io::stdout().lock(),
        ),
        cli::Command::Recover(args) => {
            skewer::app::recover(&args.dataset, &mut io::stdout().lock())
        }
        cli::Command::Run(args) => {
            let (config, format) = args.into_config();
            skewer::app::run(&config, format, &mut io::stdout().lock())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `skewer plan … | head` closing the pipe early is not a failure.
        Err(skewer::Error::Output(e)) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            // Each message already carries its cause and the offending file and place.
            eprintln!("error: {e}");
            ExitCode::from(code)
        }
    }
}
