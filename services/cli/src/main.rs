use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    shared::install_crypto_provider();
    let cli = etl_cli::Cli::parse();
    let _telemetry = shared::telemetry::init("etl");
    match etl_cli::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("etl: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
