//! Subunit v2 packets: parsed from a byte stream, non-subunit bytes between them kept as
//! interleaved output, damaged packets resynchronised over.

/// First byte of every subunit v2 packet.
pub const SIGNATURE: u8 = 0xB3;

const VERSION_2: u16 = 0x2;
pub(super) const FLAG_TEST_ID: u16 = 0x0800;
pub(super) const FLAG_ROUTE_CODE: u16 = 0x0400;
pub(super) const FLAG_TIMESTAMP: u16 = 0x0200;
pub(super) const FLAG_RUNNABLE: u16 = 0x0100;
pub(super) const FLAG_TAGS: u16 = 0x0080;
pub(super) const FLAG_FILE_CONTENT: u16 = 0x0040;
pub(super) const FLAG_MIME_TYPE: u16 = 0x0020;
pub(super) const FLAG_EOF: u16 = 0x0010;
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
    pub(super) fn millis_since(self, start: Timestamp) -> f64 {
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
