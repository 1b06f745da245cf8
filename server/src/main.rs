use ayush_server::config::{Config, Overrides};
use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Ayush: a private AI workspace for the enterprise.
#[derive(Parser)]
#[command(name = "ayush", version = ayush_server::build_info::VERSION)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Config file (default: /etc/ayush/ayush.toml if it exists, else ./ayush.toml if it exists).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Address and port to listen on (AYUSH_LISTEN).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<String>,
        /// Where the database, secrets and models live (AYUSH_DATA_DIR).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Work with the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Write the man pages (ayush.1 and one per subcommand) into a directory.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the config and print the effective values, secrets masked.
    Check {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

fn load(config: Option<PathBuf>, overrides: Overrides) -> Result<(Config, Option<PathBuf>), String> {
    let file = Config::locate(config.as_deref());
    let config = Config::load(file.as_deref(), std::env::vars(), &overrides).map_err(|e| e.to_string())?;
    Ok((config, file))
}

fn main() -> ExitCode {
    ayush_server::build_info::require_cpu();
    // A child started to parse one untrusted file does only that (see knowledge::extract).
    ayush_server::knowledge::extract::isolate::serve_if_worker();
    ayush_server::knowledge::extract::isolate::enable();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, listen, data_dir } => load(config, Overrides { listen, data_dir })
            .and_then(|(config, _)| ayush_server::serve::run(config).map_err(|e| e.to_string())),
        Command::Config { command: ConfigCommand::Check { config } } => load(config, Overrides::default())
            .map(|(config, file)| {
                let from = file.map_or("(built-in defaults)".to_string(), |f| f.display().to_string());
                println!(
                    "# config OK: {from}, then AYUSH_* environment variables\n{}",
                    config.to_masked_toml()
                );
            }),
        Command::Man { dir } => ayush_server::cli_docs::write_man_pages(Cli::command(), &dir).map(|files| {
            println!("wrote {} man pages to {}", files.len(), dir.display());
        }),
        Command::Completions { shell } => {
            ayush_server::cli_docs::print_completions(Cli::command(), shell);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ayush: {e}");
            ExitCode::FAILURE
        }
    }
}
