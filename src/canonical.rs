//! Canonical JSON bytes (RFC 8785 style): object keys sorted by their UTF-16 code units, no
//! insignificant white space, numbers in their shortest round-trip form, strings escaped
//! minimally. Used wherever a hash must be recomputed later from what was stored: the pathway
//! content hash and the audit log's hash chain. PostgreSQL's jsonb rewrites keys and white
//! space, so hashes are always taken over these bytes, never over jsonb text.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The canonical bytes of a JSON value.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out);
    out
}

/// Hex SHA-256 of the canonical bytes.
pub fn sha256_hex(value: &Value) -> String {
    hex::encode(Sha256::digest(to_vec(value)))
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // RFC 8785 sorts by UTF-16 code units, which differs from UTF-8 byte order only
            // for characters outside the Basic Multilingual Plane.
            entries.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, out);
            }
            out.push(b'}');
        }
    }
}

fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) {
    if let Some(i) = n.as_i64() {
        out.extend_from_slice(i.to_string().as_bytes());
    } else if let Some(u) = n.as_u64() {
        out.extend_from_slice(u.to_string().as_bytes());
    } else if let Some(f) = n.as_f64() {
        // ECMAScript number formatting: integral floats print without a fraction.
        if f.fract() == 0.0 && f.abs() < 1e21 {
            out.extend_from_slice(format!("{}", f as i128).as_bytes());
        } else {
            out.extend_from_slice(format!("{f}").as_bytes());
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0C}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v: Value = serde_json::from_str(
            r#"{ "b": 1, "a": [true, null, "x\n"], "c": {"z": 1.5, "y": 2.0} }"#,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(to_vec(&v)).unwrap(),
            r#"{"a":[true,null,"x\n"],"b":1,"c":{"y":2,"z":1.5}}"#
        );
    }

    #[test]
    fn same_content_same_hash_whatever_the_layout() {
        let a: Value = serde_json::from_str(r#"{"x":1,"y":[1,2]}"#).unwrap();
        let b: Value = serde_json::from_str("{\n  \"y\": [1, 2],\n  \"x\": 1\n}").unwrap();
        assert_eq!(sha256_hex(&a), sha256_hex(&b));
        assert_ne!(sha256_hex(&a), sha256_hex(&json!({"x": 2, "y": [1, 2]})));
    }

    #[test]
    fn escapes_control_characters() {
        assert_eq!(to_vec(&json!("\u{1}é")), "\"\\u0001é\"".as_bytes());
    }
}
