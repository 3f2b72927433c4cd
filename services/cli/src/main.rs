use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    shared::install_crypto_provider();
    // clap's own errors exit 2 (usage); `--help` and `--version` exit 0 before anything starts.
    let cli = etl_cli::Cli::parse();
    etl_cli::logging::init(cli.global.verbose);
    match etl_cli::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("etl: {err:#}");
            etl_cli::exit::exit_code(&err)
        }
    }
}
