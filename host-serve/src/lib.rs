//! `serve`: the pipeline's embedded world as a real service on a laptop — regions in one
//! process, each the same ingest, reconcile and redrive as the Lambda functions over a
//! durable store ([`durable`]), Global Tables and Streams between them in real time
//! ([`world`]), each region's TMF632 API and a live page over HTTP ([`http`], [`page`]), and
//! clients that drive it ([`client`]: the demo workload and the load generator).

pub mod auth;
pub mod client;
pub mod durable;
pub mod http;
pub mod hub;
pub mod page;
pub mod world;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use world::{World, WorldConfig};

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub world: Arc<World>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Starts the world and the HTTP server on `addr` (port 0: any free port); `auth` says who a
/// request acts for (the page shows `tenant`).
pub async fn start(
    config: WorldConfig,
    addr: SocketAddr,
    auth: auth::Auth,
    tenant: &str,
) -> anyhow::Result<Running> {
    // Requests block on their worker inside `block_in_place` (`http.rs`), which needs tokio's
    // multi-thread runtime.
    anyhow::ensure!(
        tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::MultiThread,
        "serve runs on tokio's multi-thread runtime (requests block on their worker)"
    );
    let world = tokio::task::spawn_blocking(move || World::start(config))
        .await
        .context("starting the regions")??;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let addr = listener.local_addr()?;
    tokio::spawn(world.hubs.clone().deliver());
    let app = http::router(world.clone(), std::sync::Arc::new(auth), tenant);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    Ok(Running {
        addr,
        world,
        shutdown: Some(tx),
        task,
    })
}

impl Running {
    /// The server's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, lets the ones in flight finish, stops the driver and
    /// commits what is queued.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.context("the server task")??;
        let world = self.world.clone();
        tokio::task::spawn_blocking(move || world.stop()).await?;
        Ok(())
    }
}
