//! A subunit v2 stream folded into one final result per reported test, the way
//! python-subunit's `StreamResult` consumers do.

use std::collections::HashMap;

use super::packet::{Item, Packet, PacketError, Reader, Status, Timestamp};
use crate::workspace::evidence::TestCase;

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

#[cfg(test)]
mod tests {
    use super::super::packet::{SIGNATURE, crc32, parse_packet};
    use super::super::write::packet;
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
