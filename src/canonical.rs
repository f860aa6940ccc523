//! Canonical JSON bytes in the style of RFC 8785 (JSON Canonicalization Scheme), shared by the
//! pathway content hash and the audit log's hash chain.
//!
//! The audit log hashes what it stores, and PostgreSQL's `jsonb` rewrites key order, whitespace
//! and number spelling, so hashes are computed over these canonical bytes instead: object members
//! sorted by their UTF-16 code units, no insignificant whitespace, strings with the minimal
//! escapes, and numbers spelt like ECMAScript's `Number.prototype.toString`.
//!
//! One deliberate difference from RFC 8785: integers that serde_json holds exactly (`i64` /
//! `u64`) are written exactly, even beyond 2^53, where a JavaScript implementation would round.
//! Nothing we store comes near that range; exactness is the safer failure. Duplicate object keys
//! cannot occur because the input is an already-parsed [`serde_json::Value`].

use serde_json::{Map, Number, Value};

/// The canonical bytes of a JSON value.
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, value);
    out
}

/// Hex SHA-256 of the canonical bytes (the pathway content hash).
pub fn sha256_hex(value: &Value) -> String {
    bytes_sha256_hex(&to_vec(value))
}

/// Hex SHA-256 of bytes already canonical (a stored pathway's content).
pub fn bytes_sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Parses JSON text and returns its canonical bytes.
pub fn canonicalize(json: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let value: Value = serde_json::from_slice(json)?;
    Ok(to_vec(&value))
}

/// Canonical bytes of anything serializable.
pub fn to_canonical_vec<T: serde::Serialize + ?Sized>(
    value: &T,
) -> Result<Vec<u8>, serde_json::Error> {
    Ok(to_vec(&serde_json::to_value(value)?))
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>) {
    // RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their names. Without
    // characters above U+FFFF (4-byte UTF-8 sequences, lead byte 0xF0..) UTF-16 order is code
    // point order, which is UTF-8 byte order: serde_json's map (a BTreeMap) already iterates in
    // it, so the common case writes straight through. Anything else is sorted.
    let mut previous: Option<&str> = None;
    let in_order = map.keys().all(|key| {
        let ok = !key.bytes().any(|b| b >= 0xF0) && previous.is_none_or(|p| p < key.as_str());
        previous = Some(key);
        ok
    });
    out.push(b'{');
    if in_order {
        for (i, (key, value)) in map.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_string(out, key);
            out.push(b':');
            write_value(out, value);
        }
    } else {
        let mut members: Vec<(Vec<u16>, &String, &Value)> = map
            .iter()
            .map(|(k, v)| (k.encode_utf16().collect(), k, v))
            .collect();
        members.sort_by(|a, b| a.0.cmp(&b.0));
        for (i, (_, key, value)) in members.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_string(out, key);
            out.push(b':');
            write_value(out, value);
        }
    }
    out.push(b'}');
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    // Runs of bytes that need no escape are copied whole; only `"`, `\` and controls are
    // escaped (multi-byte UTF-8 never contains a byte below 0x80, so it is copied as is).
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{:04x}", b).as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_number(out: &mut Vec<u8>, n: &Number) {
    use std::io::Write;
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        out.extend_from_slice(ecmascript_number(f).as_bytes());
    } else {
        // Only reachable with serde_json's arbitrary_precision, which we do not enable.
        out.extend_from_slice(n.to_string().as_bytes());
    }
}

/// ECMAScript `Number.prototype.toString` for a finite double (ECMA-262 §7.1.12.1), which
/// RFC 8785 adopts. Rust's `{:e}` gives the shortest round-tripping digits; only the layout is
/// ECMAScript's.
pub fn ecmascript_number(f: f64) -> String {
    if f == 0.0 {
        return "0".to_owned(); // also -0
    }
    if !f.is_finite() {
        // serde_json cannot hold these; keep the function total anyway.
        return "null".to_owned();
    }
    let sign = if f < 0.0 { "-" } else { "" };
    let sci = format!("{:e}", f.abs());
    let (mantissa, exponent) = sci
        .split_once('e')
        .expect("LowerExp always has an exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exponent: i32 = exponent.parse().expect("LowerExp exponent is an integer");
    let k = digits.len() as i32;
    let n = exponent + 1; // position of the decimal point relative to the digits
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let e_sign = if e < 0 { '-' } else { '+' };
        if k == 1 {
            format!("{digits}e{e_sign}{}", e.abs())
        } else {
            format!("{}.{}e{e_sign}{}", &digits[..1], &digits[1..], e.abs())
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(text: &str) -> String {
        String::from_utf8(canonicalize(text.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn numbers_are_spelt_like_ecmascript() {
        // Expected spellings from RFC 8785 Appendix B and ECMAScript.
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (9007199254740992.0, "9007199254740992"),
            (295147905179352830000.0, "295147905179352830000"),
            (333333333.3333333, "333333333.3333333"),
            (4.5, "4.5"),
            (2e-3, "0.002"),
            (0.000001234, "0.000001234"),
            (1.234e-7, "1.234e-7"),
        ];
        for (value, expected) in cases {
            assert_eq!(ecmascript_number(*value), *expected, "{value:e}");
        }
    }

    #[test]
    fn members_are_sorted_and_whitespace_dropped() {
        assert_eq!(
            canon(r#"{ "b": 1, "a": [true, null, "x"] }"#),
            r#"{"a":[true,null,"x"],"b":1}"#
        );
        // RFC 8785 §3.2.3 sorting example: by UTF-16 code units, not by bytes.
        let sorted = canon(
            r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#,
        );
        assert_eq!(
            sorted,
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
             \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
             \"\u{1f600}\":\"Emoji: Grinning Face\",\
             \"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}"
        );
    }

    /// The plain reading of RFC 8785 (every object sorted by UTF-16 code units, every character
    /// looked at), to check the fast paths against.
    fn reference(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let mut members: Vec<(Vec<u16>, &String, &Value)> = map
                    .iter()
                    .map(|(k, v)| (k.encode_utf16().collect(), k, v))
                    .collect();
                members.sort_by(|a, b| a.0.cmp(&b.0));
                let inner: Vec<String> = members
                    .into_iter()
                    .map(|(_, k, v)| format!("{}:{}", reference_string(k), reference(v)))
                    .collect();
                format!("{{{}}}", inner.join(","))
            }
            Value::Array(items) => {
                let inner: Vec<String> = items.iter().map(reference).collect();
                format!("[{}]", inner.join(","))
            }
            Value::String(s) => reference_string(s),
            other => String::from_utf8(to_vec(other)).unwrap(),
        }
    }

    fn reference_string(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    fn tricky_text() -> impl proptest::strategy::Strategy<Value = String> {
        // ASCII, quotes and controls, 2- and 3-byte characters either side of U+E000, and
        // characters above U+FFFF, whose UTF-16 order differs from their byte order.
        proptest::collection::vec(
            proptest::sample::select(vec![
                'a',
                'b',
                'Z',
                '1',
                '"',
                '\\',
                '\n',
                '\u{1}',
                '\u{1f}',
                '\u{7f}',
                'é',
                '\u{20ac}',
                '\u{e000}',
                '\u{fb33}',
                '\u{ffff}',
                '\u{10000}',
                '\u{1f600}',
            ]),
            0..6,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn fast_paths_write_what_rfc_8785_says(
            members in proptest::collection::btree_map(tricky_text(), tricky_text(), 0..8),
            nested in proptest::collection::btree_map(tricky_text(), 0i64..1000, 0..4),
        ) {
            let mut map: serde_json::Map<String, Value> =
                members.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            map.insert("nested".into(), json!([nested, {"x": 1.5}]));
            let value = Value::Object(map);
            prop_assert_eq!(String::from_utf8(to_vec(&value)).unwrap(), reference(&value));
        }
    }

    #[test]
    fn strings_use_minimal_escapes() {
        let value = json!({"s": "a\"b\\c\u{1}\u{1f}\n\t\u{7f}\u{2028}é/"});
        assert_eq!(
            String::from_utf8(to_vec(&value)).unwrap(),
            "{\"s\":\"a\\\"b\\\\c\\u0001\\u001f\\n\\t\u{7f}\u{2028}é/\"}"
        );
    }

    #[test]
    fn integers_stay_exact_and_floats_with_integral_values_lose_their_point() {
        assert_eq!(
            canon("[18446744073709551615, -9223372036854775808, 3.0, 1E2]"),
            "[18446744073709551615,-9223372036854775808,3,100]"
        );
    }

    #[test]
    fn jsonb_style_respelling_does_not_change_the_bytes() {
        // PostgreSQL returns numeric spellings like 3200.0 or 0.0000001; the canonical bytes of
        // what we wrote and of what we read back must agree.
        assert_eq!(
            canon(r#"{"x":3200.0,"y":1e-7}"#),
            canon(r#"{"y":0.0000001,"x":3200}"#)
        );
    }
}
