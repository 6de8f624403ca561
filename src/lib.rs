//! The all-in-one Herald process: the API and the worker over one database connection pool
//! and one bus, so that a newcomer's `cargo run` is the whole product. On a new database it
//! creates the first account and company admin and prints a token to use in GraphiQL.

use std::future::Future;

use api::{bootstrap, AppState, Config, Server};
use tokio::sync::watch;

pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let state = AppState::init(config).await?;
    if let Some((account, admin)) = bootstrap::bootstrap(&state.db, bootstrap::FirstAdmin::default()).await? {
        let token = state.tokens.mint(admin.id, None, std::time::Duration::from_secs(30 * 24 * 3600));
        println!("Created account {:?} and company admin {} ({}).", account.name, admin.email, admin.id);
        println!("Their token (valid 30 days; mint more with `cargo run -p api -- token --user {}`):\n\n  {token}\n", admin.id);
    }
    let server = Server::bind(state.clone()).await?;
    println!("GraphQL (and GraphiQL in a browser): http://{}/graphql", server.local_addr());
    println!("Subscriptions: ws://{}/graphql/ws", server.local_addr());

    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(worker::Worker::new(state).await?.run(wait(stop_rx)));
    server
        .run(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await?;
    worker.await?;
    Ok(())
}

async fn wait(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
