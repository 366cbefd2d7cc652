//! What the serve tests share: a server on a free port of 127.0.0.1 over a data directory.

use std::time::Duration;

use host_serve::{Running, WorldConfig};

/// `serve` for tenant `acme` alone, replication lag 20 ms, the registry followed every second,
/// a hub delivery tried 4 times from 100 ms (a failing callback is dead-lettered within a
/// test's patience; the default schedule waits minutes).
pub async fn serve(dir: &std::path::Path) -> Running {
    let mut config = WorldConfig::new(dir);
    config.lag = Duration::from_millis(20);
    config.refresh = Duration::from_secs(1);
    config.hub = host_serve::hub::Schedule {
        attempts: 4,
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
    };
    host_serve::start(
        config,
        "127.0.0.1:0".parse().unwrap(),
        host_serve::auth::Auth::Single("acme".into()),
        "acme",
    )
    .await
    .expect("serve starts")
}
