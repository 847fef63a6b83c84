//! The reactor's counters for each service, logged at shutdown and on SIGUSR1.

use std::fmt;

/// What the reactor counts for one service.
#[derive(Default, Debug)]
pub struct Counters {
    /// Connections open now.
    pub conns_now: u64,
    /// Connections accepted since start.
    pub conns_total: u64,
    /// Connections refused because a listener was full.
    pub refused: u64,
    /// Bytes read from connections and datagrams received.
    pub bytes_in: u64,
    /// Bytes written to connections and datagrams sent.
    pub bytes_out: u64,
    /// Datagrams received.
    pub dgrams_in: u64,
    /// Datagrams sent.
    pub dgrams_out: u64,
    /// Datagrams dropped because a socket buffer was full.
    pub dgrams_dropped: u64,
    /// I/O errors on this service's sockets.
    pub errors: u64,
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conns_now={} conns_total={} refused={} bytes_in={} bytes_out={} dgrams_in={} dgrams_out={} \
             dgrams_dropped={} errors={}",
            self.conns_now,
            self.conns_total,
            self.refused,
            self.bytes_in,
            self.bytes_out,
            self.dgrams_in,
            self.dgrams_out,
            self.dgrams_dropped,
            self.errors
        )
    }
}
