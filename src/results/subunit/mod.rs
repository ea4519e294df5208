//! Native subunit v2 reader: packets parsed from a byte stream (non-subunit bytes between
//! them kept as interleaved output, damaged packets resynchronised over) and folded into one
//! final result per reported test, the way python-subunit's `StreamResult` consumers do.

mod fold;
mod packet;
pub mod write;

pub use fold::{Stream, parse};
pub use packet::{
    Item, Packet, PacketError, Reader, SIGNATURE, Status, Timestamp, crc32, parse_packet,
};
