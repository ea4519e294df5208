//! Builds packets (the same bytes python-subunit's `StreamResultToBytes` writes); for tests
//! and fixtures.

use super::packet::{FLAG_EOF, FLAG_FILE_CONTENT, FLAG_MIME_TYPE, FLAG_ROUTE_CODE, FLAG_RUNNABLE};
use super::packet::{FLAG_TAGS, FLAG_TEST_ID, FLAG_TIMESTAMP, Packet, SIGNATURE, Status, crc32};

fn number(out: &mut Vec<u8>, value: usize) {
    let v = value as u32;
    match value {
        0..=0x3F => out.push(v as u8),
        0x40..=0x3FFF => out.extend_from_slice(&((v | 0x4000) as u16).to_be_bytes()),
        0x4000..=0x3F_FFFF => out.extend_from_slice(&(v | 0x80_0000).to_be_bytes()[1..]),
        _ => out.extend_from_slice(&(v | 0xC000_0000).to_be_bytes()),
    }
}

fn utf8(out: &mut Vec<u8>, s: &str) {
    number(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn status_bits(status: Option<Status>) -> u16 {
    match status {
        None => 0,
        Some(Status::Exists) => 1,
        Some(Status::InProgress) => 2,
        Some(Status::Success) => 3,
        Some(Status::UxSuccess) => 4,
        Some(Status::Skip) => 5,
        Some(Status::Fail) => 6,
        Some(Status::XFail) => 7,
    }
}

/// Encodes one packet.
pub fn packet(p: &Packet<'_>) -> Vec<u8> {
    let mut flags = 0x2000 | status_bits(p.status);
    let mut body = Vec::new();
    if let Some(ts) = p.timestamp {
        flags |= FLAG_TIMESTAMP;
        body.extend_from_slice(&ts.secs.to_be_bytes());
        number(&mut body, ts.nanos as usize);
    }
    if let Some(id) = p.test_id {
        flags |= FLAG_TEST_ID;
        utf8(&mut body, id);
    }
    if !p.tags.is_empty() {
        flags |= FLAG_TAGS;
        number(&mut body, p.tags.len());
        p.tags.iter().for_each(|t| utf8(&mut body, t));
    }
    if p.runnable {
        flags |= FLAG_RUNNABLE;
    }
    if let Some(mime) = p.mime_type {
        flags |= FLAG_MIME_TYPE;
        utf8(&mut body, mime);
    }
    if let Some((name, bytes)) = p.file {
        flags |= FLAG_FILE_CONTENT;
        utf8(&mut body, name);
        number(&mut body, bytes.len());
        body.extend_from_slice(bytes);
    }
    if p.eof {
        flags |= FLAG_EOF;
    }
    if let Some(route) = p.route_code {
        flags |= FLAG_ROUTE_CODE;
        utf8(&mut body, route);
    }
    frame(flags, &body)
}

fn frame(flags: u16, body: &[u8]) -> Vec<u8> {
    let base = body.len() + 3 + 4;
    let total = match base {
        0..=62 => base + 1,
        63..=16381 => base + 2,
        _ => base + 3,
    };
    let mut out = vec![SIGNATURE];
    out.extend_from_slice(&flags.to_be_bytes());
    number(&mut out, total);
    out.extend_from_slice(body);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}
