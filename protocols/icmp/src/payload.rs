//! What our probes carry, and how a reply's payload is checked against it.

use crate::types::Damage;

/// Payload bytes that identify a probe: the 8-byte cookie, then the 8-byte probe number.
pub const ID_LEN: usize = 16;

/// The payload of probe `probe`: our cookie, the probe number (both big-endian), then the byte
/// pattern 0x10, 0x11, ... (iputils fills with an incrementing pattern too); cut to `len`.
pub fn probe_payload(cookie: u64, probe: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len.max(ID_LEN));
    v.extend_from_slice(&cookie.to_be_bytes());
    v.extend_from_slice(&probe.to_be_bytes());
    v.extend((ID_LEN..len).map(|i| i as u8));
    v.truncate(len);
    v
}

/// Whether `payload` starts with the id part (cookie and probe number) of probe `probe`, as far
/// as a payload of `len` bytes carries one. Those are what make a reply ours, damaged or not.
pub(crate) fn carries_id(payload: &[u8], cookie: u64, probe: u64, len: usize) -> bool {
    let id = probe_payload(cookie, probe, len.min(ID_LEN));
    payload.len() >= id.len() && payload[..id.len()] == id[..]
}

/// Compare a reply's payload with what probe `probe` carried.
pub(crate) fn check_payload(payload: &[u8], cookie: u64, probe: u64, len: usize) -> Option<Damage> {
    if payload.len() != len {
        return Some(Damage::WrongLength { expected: len, got: payload.len() });
    }
    let expected = probe_payload(cookie, probe, len);
    let offset = expected.iter().zip(payload).position(|(a, b)| a != b)?;
    Some(Damage::WrongData { offset, expected: expected[offset], got: payload[offset] })
}
