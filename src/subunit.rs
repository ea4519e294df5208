//! Native subunit v2 reader: packets parsed from a byte stream (non-subunit bytes between
//! them kept as interleaved output, damaged packets resynchronised over) and folded into one
//! final result per reported test, the way python-subunit's `StreamResult` consumers do.

use std::collections::HashMap;

use crate::evidence::TestCase;

/// First byte of every subunit v2 packet.
pub const SIGNATURE: u8 = 0xB3;

const VERSION_2: u16 = 0x2;
const FLAG_TEST_ID: u16 = 0x0800;
const FLAG_ROUTE_CODE: u16 = 0x0400;
const FLAG_TIMESTAMP: u16 = 0x0200;
const FLAG_RUNNABLE: u16 = 0x0100;
const FLAG_TAGS: u16 = 0x0080;
const FLAG_FILE_CONTENT: u16 = 0x0040;
const FLAG_MIME_TYPE: u16 = 0x0020;
const FLAG_EOF: u16 = 0x0010;
/// Signature, two flag bytes, one length byte and the CRC-32.
const MIN_PACKET: usize = 8;

/// The status carried by a packet (the low three bits of its flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Exists,
    InProgress,
    Success,
    UxSuccess,
    Skip,
    Fail,
    XFail,
}

impl Status {
    fn from_flags(flags: u16) -> Option<Status> {
        match flags & 0x7 {
            0x1 => Some(Status::Exists),
            0x2 => Some(Status::InProgress),
            0x3 => Some(Status::Success),
            0x4 => Some(Status::UxSuccess),
            0x5 => Some(Status::Skip),
            0x6 => Some(Status::Fail),
            0x7 => Some(Status::XFail),
            _ => None,
        }
    }

    /// The name used in [`TestCase::status`]; `None` for the interim states.
    pub fn final_name(self) -> Option<&'static str> {
        match self {
            Status::Success => Some("success"),
            Status::UxSuccess => Some("uxsuccess"),
            Status::Skip => Some("skip"),
            Status::Fail => Some("fail"),
            Status::XFail => Some("xfail"),
            Status::Exists | Status::InProgress => None,
        }
    }
}

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    pub secs: u32,
    pub nanos: u32,
}

impl Timestamp {
    fn millis_since(self, start: Timestamp) -> f64 {
        let secs = f64::from(self.secs) - f64::from(start.secs);
        let nanos = f64::from(self.nanos) - f64::from(start.nanos);
        (secs * 1e3 + nanos / 1e6).max(0.0)
    }
}

/// One decoded packet; strings and file content borrow the input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Packet<'a> {
    pub status: Option<Status>,
    pub test_id: Option<&'a str>,
    pub route_code: Option<&'a str>,
    pub timestamp: Option<Timestamp>,
    pub tags: Vec<&'a str>,
    pub mime_type: Option<&'a str>,
    /// File name and content (a chunk of an attachment such as `traceback`).
    pub file: Option<(&'a str, &'a [u8])>,
    pub eof: bool,
    pub runnable: bool,
}

/// An item of a stream: a packet or a run of bytes that were not one.
#[derive(Debug, Clone, PartialEq)]
pub enum Item<'a> {
    Packet(Packet<'a>),
    Output(&'a [u8]),
}

/// Why bytes starting with the signature were not taken as a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("version {0:#x} is not 2")]
    Version(u16),
    #[error("packet length {0} is out of range")]
    Length(usize),
    #[error("packet is truncated")]
    Truncated,
    #[error("bad checksum (computed {computed:#010x}, stored {stored:#010x})")]
    Checksum { computed: u32, stored: u32 },
    #[error("a field runs past the end of the packet")]
    Field,
    #[error("a string is not UTF-8 or contains NUL")]
    Utf8,
    #[error("a four-byte number where at most three are allowed")]
    Number,
}

/// Iterates over the items of a subunit v2 byte stream; never fails: bytes that do not form
/// a valid packet (wrong version, torn, bad CRC) are yielded as output and scanning resumes
/// at the next signature byte.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Where the last valid packet ended.
    packet_end: usize,
    /// Offset and reason of every signature byte that did not start a valid packet.
    pub rejected: Vec<(usize, PacketError)>,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader {
            data,
            pos: 0,
            packet_end: 0,
            rejected: Vec::new(),
        }
    }

    /// Whether the byte at `pos` continues a UTF-8 character of output (as python-subunit
    /// sees it: 0xB3 is also a UTF-8 continuation byte, as in `m³`); such a byte is only a
    /// packet if its checksum holds, and is not reported as a damaged one.
    fn mid_character(&self, pos: usize) -> bool {
        pos > self.packet_end && self.data[pos - 1] >= 0x80
    }

    /// Output from `start` up to (not including) the next signature byte after `from`.
    fn output(&mut self, start: usize, from: usize) -> Item<'a> {
        let end = next_signature(self.data, from);
        self.pos = end;
        Item::Output(&self.data[start..end])
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        let start = self.pos;
        let rest = self.data.get(start..).filter(|r| !r.is_empty())?;
        if rest[0] != SIGNATURE {
            return Some(self.output(start, start));
        }
        match parse_packet(rest) {
            Ok((packet, len)) => {
                self.pos = start + len;
                self.packet_end = self.pos;
                Some(Item::Packet(packet))
            }
            Err(err) => {
                if !self.mid_character(start) {
                    self.rejected.push((start, err));
                }
                Some(self.output(start, start + 1))
            }
        }
    }
}

fn next_signature(data: &[u8], from: usize) -> usize {
    data.get(from..)
        .and_then(|rest| rest.iter().position(|&b| b == SIGNATURE))
        .map_or(data.len(), |i| from + i)
}

/// Parses the packet at the start of `data` (which begins with the signature); returns it
/// and its length in bytes.
pub fn parse_packet(data: &[u8]) -> Result<(Packet<'_>, usize), PacketError> {
    let header = data.get(..4).ok_or(PacketError::Truncated)?;
    let flags = u16::from_be_bytes([header[1], header[2]]);
    if flags >> 12 != VERSION_2 {
        return Err(PacketError::Version(flags >> 12));
    }
    let mut length_field = Cursor::new(data, 3);
    let len = length_field.number(true)?;
    if len < MIN_PACKET || len < length_field.pos + 4 {
        return Err(PacketError::Length(len));
    }
    let packet = data.get(..len).ok_or(PacketError::Truncated)?;
    check_crc(packet)?;
    let body = Cursor::new(&packet[..len - 4], length_field.pos);
    Ok((decode_body(flags, body)?, len))
}

fn check_crc(packet: &[u8]) -> Result<(), PacketError> {
    let (content, tail) = packet.split_at(packet.len() - 4);
    let stored = u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let computed = crc32(content);
    if computed == stored {
        Ok(())
    } else {
        Err(PacketError::Checksum { computed, stored })
    }
}

/// Reads the optional fields in the order the flags say they were written.
fn decode_body(flags: u16, mut body: Cursor<'_>) -> Result<Packet<'_>, PacketError> {
    let has = |flag: u16| flags & flag != 0;
    let mut packet = Packet {
        status: Status::from_flags(flags),
        eof: has(FLAG_EOF),
        runnable: has(FLAG_RUNNABLE),
        ..Packet::default()
    };
    if has(FLAG_TIMESTAMP) {
        let secs = body.u32()?;
        let nanos = body.number(false)? as u32;
        packet.timestamp = Some(Timestamp { secs, nanos });
    }
    if has(FLAG_TEST_ID) {
        packet.test_id = Some(body.utf8()?);
    }
    if has(FLAG_TAGS) {
        let count = body.number(false)?;
        packet.tags = (0..count).map(|_| body.utf8()).collect::<Result<_, _>>()?;
    }
    if has(FLAG_MIME_TYPE) {
        packet.mime_type = Some(body.utf8()?);
    }
    if has(FLAG_FILE_CONTENT) {
        let name = body.utf8()?;
        let len = body.number(false)?;
        packet.file = Some((name, body.bytes(len)?));
    }
    if has(FLAG_ROUTE_CODE) {
        packet.route_code = Some(body.utf8()?);
    }
    Ok(packet)
}

/// A bounds-checked reader over a packet's bytes.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Cursor { data, pos }
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], PacketError> {
        let end = self.pos.checked_add(len).ok_or(PacketError::Field)?;
        let bytes = self.data.get(self.pos..end).ok_or(PacketError::Field)?;
        self.pos = end;
        Ok(bytes)
    }

    fn u32(&mut self) -> Result<u32, PacketError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A variable-length number: the top two bits of the first byte say how many bytes
    /// (1 to 4) it takes; the rest are the value, big-endian.
    fn number(&mut self, max_3_bytes: bool) -> Result<usize, PacketError> {
        let first = self.bytes(1)?[0];
        let extra = usize::from(first >> 6);
        if extra == 3 && max_3_bytes {
            return Err(PacketError::Number);
        }
        let rest = self.bytes(extra)?;
        let value = rest.iter().fold(usize::from(first & 0x3F), |acc, &b| {
            (acc << 8) | usize::from(b)
        });
        Ok(value)
    }

    fn utf8(&mut self) -> Result<&'a str, PacketError> {
        let len = self.number(false)?;
        let bytes = self.bytes(len)?;
        if bytes.contains(&0) {
            return Err(PacketError::Utf8);
        }
        std::str::from_utf8(bytes).map_err(|_| PacketError::Utf8)
    }
}

/// CRC-32 (IEEE, as zlib computes it), which subunit v2 puts at the end of each packet.
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// A stream folded into final results.
#[derive(Debug, Default)]
pub struct Stream {
    /// One entry per final status, in the order tests finished; tests that never finished
    /// come last, as failures.
    pub tests: Vec<TestCase>,
    /// Bytes between packets (a test runner's own prints, garbage), in order.
    pub output: Vec<u8>,
    /// Valid packets read.
    pub packets: usize,
    /// Signature bytes that did not start a valid packet (offset, reason).
    pub rejected: Vec<(usize, PacketError)>,
}

/// A test seen but not yet given a final status.
#[derive(Default)]
struct Open<'a> {
    order: usize,
    id: &'a str,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
    files: Vec<(&'a str, &'a [u8])>,
}

/// Parses a whole stream and folds its events into one [`TestCase`] per final status.
///
/// Like python-subunit's `subunit-stats` and `subunit2junitxml` (testtools'
/// `StreamToDict`): events are keyed by test id and route code; each final status
/// (`success`, `fail`, `skip`, `xfail`, `uxsuccess`) closes the test, so an id reported
/// twice is two results; a test still open at the end (hung, or only attachments) is a
/// failure; damaged packets add one failing `subunit.parser` test. `exists` (test
/// listings) is not a result.
pub fn parse(data: &[u8]) -> Stream {
    let mut stream = Stream::default();
    let mut open: HashMap<(&str, Option<&str>), Open<'_>> = HashMap::new();
    let mut reader = Reader::new(data);
    for item in &mut reader {
        match item {
            Item::Output(bytes) => stream.output.extend_from_slice(bytes),
            Item::Packet(packet) => {
                stream.packets += 1;
                fold(&mut stream.tests, &mut open, packet);
            }
        }
    }
    stream.rejected = reader.rejected;
    stream.tests.extend(close_unfinished(open));
    stream.tests.extend(parser_failure(&stream.rejected));
    stream
}

/// Damaged packets are one failing test named `subunit.parser`, as python-subunit reports
/// them (it reports one per damaged packet), so a corrupted stream never reads as green.
fn parser_failure(rejected: &[(usize, PacketError)]) -> Option<TestCase> {
    if rejected.is_empty() {
        return None;
    }
    let lines: Vec<String> = rejected
        .iter()
        .map(|(at, err)| format!("damaged packet at byte {at}: {err}"))
        .collect();
    Some(TestCase {
        id: "subunit.parser".into(),
        status: "fail".into(),
        duration_ms: None,
        details: Some(lines.join("\n")),
    })
}

fn fold<'a>(
    tests: &mut Vec<TestCase>,
    open: &mut HashMap<(&'a str, Option<&'a str>), Open<'a>>,
    packet: Packet<'a>,
) {
    let Some(id) = packet.test_id else {
        return; // top-level attachments belong to no test
    };
    let key = (id, packet.route_code);
    if packet.status == Some(Status::Exists) {
        open.remove(&key);
        return;
    }
    let order = open.len() + tests.len();
    let entry = open.entry(key).or_insert_with(|| Open {
        order,
        id,
        ..Open::default()
    });
    entry.start = entry.start.or(packet.timestamp);
    entry.end = packet.timestamp.or(entry.end);
    if let Some((name, bytes)) = packet.file.filter(|(_, b)| !b.is_empty()) {
        entry.files.push((name, bytes));
    }
    if let Some(name) = packet.status.and_then(Status::final_name)
        && let Some(done) = open.remove(&key)
    {
        tests.push(finish(done, name));
    }
}

fn close_unfinished(open: HashMap<(&str, Option<&str>), Open<'_>>) -> Vec<TestCase> {
    let mut left: Vec<Open<'_>> = open.into_values().collect();
    left.sort_by_key(|o| o.order);
    left.into_iter()
        .map(|mut o| {
            let note: &[u8] = b"no final status in the stream (the test hung or the run stopped)";
            o.files.push(("rollci", note));
            finish(o, "fail")
        })
        .collect()
}

fn finish(test: Open<'_>, status: &str) -> TestCase {
    let duration_ms = match (test.start, test.end) {
        (Some(start), Some(end)) => Some(end.millis_since(start)),
        _ => None,
    };
    // Attachments of passing tests (captured stdout) are dropped, as subunit2junitxml does.
    let details = (status != "success")
        .then(|| details(&test.files))
        .flatten();
    TestCase {
        id: test.id.to_string(),
        status: status.to_string(),
        duration_ms,
        details,
    }
}

/// Attachments as text: a single one as it is, several each under its name; chunks of the
/// same attachment are joined in order.
fn details(files: &[(&str, &[u8])]) -> Option<String> {
    let mut names: Vec<&str> = Vec::new();
    for (name, _) in files {
        if !names.contains(name) {
            names.push(name);
        }
    }
    let text_of = |name: &str| -> String {
        let mut bytes = Vec::new();
        for (_, chunk) in files.iter().filter(|(n, _)| *n == name) {
            bytes.extend_from_slice(chunk);
        }
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    };
    match names.as_slice() {
        [] => None,
        [one] => Some(text_of(one)),
        many => Some(
            many.iter()
                .map(|n| format!("{n}:\n{}", text_of(n)))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    }
}

/// Builds packets (the same bytes python-subunit's `StreamResultToBytes` writes); for tests
/// and fixtures.
pub mod write {
    use super::{FLAG_EOF, FLAG_FILE_CONTENT, FLAG_MIME_TYPE, FLAG_ROUTE_CODE, FLAG_RUNNABLE};
    use super::{FLAG_TAGS, FLAG_TEST_ID, FLAG_TIMESTAMP, Packet, SIGNATURE, Status, crc32};

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
}

#[cfg(test)]
mod tests {
    use super::write::packet;
    use super::*;

    fn event<'a>(id: &'a str, status: Status, secs: u32) -> Packet<'a> {
        Packet {
            test_id: Some(id),
            status: Some(status),
            timestamp: Some(Timestamp { secs, nanos: 0 }),
            runnable: true,
            ..Packet::default()
        }
    }

    fn attachment<'a>(id: &'a str, name: &'a str, bytes: &'a [u8]) -> Packet<'a> {
        Packet {
            test_id: Some(id),
            file: Some((name, bytes)),
            mime_type: Some("text/plain;charset=utf8"),
            ..Packet::default()
        }
    }

    fn stream(packets: &[Packet<'_>]) -> Vec<u8> {
        packets.iter().flat_map(packet).collect()
    }

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn known_packet_from_python_subunit_parses() {
        // StreamResultToBytes: status(test_id="foo", test_status="success", runnable=False)
        let bytes = [
            0xb3, 0x28, 0x03, 0x0c, 0x03, b'f', b'o', b'o', 0xe3, 0xea, 0xf5, 0xa4,
        ];
        let (p, len) = parse_packet(&bytes).unwrap();
        assert_eq!(len, bytes.len());
        assert_eq!(p.test_id, Some("foo"));
        assert_eq!(p.status, Some(Status::Success));
        assert!(!p.runnable);
    }

    #[test]
    fn numbers_of_every_width_round_trip() {
        for value in [0usize, 63, 64, 16383, 16384, 4_194_303, 4_194_304, 1 << 29] {
            let name = "x".repeat(3);
            let content = vec![b'a'; value.min(70_000)];
            let p = Packet {
                test_id: Some(&name),
                timestamp: Some(Timestamp {
                    secs: 1,
                    nanos: value as u32,
                }),
                file: Some(("f", &content)),
                ..Packet::default()
            };
            let bytes = packet(&p);
            let (back, len) = parse_packet(&bytes).unwrap();
            assert_eq!(len, bytes.len());
            assert_eq!(back.timestamp.unwrap().nanos, value as u32);
            assert_eq!(back.file.unwrap().1.len(), content.len());
        }
    }

    #[test]
    fn every_field_round_trips() {
        let p = Packet {
            status: Some(Status::XFail),
            test_id: Some("a.b.c"),
            route_code: Some("0/1"),
            timestamp: Some(Timestamp {
                secs: 1_700_000_000,
                nanos: 123_456_000,
            }),
            tags: vec!["worker-0", "slow"],
            mime_type: Some("text/plain"),
            file: Some(("traceback", b"boom")),
            eof: true,
            runnable: true,
        };
        let bytes = packet(&p);
        assert_eq!(parse_packet(&bytes).unwrap().0, p);
    }

    #[test]
    fn a_test_folds_into_one_result_with_duration_and_traceback() {
        let bytes = stream(&[
            event("t.fails", Status::InProgress, 10),
            attachment("t.fails", "traceback", b"Traceback: "),
            attachment("t.fails", "traceback", b"boom"),
            event("t.fails", Status::Fail, 12),
        ]);
        let s = parse(&bytes);
        assert_eq!(s.tests.len(), 1);
        let t = &s.tests[0];
        assert_eq!((t.id.as_str(), t.status.as_str()), ("t.fails", "fail"));
        assert_eq!(t.duration_ms, Some(2000.0));
        assert_eq!(t.details.as_deref(), Some("Traceback: boom"));
    }

    #[test]
    fn several_attachments_are_named_and_success_drops_them() {
        let bytes = stream(&[
            attachment("t.skip", "reason", b"not today"),
            attachment("t.skip", "stdout", b"hello"),
            event("t.skip", Status::Skip, 1),
            attachment("t.ok", "stdout", b"hello"),
            event("t.ok", Status::Success, 1),
        ]);
        let s = parse(&bytes);
        assert_eq!(
            s.tests[0].details.as_deref(),
            Some("reason:\nnot today\nstdout:\nhello")
        );
        assert_eq!(s.tests[1].details, None);
    }

    #[test]
    fn garbage_between_packets_is_output_and_parsing_resyncs() {
        let mut bytes = b"starting\n".to_vec();
        bytes.extend(packet(&event("t.one", Status::Success, 1)));
        // A signature byte followed by junk, and a torn copy of a real packet.
        bytes.extend_from_slice(&[SIGNATURE, 0x20, 0x01, 0xFF, b'!']);
        let torn = packet(&event("t.torn", Status::Success, 1));
        bytes.extend_from_slice(&torn[..torn.len() - 2]);
        bytes.extend(packet(&event("t.two", Status::Fail, 2)));
        let s = parse(&bytes);
        let ids: Vec<&str> = s.tests.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["t.one", "t.two", "subunit.parser"]);
        assert!(s.output.starts_with(b"starting\n"));
        assert_eq!(s.rejected.len(), 2);
        assert_eq!(s.packets, 2);
    }

    #[test]
    fn signature_byte_inside_utf8_text_is_not_a_damaged_packet() {
        let mut bytes = "volume 3 m\u{b3} (\u{b3}\u{2f}s)\n".as_bytes().to_vec();
        bytes.extend(packet(&event("t.one", Status::Success, 1)));
        let s = parse(&bytes);
        assert!(s.rejected.is_empty(), "{:?}", s.rejected);
        assert_eq!(s.tests.len(), 1);
    }

    #[test]
    fn bad_checksum_is_rejected() {
        let mut bytes = packet(&event("t", Status::Success, 1));
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(
            parse_packet(&bytes),
            Err(PacketError::Checksum { .. })
        ));
    }

    #[test]
    fn same_id_twice_is_two_results_and_routes_are_apart() {
        let mut route = event("t.same", Status::InProgress, 1);
        route.route_code = Some("1");
        let bytes = stream(&[
            event("t.same", Status::Success, 1),
            route,
            event("t.same", Status::Fail, 2),
        ]);
        let s = parse(&bytes);
        let statuses: Vec<&str> = s.tests.iter().map(|t| t.status.as_str()).collect();
        // The route-coded one never finished: it is a failure, reported last.
        assert_eq!(statuses, ["success", "fail", "fail"]);
        assert!(s.tests[2].details.as_deref().unwrap().contains("no final"));
    }

    #[test]
    fn exists_is_not_a_result_and_top_level_files_are_ignored() {
        let top = Packet {
            file: Some(("stdout", b"x")),
            ..Packet::default()
        };
        let bytes = stream(&[event("t.listed", Status::Exists, 1), top]);
        let s = parse(&bytes);
        assert!(s.tests.is_empty());
        assert_eq!(s.packets, 2);
    }
}
