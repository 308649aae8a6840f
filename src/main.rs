//! The `centralauth-operator` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

use centralauth_operator::cli::{Cli, Command};
use centralauth_operator::crd;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds(args) => crds(args.out_dir),
        Command::HashPassword => hash_password(),
        Command::Run(args) => {
            centralauth_operator::run::init_tracing(args.log_format);
            match centralauth_operator::run::run(*args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = %err, "centralauth-operator stopped");
                    eprintln!("error: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn hash_password() -> ExitCode {
    let mut password = String::new();
    if std::io::stdin().read_line(&mut password).is_err() || password.trim_end_matches(['\r', '\n']).is_empty() {
        eprintln!(
            "error: write the password on stdin, e.g. `read -rs P; echo \"$P\" | centralauth-operator hash-password`"
        );
        return ExitCode::FAILURE;
    }
    match centralauth_operator::crypto::hash(password.trim_end_matches(['\r', '\n']).as_bytes()) {
        Ok(phc) => {
            println!("{phc}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn crds(out_dir: Option<std::path::PathBuf>) -> ExitCode {
    let Some(dir) = out_dir else {
        print!("{}", crd::all_crds_yaml());
        return ExitCode::SUCCESS;
    };
    for (name, definition) in crd::all_crds() {
        let path = dir.join(format!("{name}.yaml"));
        if let Err(err) = std::fs::write(&path, crd::crd_yaml(&definition)) {
            eprintln!("error: cannot write {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
