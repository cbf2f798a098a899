//! How a delivery's raw body is kept in `event_bodies`. Deliveries of one family — source,
//! kind and scope (repository or project) — are near copies of one another: a Gitea `status`
//! repeats the whole repository, sender and commit, and differs in a few ids and times. So a
//! body is LZ4-compressed against its family's dictionary, an earlier body of the family kept
//! in `body_dictionaries` (`lz4-dict`: a 4 KiB status comes to some 100 bytes); a body of a
//! family with no dictionary yet is LZ4-compressed alone (`lz4`: the same status comes to
//! 1.9 KiB); a body compression would not make smaller is kept as it came (`identity`).
//! Encoding runs on the caller's thread, never on the writer's.

use orchestrator_actors::ports::StoreError;

/// A body ready to store: how it is encoded, the bytes, and the dictionary they need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredBody {
    pub encoding: &'static str,
    pub bytes: Vec<u8>,
    /// The id of the dictionary an `lz4-dict` body was compressed against.
    pub dictionary: Option<i64>,
}

/// An earlier body of a family, that later ones are compressed against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Dictionary {
    /// Its row in `body_dictionaries`.
    pub id: i64,
    /// The body, as received.
    pub bytes: Vec<u8>,
    /// When it was made (unix ms).
    pub created_ms: i64,
}

/// As received.
const IDENTITY: &str = "identity";
/// An LZ4 block with the decoded size first, as a little-endian `u32`.
const LZ4: &str = "lz4";
/// The same, compressed against the dictionary `event_bodies.dictionary_id` names.
const LZ4_DICT: &str = "lz4-dict";
/// The largest decoded size believed: well above the intake's 1 MiB body limit, far below
/// what a corrupt size could make us allocate.
const MAX_DECODED: usize = 64 << 20;
/// The largest body that becomes a dictionary: LZ4 looks back no further than this.
pub(crate) const MAX_DICTIONARY: usize = 64 << 10;

impl StoredBody {
    /// `raw` encoded the cheapest way to keep, against `dictionary` when there is one.
    pub fn encode(raw: &[u8], dictionary: Option<&Dictionary>) -> Self {
        let (encoding, compressed, dictionary) = match dictionary {
            Some(d) => (
                LZ4_DICT,
                lz4_flex::block::compress_prepend_size_with_dict(raw, &d.bytes),
                Some(d.id),
            ),
            None => (LZ4, lz4_flex::compress_prepend_size(raw), None),
        };
        if compressed.len() < raw.len() {
            Self {
                encoding,
                bytes: compressed,
                dictionary,
            }
        } else {
            Self {
                encoding: IDENTITY,
                bytes: raw.to_vec(),
                dictionary: None,
            }
        }
    }
}

/// The raw body of event `id` back from its stored `encoding`, given the body of the
/// dictionary it names, if it names one.
pub(crate) fn decode(
    id: i64,
    encoding: &str,
    bytes: Vec<u8>,
    dictionary: Option<&[u8]>,
) -> Result<Vec<u8>, StoreError> {
    let corrupt = |why: String| StoreError::Corrupt(format!("the body of event {id}: {why}"));
    match encoding {
        IDENTITY => Ok(bytes),
        LZ4 => {
            let (size, block) = sized(&bytes).map_err(corrupt)?;
            lz4_flex::decompress(block, size).map_err(|e| corrupt(format!("lz4: {e}")))
        }
        LZ4_DICT => {
            let dictionary = dictionary
                .ok_or_else(|| corrupt("an lz4-dict body whose dictionary is missing".into()))?;
            let (size, block) = sized(&bytes).map_err(corrupt)?;
            lz4_flex::block::decompress_with_dict(block, size, dictionary)
                .map_err(|e| corrupt(format!("lz4 against its dictionary: {e}")))
        }
        other => Err(corrupt(format!("unknown encoding {other:?}"))),
    }
}

/// An LZ4 body's decoded size and its block; why not, when its size is missing or too large
/// to believe.
fn sized(bytes: &[u8]) -> Result<(usize, &[u8]), String> {
    let (size, block) = bytes
        .split_first_chunk::<4>()
        .ok_or("an lz4 body shorter than its size")?;
    let size = u32::from_le_bytes(*size) as usize;
    if size > MAX_DECODED {
        return Err(format!(
            "an lz4 body claims {size} bytes, above the {MAX_DECODED} believed"
        ));
    }
    Ok((size, block))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An indented status body of build `n`, some 0.3 KiB.
    fn status(n: u32) -> Vec<u8> {
        serde_json::to_vec_pretty(&serde_json::json!({
            "repository": {"full_name": "acme/app", "owner": {"login": "acme"}},
            "sender": {"login": "ci", "full_name": "", "email": "ci@example.com"},
            "state": "success", "description": format!("build #{n}"),
            "target_url": format!("http://ci/builds/{n}")
        }))
        .unwrap()
    }

    fn dictionary(bytes: Vec<u8>) -> Dictionary {
        Dictionary {
            id: 3,
            bytes,
            created_ms: 0,
        }
    }

    #[test]
    fn a_body_comes_back_as_it_was_whichever_way_it_was_kept() {
        let family = dictionary(status(1));
        let stranger = dictionary(b"nothing alike".to_vec());
        let cases = [
            (status(2), None, LZ4),
            (status(2), Some(&family), LZ4_DICT),
            (status(2), Some(&stranger), LZ4_DICT),
            (b"{}".to_vec(), None, IDENTITY),
            (b"{}".to_vec(), Some(&family), IDENTITY),
            (Vec::new(), None, IDENTITY),
        ];
        for (raw, dictionary, encoding) in cases {
            let stored = StoredBody::encode(&raw, dictionary);
            assert_eq!(stored.encoding, encoding, "{raw:?}");
            assert_eq!(
                stored.dictionary,
                dictionary.filter(|_| encoding == LZ4_DICT).map(|d| d.id)
            );
            let bytes = dictionary.map(|d| d.bytes.as_slice());
            assert_eq!(
                decode(1, stored.encoding, stored.bytes, bytes).unwrap(),
                raw
            );
        }
    }

    #[test]
    fn a_body_of_its_dictionary_s_family_keeps_a_few_bytes() {
        let (raw, family) = (status(2), dictionary(status(1)));
        let alone = StoredBody::encode(&raw, None);
        let against = StoredBody::encode(&raw, Some(&family));
        assert!(against.bytes.len() * 4 < alone.bytes.len(), "{against:?}");
    }

    #[test]
    fn a_damaged_body_is_named_not_believed() {
        let mut stored = StoredBody::encode(&[b'a'; 300], None).bytes;
        let family = dictionary(status(1));
        let against = StoredBody::encode(&status(2), Some(&family)).bytes;
        let cases = [
            (LZ4, vec![1, 0], None, "shorter than its size"),
            (LZ4, vec![0xff, 0xff, 0xff, 0x7f, 0], None, "above the"),
            (
                LZ4,
                {
                    stored.truncate(stored.len() - 1);
                    stored
                },
                None,
                "lz4:",
            ),
            (LZ4_DICT, against.clone(), None, "dictionary is missing"),
            (LZ4_DICT, vec![1, 0], Some(&[][..]), "shorter than its size"),
            (
                LZ4_DICT,
                against,
                Some(&[][..]),
                "lz4 against its dictionary:",
            ),
            ("gzip", b"x".to_vec(), None, "unknown encoding \"gzip\""),
        ];
        for (encoding, bytes, dictionary, why) in cases {
            let err = decode(7, encoding, bytes, dictionary)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("the body of event 7") && err.contains(why),
                "{err}"
            );
        }
    }
}
