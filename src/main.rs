//! The `skewer` binary: parse arguments, call the library, map errors to exit codes
//! (0 done, 1 failed or bad input, 2 usage, 3 too many bad records).

mod cli;

use std::io::{self, ErrorKind};
use std::process::ExitCode;

use clap::Parser;

/// Makes glibc serve every allocation of 4 MiB or more with its own mapping, returned to the
/// OS when freed. By default glibc raises that threshold to 32 MiB once a large buffer is
/// freed, after which reducer buffers freed by each spill stay resident as arena holes:
/// under `--memory-limit 1GiB` peak RSS grew from 0.76 to 1.16 GiB between 1x and 10x the
/// default benchmark. With a fixed threshold it stays flat (BENCHMARKS.md, scaling).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fix_mmap_threshold() {
    // SAFETY: mallopt only sets an allocator parameter; it is called before any other thread
    // exists, and a failure (0) leaves glibc's defaults, which are merely less frugal.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_mmap_threshold() {}

/// Structured logs on stderr when `RUST_LOG` asks for them (e.g. `RUST_LOG=skewer=debug`).
fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr()))
            .try_init();
    }
}

/// Panics the library turns into rejects (a Parquet decoder meeting a corrupt file) are not
/// printed; every other panic reaches the default hook.
fn quiet_contained_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !skewer::explode::parquet::panic_is_contained() {
            default(info);
        }
    }));
}

fn main() -> ExitCode {
    fix_mmap_threshold();
    init_logs();
    quiet_contained_panics();
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
            skewer::app::recover(&args.dataset, args.s3.endpoint, &mut io::stdout().lock())
        }
        cli::Command::Replay(args) => {
            let (config, format) = args.into_config();
            skewer::app::replay(&config, format, &mut io::stdout().lock())
        }
        cli::Command::History(cli::HistoryCommand::Show(args)) => skewer::app::history_show(
            &args.dataset,
            args.s3.endpoint,
            args.top,
            args.window,
            if args.json {
                skewer::app::OutputFormat::Json
            } else {
                skewer::app::OutputFormat::Table
            },
            &mut io::stdout().lock(),
        ),
        cli::Command::Inspect(args) => {
            skewer::app::inspect(&args.into_config(), &mut io::stdout().lock())
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
