//! Simulated external systems for tests, the demo and benchmarks. They speak the real wire
//! formats over real HTTP on loopback.

pub mod care;
pub mod decisions;
pub mod finance;
pub mod nexus;

use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A simulator's HTTP server running in the background: stopped gracefully by
/// [`Served::shutdown`], and told to stop when dropped.
#[derive(Debug)]
pub struct Served {
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl Served {
    /// Serves `app` on `listener` until stopped.
    pub fn spawn(listener: tokio::net::TcpListener, app: axum::Router) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Self {
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// Stops the server and waits for it (at most 5 seconds, then it is aborted).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut handle) = self.handle.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut handle)
                .await
                .is_err()
        {
            handle.abort();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
