//! Logging to stderr through `tracing`, as text or JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber; a second call (tests) keeps the first.
pub fn init(config: &Config) {
    // The filter was validated with the rest of the configuration.
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Like [`init`], but only warnings and errors unless `ORCH_LOG` was set: the demo's own
/// output is its progress lines.
pub fn init_quiet(config: &Config) {
    let mut quiet = config.clone();
    if std::env::var_os("ORCH_LOG").is_none() {
        quiet.log = "warn".into();
    }
    init(&quiet);
}
