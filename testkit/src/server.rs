//! What every loopback fake shares: a port on `127.0.0.1`, bound before the fake's state is
//! built (some state names its own URL), then an axum app served on a thread and runtime of
//! its own, so that a fake works the same under any test runtime — or none.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use tokio::sync::watch;

/// A bound loopback port, not yet served.
pub(crate) struct Loopback {
    /// Names the fake in panics and its thread.
    name: &'static str,
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

impl Loopback {
    /// Binds `127.0.0.1:0` for the fake `name` (e.g. `gitea fake`).
    ///
    /// # Panics
    /// When the port cannot be bound: a test cannot run without its fake.
    pub(crate) fn bind(name: &'static str) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("{name}: cannot bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{name}: bound socket has no address: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{name}: cannot make {addr} non-blocking: {e}"));
        Self {
            name,
            listener,
            addr,
        }
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `app` on a thread of its own until the returned server is dropped; then the
    /// answers in flight get `grace` to finish (`None`: as long as they take).
    ///
    /// # Panics
    /// When the thread cannot start.
    pub(crate) fn serve(self, app: Router, grace: Option<Duration>) -> Server {
        let (stop, stopped) = watch::channel(false);
        let Self {
            name,
            listener,
            addr,
        } = self;
        let thread = std::thread::Builder::new()
            .name(format!("{}-{}", name.replace(' ', "-"), addr.port()))
            .spawn(move || serve(name, listener, app, stopped, grace))
            .unwrap_or_else(|e| panic!("{name}: cannot start its thread: {e}"));
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

/// A fake's server thread; dropping it stops the server and joins the thread.
pub(crate) struct Server {
    /// Tells the server thread to stop.
    stop: watch::Sender<bool>,
    /// The server thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            // A panic in the server thread has already been printed; do not panic in drop.
            let _ = thread.join();
        }
    }
}

/// The server thread: serves until told to stop, then gives answers in flight `grace` to
/// finish.
fn serve(
    name: &'static str,
    listener: std::net::TcpListener,
    app: Router,
    stopped: watch::Receiver<bool>,
    grace: Option<Duration>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{name}: cannot build its runtime: {e}"));
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .unwrap_or_else(|e| panic!("{name}: cannot adopt its listener: {e}"));
        let mut graceful = stopped.clone();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = graceful.wait_for(|stop| *stop).await;
        });
        let mut deadline = stopped;
        tokio::select! {
            result = server => {
                if let Err(e) = result {
                    eprintln!("{name}: server failed: {e}");
                }
            }
            _ = async {
                let _ = deadline.wait_for(|stop| *stop).await;
                match grace {
                    Some(grace) => tokio::time::sleep(grace).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
    });
}
