//! Request bodies sent compressed (`Content-Encoding: gzip` or `deflate`,
//! as Node's fetch, axios or a proxy may send them), decoded with flate2
//! under the same size cap as a plain body: a small compressed bomb is
//! refused as too large, never inflated in memory.

use bytes::Bytes;
use std::io::Read;

/// A body's content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCoding {
    Identity,
    Gzip,
    /// HTTP's `deflate` is zlib-wrapped (RFC 9110); raw deflate, which
    /// some clients send under that name, is accepted too.
    Deflate,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodingError {
    #[error("content encoding \"{0}\" is not supported (send gzip, deflate or no encoding)")]
    Unsupported(String),
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("decoded body exceeds the size limit")]
    TooLarge,
    #[error("body is not valid {coding}: {reason}")]
    Invalid { coding: &'static str, reason: String },
}

impl ContentCoding {
    /// Reads a `Content-Encoding` header (one coding; `identity` or none
    /// means the body is as sent).
    pub fn parse(header: Option<&str>) -> Result<ContentCoding, CodingError> {
        let codings: Vec<String> = header
            .unwrap_or("")
            .split(',')
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty() && c != "identity")
            .collect();
        match codings.as_slice() {
            [] => Ok(ContentCoding::Identity),
            [one] if one == "gzip" || one == "x-gzip" => Ok(ContentCoding::Gzip),
            [one] if one == "deflate" => Ok(ContentCoding::Deflate),
            _ => Err(CodingError::Unsupported(crate::text::truncate_chars(header.unwrap_or(""), 100))),
        }
    }

    /// The decoded body, at most `limit` bytes.
    pub fn decode(self, body: Bytes, limit: u64) -> Result<Bytes, DecodeError> {
        match self {
            ContentCoding::Identity => Ok(body),
            ContentCoding::Gzip => inflate(flate2::read::MultiGzDecoder::new(&body[..]), limit, "gzip"),
            ContentCoding::Deflate => inflate(flate2::read::ZlibDecoder::new(&body[..]), limit, "deflate")
                .or_else(|_| inflate(flate2::read::DeflateDecoder::new(&body[..]), limit, "deflate")),
        }
    }
}

fn inflate(decoder: impl Read, limit: u64, coding: &'static str) -> Result<Bytes, DecodeError> {
    let mut out = Vec::new();
    decoder
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Invalid { coding, reason: e.to_string() })?;
    if out.len() as u64 > limit {
        return Err(DecodeError::TooLarge);
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap().into()
    }

    #[test]
    fn codings_are_read_from_the_header() {
        assert_eq!(ContentCoding::parse(None), Ok(ContentCoding::Identity));
        assert_eq!(ContentCoding::parse(Some("identity")), Ok(ContentCoding::Identity));
        assert_eq!(ContentCoding::parse(Some("GZIP")), Ok(ContentCoding::Gzip));
        assert_eq!(ContentCoding::parse(Some("deflate")), Ok(ContentCoding::Deflate));
        assert_eq!(
            ContentCoding::parse(Some("br")).unwrap_err().to_string(),
            "content encoding \"br\" is not supported (send gzip, deflate or no encoding)"
        );
        assert!(ContentCoding::parse(Some("gzip, gzip")).is_err());
    }

    #[test]
    fn both_deflate_flavours_and_gzip_decode_within_the_limit() {
        let data = b"{\"event\": \"canceled\"}";
        assert_eq!(&ContentCoding::Gzip.decode(gzip(data), 100).unwrap()[..], data);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(data).unwrap();
        assert_eq!(&ContentCoding::Deflate.decode(z.finish().unwrap().into(), 100).unwrap()[..], data);
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(data).unwrap();
        assert_eq!(&ContentCoding::Deflate.decode(raw.finish().unwrap().into(), 100).unwrap()[..], data);
        let bomb = gzip(&vec![b' '; 10_000_000]);
        assert!(bomb.len() < 20_000);
        assert!(matches!(ContentCoding::Gzip.decode(bomb, 262_144), Err(DecodeError::TooLarge)));
        assert!(matches!(
            ContentCoding::Gzip.decode(Bytes::from_static(b"nope"), 100),
            Err(DecodeError::Invalid { .. })
        ));
    }
}
