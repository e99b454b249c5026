//! Keeps passwords written into URLs (`https://user:password@host/...`, a
//! repoURL with credentials) out of every JSON and event-stream answer: the
//! password becomes `******`. Not the place for Secrets' values (the diff
//! masks those) nor for what the engine logs.

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use futures::StreamExt;

/// What a redacted password reads as.
const MASK: &[u8] = b"******";

/// The answer with the password of every URL in it masked (JSON and event
/// streams; other answers as they are). Each chunk is redacted on its own:
/// the API writes whole documents or list items per chunk.
pub(crate) async fn redact_response(response: Response) -> Response {
    let textual = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/event-stream"));
    if !textual {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let stream = body
        .into_data_stream()
        .map(|chunk| chunk.map(|bytes| redact(&bytes)));
    Response::from_parts(parts, Body::from_stream(stream))
}

/// `text` with the password of each `scheme://user:password@` masked.
fn redact(text: &Bytes) -> Bytes {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = find(&text[at..], b"://") {
        let start = at + found + 3;
        // The authority ends at the first `/`, `"`, `\`, blank, `?` or `#`.
        let end = text[start..]
            .iter()
            .position(|b| matches!(b, b'/' | b'"' | b'\\' | b'?' | b'#') || b.is_ascii_whitespace())
            .map_or(text.len(), |n| start + n);
        let authority = &text[start..end];
        if let Some(user_end) = authority.iter().rposition(|b| *b == b'@')
            && let Some(colon) = authority[..user_end].iter().position(|b| *b == b':')
            && &authority[colon + 1..user_end] != MASK
        {
            let out = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
            out.extend_from_slice(&text[copied..start + colon + 1]);
            out.extend_from_slice(MASK);
            copied = start + user_end;
        }
        at = end.max(start);
    }
    match out {
        None => text.clone(),
        Some(mut out) => {
            out.extend_from_slice(&text[copied..]);
            Bytes::from(out)
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str) -> String {
        String::from_utf8(redact(&Bytes::from(text.to_string())).to_vec()).expect("UTF-8")
    }

    #[test]
    fn passwords_in_urls_are_masked_and_nothing_else_changes() {
        assert_eq!(
            masked(r#"{"repoURL":"https://plumb:s3cr3t@git.example/r.git","b":"http://x:1@h"}"#),
            r#"{"repoURL":"https://plumb:******@git.example/r.git","b":"http://x:******@h"}"#
        );
        for same in [
            r#"{"repoURL":"https://git.example:8443/r.git"}"#,
            r#"{"u":"https://user@git.example/r.git","t":"a://"}"#,
            "no url at all",
            "ssh://git@host:22/r.git",
        ] {
            assert_eq!(masked(same), same);
        }
        // A password with a `@` in it: the last `@` ends the user info.
        assert_eq!(masked("https://u:p@ss@h/x"), "https://u:******@h/x");
    }
}
