#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::install_crypto_provider();
    // `--help`, `--version`, `--check-config` and bad settings end here, before any connection.
    let (config, telemetry) =
        shared::config::load_or_exit(&notifier::config::spec(), notifier::Config::from_vars);
    let _telemetry = shared::telemetry::init(&telemetry);
    notifier::run(config, shared::Shutdown::on_signals()).await
}
