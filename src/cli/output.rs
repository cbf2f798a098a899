//! Where the command line's output goes: standard output, written whole, with a closed pipe
//! taken as the reader having seen enough (`orchestrator tasks | head`) rather than an error
//! — `println!` would panic there.

use std::io::{ErrorKind, Write};

/// Writes `text` (and a final newline if it lacks one) to standard output. A reader that
/// went away is not an error: the command simply has nothing more to say.
pub fn emit(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(text.as_bytes())
        .and_then(|()| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
        .and_then(|()| out.flush());
    match written {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
