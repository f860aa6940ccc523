//! A nesting-depth check that runs before the body is parsed.
//!
//! serde_json recurses once per nesting level and stops at 128, with an error that names no
//! field. A body nested deeper than any CDS Hooks request needs is refused here first, in one
//! linear pass without allocation per value, and the answer names where it got too deep.
//! Malformed JSON is not this module's concern: it stops tracking at the first surprise and leaves
//! the error to the parser that follows.

use crate::service::problem::pointer_token;

/// Where the body first exceeds the allowed depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooDeep {
    /// JSON pointer of the container that is one level too deep.
    pub path: String,
    pub max_depth: usize,
}

enum Frame {
    /// `key` is the byte range of the current member name inside the body: names are decoded
    /// only when an error needs them, so the common case allocates nothing per string.
    Object {
        key: Option<(usize, usize)>,
        expecting_key: bool,
    },
    Array {
        index: usize,
    },
}

/// Check that no object or array in `body` is nested more than `max_depth` levels (the top-level
/// value is level 1).
pub fn check(body: &[u8], max_depth: usize) -> Result<(), TooDeep> {
    let mut stack: Vec<Frame> = Vec::with_capacity(16);
    let mut at = 0;
    while at < body.len() {
        match body[at] {
            b'"' => {
                let end = skip_string(body, at);
                if let Some(Frame::Object { key, expecting_key }) = stack.last_mut()
                    && *expecting_key
                {
                    *key = Some((at + 1, end.saturating_sub(1).max(at + 1)));
                    *expecting_key = false;
                }
                at = end;
                continue;
            }
            open @ (b'{' | b'[') => {
                if stack.len() + 1 > max_depth {
                    return Err(TooDeep {
                        path: pointer(body, &stack),
                        max_depth,
                    });
                }
                stack.push(if open == b'{' {
                    Frame::Object {
                        key: None,
                        expecting_key: true,
                    }
                } else {
                    Frame::Array { index: 0 }
                });
            }
            b'}' | b']' if stack.pop().is_none() => return Ok(()),
            b',' => match stack.last_mut() {
                Some(Frame::Object { expecting_key, .. }) => *expecting_key = true,
                Some(Frame::Array { index }) => *index += 1,
                None => return Ok(()),
            },
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

/// The index just after the string that opens at `open_quote` (or the end of the body).
fn skip_string(body: &[u8], open_quote: usize) -> usize {
    let mut at = open_quote + 1;
    while at < body.len() {
        match body[at] {
            b'\\' => at += 2,
            b'"' => return at + 1,
            _ => at += 1,
        }
    }
    body.len()
}

/// A member name as written, with `\"` and `\\` unescaped (other escapes are kept as written:
/// good enough to name a key in an error).
fn member_name(raw: &[u8]) -> String {
    let mut text = Vec::with_capacity(raw.len());
    let mut at = 0;
    while at < raw.len() {
        if raw[at] == b'\\' && at + 1 < raw.len() {
            let escaped = raw[at + 1];
            if escaped != b'"' && escaped != b'\\' {
                text.push(b'\\');
            }
            text.push(escaped);
            at += 2;
        } else {
            text.push(raw[at]);
            at += 1;
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

fn pointer(body: &[u8], stack: &[Frame]) -> String {
    let mut path = String::new();
    for frame in stack {
        path.push('/');
        match frame {
            Frame::Object { key, .. } => {
                let name = key.map(|(start, end)| member_name(&body[start..end]));
                path.push_str(&pointer_token(name.as_deref().unwrap_or("")));
            }
            Frame::Array { index } => path.push_str(&index.to_string()),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        "[".repeat(depth) + &"]".repeat(depth)
    }

    #[test]
    fn depth_at_the_limit_passes_and_one_more_fails() {
        assert_eq!(check(nested(5).as_bytes(), 5), Ok(()));
        assert_eq!(
            check(nested(6).as_bytes(), 5).unwrap_err().path,
            "/0/0/0/0/0"
        );
    }

    #[test]
    fn the_path_names_keys_and_indices() {
        let body = br#"{"hook":"order-sign","context":{"draftOrders":{"entry":[{"a":1},{"resource":{"x":[[1]]}}]}}}"#;
        let err = check(body, 7).unwrap_err();
        assert_eq!(err.path, "/context/draftOrders/entry/1/resource/x/0");
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        let body = br#"{"note":"[[[[[[{{{{{{ \"[[[[","k":{"a/b":[]}}"#;
        assert_eq!(check(body, 3), Ok(()));
        let err = check(br#"{"a\"b":{"c/d":{"e":{}}}}"#, 3).unwrap_err();
        assert_eq!(err.path, "/a\"b/c~1d/e");
    }
}
