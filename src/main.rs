//! The `centralauth-operator` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

/// mimalloc rather than glibc's allocator: a token request allocates a few dozen short-lived
/// buffers, and with a busy in-memory store glibc spent a fifth of the request path in
/// `_int_malloc` and `malloc_consolidate` (perf, release build); mimalloc cut the CPU per code
/// exchange by 18–35 % and per `client_credentials` request by 13–25 % (tests/bench/token_bench.py,
/// alternating builds).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

use centralauth_operator::cli::{Cli, Command};
use centralauth_operator::crd;

/// Threads for blocking work (argon2id verifications and the association checks' system
/// resolver lookups, each bounded on its own; the other clients' rare lookups). tokio's default
/// is 512, each thread with its stack and allocator state: 10,000 NativeApps created at once
/// grew the process to 390 threads (it also had no bound on concurrent reconciles then).
/// Beyond this many, blocking work queues.
const MAX_BLOCKING_THREADS: usize = 64;

fn main() -> ExitCode {
    centralauth_operator::runtime::memory::tune();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(command(cli)),
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn command(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Crds(args) => crds(args.out_dir),
        Command::HashPassword => hash_password(),
        Command::User(args) => user_manifest(&args),
        Command::Run(args) => {
            centralauth_operator::run::init_tracing(args.log_format);
            match centralauth_operator::run::run(*args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = %err, "centralauth-operator stopped");
                    eprintln!("error: {err}");
                    if err.is_usage_error() {
                        ExitCode::from(2)
                    } else {
                        ExitCode::FAILURE
                    }
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

/// Prints the User manifest of `centralauth-operator user`.
fn user_manifest(args: &centralauth_operator::cli::UserArgs) -> ExitCode {
    if centralauth_operator::mail::recipient(&args.email).is_none() {
        eprintln!("error: --email must be one e-mail address such as ada@example.com");
        return ExitCode::from(2);
    }
    let mut user = crd::User::invite(args.namespace.as_deref(), &args.organization, &args.email);
    user.spec.blocked = args.blocked;
    match serde_norway::to_string(&user) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: cannot render the User: {err}");
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
