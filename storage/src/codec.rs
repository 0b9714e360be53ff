//! The record codec: a value in the store is a serde record encoded with bincode inside a
//! versioned envelope, `[ENVELOPE_V1][schema: u16 LE][bincode payload]`.
//!
//! The bincode configuration is fixed here forever (standard: little-endian, varint integers);
//! every record's bytes are pinned by golden tests next to the record, so a change of shape
//! cannot silently break data already on disk. A change of shape bumps the record's `SCHEMA`
//! and teaches `upgrade` to read the old one. bincode is used only in this file, so moving to
//! another format (postcard is the closest) touches nothing else.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::limits::VALUE_MAX_BYTES;

/// The envelope format this code writes.
pub const ENVELOPE_V1: u8 = 1;
const HEADER_BYTES: usize = 3;

/// A type stored as a value.
pub trait Record: Serialize + DeserializeOwned {
    /// Name used in error messages.
    const KIND: &'static str;
    /// The shape this code writes; bump it when the shape changes.
    const SCHEMA: u16;

    /// Reads a value written with an older `schema`. By default there is none.
    fn upgrade(schema: u16, _payload: &[u8]) -> Result<Self> {
        Err(Error::Codec(format!(
            "{} schema {schema} is not readable by this version",
            Self::KIND
        )))
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<VALUE_MAX_BYTES>()
}

/// Encodes `record` in its envelope.
pub fn encode<R: Record>(record: &R) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    out.push(ENVELOPE_V1);
    out.extend_from_slice(&R::SCHEMA.to_le_bytes());
    bincode::serde::encode_into_std_write(record, &mut out, config())
        .map_err(|e| Error::Codec(format!("cannot encode {}: {e}", R::KIND)))?;
    Ok(out)
}

/// Decodes a value written by [`encode`], upgrading older schemas.
pub fn decode<R: Record>(bytes: &[u8]) -> Result<R> {
    if bytes.len() < HEADER_BYTES || bytes[0] != ENVELOPE_V1 {
        return Err(Error::Codec(format!(
            "{}: not a version-{ENVELOPE_V1} envelope ({} bytes, first byte {:?})",
            R::KIND,
            bytes.len(),
            bytes.first()
        )));
    }
    let schema = u16::from_le_bytes([bytes[1], bytes[2]]);
    let payload = &bytes[HEADER_BYTES..];
    if schema != R::SCHEMA {
        return R::upgrade(schema, payload);
    }
    decode_payload(payload)
}

/// Decodes a bare bincode payload; for `Record::upgrade` implementations reading an old shape.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T> {
    let (value, read) = bincode::serde::decode_from_slice(payload, config())
        .map_err(|e| Error::Codec(format!("{}: {e}", std::any::type_name::<T>())))?;
    if read != payload.len() {
        return Err(Error::Codec(format!(
            "{}: {} trailing bytes",
            std::any::type_name::<T>(),
            payload.len() - read
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Colour {
        Red,
        Custom(String),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        id: u64,
        name: String,
        tags: Vec<String>,
        colour: Colour,
        parent: Option<u32>,
    }

    impl Record for Sample {
        const KIND: &'static str = "sample";
        const SCHEMA: u16 = 2;

        fn upgrade(schema: u16, payload: &[u8]) -> Result<Self> {
            #[derive(Deserialize)]
            struct SampleV1 {
                id: u64,
                name: String,
            }
            match schema {
                1 => {
                    let old: SampleV1 = decode_payload(payload)?;
                    Ok(Sample {
                        id: old.id,
                        name: old.name,
                        tags: vec![],
                        colour: Colour::Red,
                        parent: None,
                    })
                }
                other => Err(Error::Codec(format!("sample schema {other} unknown"))),
            }
        }
    }

    fn sample() -> Sample {
        Sample {
            id: 300,
            name: "job".into(),
            tags: vec!["a".into()],
            colour: Colour::Custom("teal".into()),
            parent: Some(7),
        }
    }

    #[test]
    fn encoding_matches_the_golden_bytes() {
        // Envelope 1, schema 2, then bincode standard: varint 300 = fb 2c 01, strings are
        // length-prefixed, enum variants are varint indices, Some is 1.
        let golden: &[u8] = &[
            1, 2, 0, 0xfb, 0x2c, 0x01, 3, b'j', b'o', b'b', 1, 1, b'a', 1, 4, b't', b'e', b'a',
            b'l', 1, 7,
        ];
        assert_eq!(encode(&sample()).unwrap(), golden);
        assert_eq!(decode::<Sample>(golden).unwrap(), sample());
    }

    #[test]
    fn an_older_schema_is_upgraded() {
        let v1: &[u8] = &[1, 1, 0, 5, 2, b'o', b'k'];
        let s = decode::<Sample>(v1).unwrap();
        assert_eq!((s.id, s.name.as_str(), s.colour), (5, "ok", Colour::Red));
    }

    #[test]
    fn garbage_is_a_codec_error_not_a_panic() {
        for bad in [
            &[][..],
            &[9, 2, 0, 1],
            &[1, 2, 0],
            &[1, 2, 0, 0xff, 0xff],
            &[1, 9, 0, 1],
        ] {
            assert!(
                matches!(decode::<Sample>(bad), Err(Error::Codec(_))),
                "{bad:?}"
            );
        }
        let mut trailing = encode(&sample()).unwrap();
        trailing.push(0);
        assert!(matches!(decode::<Sample>(&trailing), Err(Error::Codec(_))));
    }
}
