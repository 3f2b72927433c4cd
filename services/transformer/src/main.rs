#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::install_crypto_provider();
    let config = shared::config::load_or_exit("transformer", transformer::Config::from_vars);
    let _telemetry = shared::telemetry::init("transformer");
    transformer::run(config, shared::Shutdown::on_signals()).await
}
