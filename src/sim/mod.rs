//! Simulated external systems for tests, the demo and benchmarks. They speak the real wire
//! formats over real HTTP on loopback.

pub mod care;
pub mod decisions;
pub mod faults;
pub mod finance;
pub mod nexus;

use std::time::Duration;

/// The client id and secret of an HTTP Basic `Authorization` header, each form-decoded as
/// RFC 6749 section 2.3.1 says (OAuth2 client credentials sent the Basic way).
pub(crate) fn basic_credentials(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let pair = String::from_utf8(raw).ok()?;
    let (id, secret) = pair.split_once(':')?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((decode(id), decode(secret)))
}
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

#[cfg(test)]
mod tests {
    #[test]
    fn basic_credentials_are_decoded() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("authorization", "Basic dXNlcjpwJTNBYXNz".parse().unwrap());
        assert_eq!(
            super::basic_credentials(&h),
            Some(("user".into(), "p:ass".into()))
        );
        h.insert("authorization", "Bearer x".parse().unwrap());
        assert_eq!(super::basic_credentials(&h), None);
    }
}
