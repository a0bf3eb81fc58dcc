//! Gzip request bodies (OTLP/HTTP `Content-Encoding: gzip`), inflated with a
//! bound: a small body that would inflate past `limit` bytes (a "zip bomb")
//! is refused once `limit + 1` bytes are out, never held whole. Concatenated
//! gzip members are read as one body, as HTTP clients may send them.

use std::io::Read;

/// Why a gzip body was refused.
#[derive(Debug, thiserror::Error)]
pub enum GzipError {
    /// The bytes are not a complete gzip stream.
    #[error("cannot decompress gzip body: {0}")]
    Corrupt(#[from] std::io::Error),
    /// The body inflates past the limit.
    #[error("gzip body inflates past {limit} bytes")]
    TooLarge {
        /// The limit it passed.
        limit: usize,
    },
}

/// Inflates `raw` to at most `limit` bytes.
pub fn decompress(raw: &[u8], limit: usize) -> Result<Vec<u8>, GzipError> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(raw)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(GzipError::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn bodies_inflate_up_to_the_limit_and_members_join() {
        let mut two = gzip(b"hello ");
        two.extend(gzip(b"world"));
        assert_eq!(decompress(&two, 11).unwrap(), b"hello world");
        assert!(matches!(
            decompress(&two, 10),
            Err(GzipError::TooLarge { limit: 10 })
        ));
    }

    #[test]
    fn a_bomb_is_refused_without_inflating_it_whole() {
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 256 << 10, "{} bytes", bomb.len());
        assert!(matches!(
            decompress(&bomb, 1 << 20),
            Err(GzipError::TooLarge { .. })
        ));
    }

    #[test]
    fn truncated_and_foreign_bytes_are_corrupt() {
        let body = gzip(b"some telemetry");
        assert!(matches!(
            decompress(&body[..body.len() - 4], 1 << 20),
            Err(GzipError::Corrupt(_))
        ));
        assert!(matches!(
            decompress(b"{\"resourceSpans\":[]}", 1 << 20),
            Err(GzipError::Corrupt(_))
        ));
    }
}
