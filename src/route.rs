//! Where rollci's own traffic to the lab goes (probes, persistent resources): straight, or
//! through a SOCKS5 tunnel that a provider opened to a host that can route to the lab (the
//! lab's networks may be private to its parent host). Set by the provider when it opens the
//! tunnel, and by every later command from the journal; read by the HTTP and TCP clients.

use std::sync::Mutex;

static SOCKS: Mutex<Option<String>> = Mutex::new(None);

/// Routes rollci's requests through the SOCKS5 proxy at `address` (`127.0.0.1:PORT`), or
/// straight again with `None`.
pub fn set(address: Option<String>) {
    *SOCKS.lock().unwrap_or_else(|e| e.into_inner()) = address;
}

/// The SOCKS5 proxy rollci's requests go through, if any.
pub fn socks() -> Option<String> {
    SOCKS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}
