//! How a delivery's raw body is kept in `event_bodies`: LZ4-compressed when that makes it
//! smaller (a Gitea body of indented JSON shrinks about 2.2×, to well under a page), as it
//! came otherwise. Encoding runs on the caller's thread, never on the writer's.

use orchestrator_actors::ports::StoreError;

/// A body ready to store: how it is encoded, and the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredBody {
    pub encoding: &'static str,
    pub bytes: Vec<u8>,
}

/// As received.
const IDENTITY: &str = "identity";
/// An LZ4 block with the decoded size first, as a little-endian `u32`.
const LZ4: &str = "lz4";
/// The largest decoded size believed: well above the intake's 1 MiB body limit, far below
/// what a corrupt size could make us allocate.
const MAX_DECODED: usize = 64 << 20;

impl StoredBody {
    /// `raw` encoded the cheaper way to keep.
    pub fn encode(raw: &[u8]) -> Self {
        let compressed = lz4_flex::compress_prepend_size(raw);
        if compressed.len() < raw.len() {
            Self {
                encoding: LZ4,
                bytes: compressed,
            }
        } else {
            Self {
                encoding: IDENTITY,
                bytes: raw.to_vec(),
            }
        }
    }
}

/// The raw body of event `id` back from its stored `encoding`.
pub(crate) fn decode(id: i64, encoding: &str, bytes: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    let corrupt = |why: String| StoreError::Corrupt(format!("the body of event {id}: {why}"));
    match encoding {
        IDENTITY => Ok(bytes),
        LZ4 => {
            let (size, block) = bytes
                .split_first_chunk::<4>()
                .ok_or_else(|| corrupt("an lz4 body shorter than its size".into()))?;
            let size = u32::from_le_bytes(*size) as usize;
            if size > MAX_DECODED {
                return Err(corrupt(format!(
                    "an lz4 body claims {size} bytes, above the {MAX_DECODED} believed"
                )));
            }
            lz4_flex::decompress(block, size).map_err(|e| corrupt(format!("lz4: {e}")))
        }
        other => Err(corrupt(format!("unknown encoding {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_comes_back_as_it_was_whichever_way_it_was_kept() {
        let indented = serde_json::to_vec_pretty(&serde_json::json!({
            "repository": {"full_name": "acme/app", "owner": {"login": "acme"}},
            "sender": {"login": "ci", "full_name": "", "email": "ci@example.com"},
            "state": "success", "description": "", "target_url": ""
        }))
        .unwrap();
        let tiny = b"{}".to_vec();
        for (raw, encoding) in [(indented, LZ4), (tiny, IDENTITY), (Vec::new(), IDENTITY)] {
            let stored = StoredBody::encode(&raw);
            assert_eq!(stored.encoding, encoding, "{raw:?}");
            assert_eq!(decode(1, stored.encoding, stored.bytes).unwrap(), raw);
        }
    }

    #[test]
    fn a_damaged_body_is_named_not_believed() {
        let mut stored = StoredBody::encode(&[b'a'; 300]).bytes;
        let cases = [
            (LZ4, vec![1, 0], "shorter than its size"),
            (LZ4, vec![0xff, 0xff, 0xff, 0x7f, 0], "above the"),
            (
                LZ4,
                {
                    stored.truncate(stored.len() - 1);
                    stored
                },
                "lz4:",
            ),
            ("gzip", b"x".to_vec(), "unknown encoding \"gzip\""),
        ];
        for (encoding, bytes, why) in cases {
            let err = decode(7, encoding, bytes).unwrap_err().to_string();
            assert!(
                err.contains("the body of event 7") && err.contains(why),
                "{err}"
            );
        }
    }
}
