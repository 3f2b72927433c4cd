#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::install_crypto_provider();
    let config = shared::config::load_or_exit("loader", loader::Config::from_vars);
    let _telemetry = shared::telemetry::init("loader");
    loader::run(config, shared::Shutdown::on_signals()).await
}
