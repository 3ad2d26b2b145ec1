//! The one scrubber every message passes before it reaches output, logs,
//! run history or the cache, and the one escaper of text shown to a person.
//!
//! Guarantees:
//! - [`scrub`] removes every secret [`register`]ed in this process (the
//!   token, and the Basic header's base64 of `email:token`), and the value
//!   of any `Authorization` header or `Basic`/`Bearer` credential a server
//!   echoes back, whoever registered what.
//! - [`for_terminal`] escapes control characters (ESC, newlines, bidi
//!   overrides) in a string shown to a person, so a server cannot move the
//!   cursor, fake lines or reverse text on the user's terminal.

use std::borrow::Cow;
use std::sync::RwLock;

use aho_corasick::{AhoCorasick, MatchKind};

/// What a removed secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// The secrets of this process, and the two matchers built from them.
struct Secrets {
    /// Every secret registered, in the order registered.
    list: Vec<String>,
    /// All of them, for messages: ASCII case-insensitive (a server may
    /// echo a token upper-cased), leftmost-longest.
    in_messages: Option<AhoCorasick>,
    /// Those of [`DATA_SECRET_MIN`] characters or more, for data.
    in_data: Option<AhoCorasick>,
    /// The same, as written, upper- and lower-cased: a SIMD search
    /// (Teddy), about ten times as fast as [`Secrets::in_data`] (2 ms
    /// against 21-35 ms per 27 MB of issue JSON), that tells whether the
    /// replacement must run at all.
    data_probe: Option<aho_corasick::packed::Searcher>,
    /// The longest of those, in bytes.
    longest_in_data: usize,
}

static SECRETS: RwLock<Secrets> = RwLock::new(Secrets {
    list: Vec::new(),
    in_messages: None,
    in_data: None,
    data_probe: None,
    longest_in_data: 0,
});

fn matcher<'a>(patterns: impl Iterator<Item = &'a String>) -> Option<AhoCorasick> {
    let patterns: Vec<&String> = patterns.collect();
    if patterns.is_empty() {
        return None;
    }
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(patterns)
        .ok()
}

/// Remembers a secret of this process: every later [`scrub`] removes it
/// in any ASCII case, and [`remove_secrets_from_data`] (when it is long
/// enough) as written, upper- or lower-cased. Both also remove the forms a
/// site may echo it in: percent-encoded (as in a URL or a form, `/` left
/// as it is or not) and, in data, escaped inside a JSON string. Secrets
/// shorter than 4 characters are not registered (they would redact
/// ordinary words); such a token is no secret anyway.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.chars().count() < 4 {
        return;
    }
    let mut forms = vec![secret.to_string()];
    for keep in [&b""[..], b"/"] {
        forms.push(percent_encoded(secret, keep, false));
        forms.push(percent_encoded(secret, keep, true));
    }
    forms.sort();
    forms.dedup();
    let mut all = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    let before = all.list.len();
    for form in forms {
        if !all.list.contains(&form) {
            all.list.push(form);
        }
    }
    if all.list.len() != before {
        all.in_messages = matcher(all.list.iter());
        all.in_data = matcher(all.list.iter().filter(|s| s.len() >= DATA_SECRET_MIN));
        let mut cased: Vec<String> = Vec::new();
        for form in all.list.iter().filter(|s| s.len() >= DATA_SECRET_MIN) {
            for variant in [
                form.clone(),
                form.to_ascii_lowercase(),
                form.to_ascii_uppercase(),
            ] {
                if !cased.contains(&variant) {
                    cased.push(variant);
                }
            }
        }
        all.data_probe = match cased.is_empty() {
            true => None,
            false => aho_corasick::packed::Config::new()
                .builder()
                .extend(cased.iter())
                .build(),
        };
        all.longest_in_data = all
            .list
            .iter()
            .map(String::len)
            .filter(|&n| n >= DATA_SECRET_MIN)
            .max()
            .unwrap_or(0);
    }
}

/// `s` with every byte but RFC 3986's unreserved ones and `keep` as `%XX`;
/// with `form`, a space as `+` (HTML forms).
fn percent_encoded(s: &str, keep: &[u8], form: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || keep.contains(&b)
        {
            out.push(char::from(b));
        } else if form && b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Secrets at least this long are also removed from data (a site's
/// answers, before they are cached or passed on); shorter ones only from
/// messages, since in data they would match ordinary words. No Jira token
/// is shorter: Cloud's API tokens and Data Center's personal access tokens
/// are tens of characters.
pub const DATA_SECRET_MIN: usize = 12;

/// Replaces every registered secret of [`DATA_SECRET_MIN`] characters or
/// more in `data` (a site's answer) with [`REDACTED`], as registered or
/// upper- or lower-cased, and inside JSON strings also when escaped
/// (`\u0074ok`, `tok\/en`): a site that echoes the credentials it got
/// must not get them cached or shown, and any JSON reader would decode the
/// escapes back. Data holding no secret, the usual case, is left as it is
/// after one search, plus two for `\u` and `\/`; only a body holding one
/// of those has its escaped strings decoded.
pub fn remove_secrets_from_data(data: &mut Vec<u8>) {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let Some(matcher) = &secrets.in_data else {
        return;
    };
    plain_secrets_removed(&secrets, matcher, data);
    let escapes = memchr::memmem::find(data, b"\\u").is_some()
        || memchr::memmem::find(data, b"\\/").is_some();
    if escapes && let Some(clean) = escaped_secrets_removed(data, matcher) {
        *data = clean;
    }
}

/// [`remove_secrets_from_data`] without its look inside JSON escapes: for
/// the part of a streamed answer already past the point where it could be
/// held whole, where a JSON string's opening quote may have gone out in an
/// earlier chunk.
pub fn remove_plain_secrets_from_data(data: &mut Vec<u8>) {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    if let Some(matcher) = &secrets.in_data {
        plain_secrets_removed(&secrets, matcher, data);
    }
}

fn plain_secrets_removed(secrets: &Secrets, matcher: &AhoCorasick, data: &mut Vec<u8>) {
    let found = match &secrets.data_probe {
        Some(probe) => probe.find(data.as_slice()).is_some(),
        // No SIMD here, or too many forms: the slower search.
        None => matcher.is_match(data.as_slice()),
    };
    if found {
        *data =
            matcher.replace_all_bytes(data, &[REDACTED.as_bytes()].repeat(matcher.patterns_len()));
    }
}

/// A JSON string literal (quotes included) decoded as a lenient reader
/// (Python's `json`, JavaScript's `JSON.parse`) would, except that a lone
/// surrogate becomes U+FFFD; `None` for an escape no reader takes.
/// serde_json refuses lone surrogates, which would let `"\ud800 <token>"`
/// pass unlooked-at.
fn lenient_json_string(quoted: &[u8]) -> Option<String> {
    let inner = quoted.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let mut out = String::with_capacity(inner.len());
    let mut raw = Vec::new();
    let mut i = 0;
    let hex4 = |at: usize| -> Option<u32> {
        let digits = inner.get(at..at + 4)?;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    while i < inner.len() {
        if inner[i] != b'\\' {
            raw.push(inner[i]);
            i += 1;
            continue;
        }
        out.push_str(&String::from_utf8_lossy(&raw));
        raw.clear();
        let escape = *inner.get(i + 1)?;
        i += 2;
        let c = match escape {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = hex4(i)?;
                i += 4;
                if (0xD800..0xDC00).contains(&unit)
                    && inner.get(i..i + 2) == Some(&b"\\u"[..])
                    && let Some(low) = hex4(i + 2).filter(|l| (0xDC00..0xE000).contains(l))
                {
                    i += 6;
                    char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                        .unwrap_or('\u{fffd}')
                } else {
                    char::from_u32(unit).unwrap_or('\u{fffd}')
                }
            }
            _ => return None,
        };
        out.push(c);
    }
    out.push_str(&String::from_utf8_lossy(&raw));
    Some(out)
}

/// `data` with every JSON string that holds an escape and, decoded, a
/// secret, written again with the secret replaced; `None` if there is
/// none. Text that is not JSON is only scanned: a quoted part
/// that does not decode as a JSON string is left alone.
fn escaped_secrets_removed(data: &[u8], matcher: &AhoCorasick) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while let Some(open) = memchr::memchr(b'"', &data[i..]).map(|p| p + i) {
        // The string's end: the next quote not escaped.
        let mut j = open + 1;
        let mut escaped = false;
        let mut close = None;
        while j < data.len() {
            match data[j] {
                b'\\' => {
                    escaped = true;
                    j += 2;
                    continue;
                }
                b'"' => {
                    close = Some(j);
                    break;
                }
                _ => j += 1,
            }
        }
        let Some(close) = close else { break };
        if escaped {
            let quoted = &data[open..=close];
            if let Some(decoded) = lenient_json_string(quoted)
                && matcher.is_match(&decoded)
            {
                let clean = matcher.replace_all(&decoded, &vec![REDACTED; matcher.patterns_len()]);
                if let Ok(text) = serde_json::to_string(&clean) {
                    let buf = out.get_or_insert_with(|| Vec::with_capacity(data.len()));
                    buf.extend_from_slice(&data[copied..open]);
                    buf.extend_from_slice(text.as_bytes());
                    copied = close + 1;
                }
            }
        }
        i = close + 1;
    }
    let mut out = out?;
    out.extend_from_slice(&data[copied..]);
    Some(out)
}

/// The length of the longest secret [`remove_secrets_from_data`] removes
/// (0 if none): how much of a stream must be held back so that a secret
/// split between two chunks is still found.
pub fn longest_data_secret() -> usize {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    secrets.longest_in_data
}

/// Registers a Basic credential: the token, and the base64 of
/// `email:token` that travels in the header.
pub fn register_basic(email: &str, token: &str) {
    use base64::Engine as _;
    register(token);
    let engine = &base64::engine::general_purpose::STANDARD;
    let b64 = engine.encode(format!("{email}:{token}"));
    register(&b64);
    register(b64.trim_end_matches('='));
}

/// `text` without any registered secret and without the value of any
/// `Authorization` header or `Basic …` / `Bearer …` credential in it.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    {
        let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
        if let Some(matcher) = &secrets.in_messages
            && matcher.is_match(text)
        {
            out = Cow::Owned(matcher.replace_all(text, &vec![REDACTED; matcher.patterns_len()]));
        }
    }
    match redact_credentials(&out) {
        Some(cleaned) => Cow::Owned(cleaned),
        None => out,
    }
}

/// Redacts what follows `authorization:` (or `authorization=`, or a JSON
/// `"authorization": "…"`), and the word after `basic ` / `bearer `, all
/// ASCII case-insensitive. `None` when there is nothing to redact.
fn redact_credentials(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    // (start, end) byte ranges to replace; ASCII lowering keeps offsets.
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let bytes = text.as_bytes();
    let value_end = |from: usize| {
        let mut end = from;
        while end < bytes.len()
            && !matches!(
                bytes[end],
                b'\r' | b'\n' | b'"' | b'\'' | b',' | b';' | b'}' | b']' | b'<' | b'&'
            )
        {
            end += 1;
        }
        // Trailing spaces stay outside the cut.
        while end > from && bytes[end - 1] == b' ' {
            end -= 1;
        }
        end
    };
    let mut from = 0;
    while let Some(pos) = lower[from..].find("authorization") {
        let mut i = from + pos + "authorization".len();
        let mut separated = false;
        while i < bytes.len() && matches!(bytes[i], b' ' | b'"' | b'\'' | b':' | b'=' | b'\t') {
            separated |= matches!(bytes[i], b':' | b'=');
            i += 1;
        }
        if separated {
            let end = value_end(i);
            if end > i {
                cuts.push((i, end));
            }
        }
        from = i.max(from + pos + 1);
    }
    for scheme in ["basic ", "bearer "] {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(scheme) {
            let start = from + pos + scheme.len();
            let mut end = start;
            while end < bytes.len()
                && (bytes[end].is_ascii_alphanumeric()
                    || matches!(bytes[end], b'+' | b'/' | b'=' | b'-' | b'_' | b'.' | b'~'))
            {
                end += 1;
            }
            // A credential is long; "basic auth" in a sentence is not one.
            if end - start >= 12 {
                cuts.push((start, end));
            }
            from = start;
        }
    }
    if cuts.is_empty() {
        return None;
    }
    cuts.sort();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in cuts {
        if end <= at {
            continue;
        }
        let start = start.max(at);
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

/// `s` with every control character (C0, DEL, C1) and every bidirectional
/// override or isolate escaped as `\u{…}` (`\n`, `\t`, `\r` as themselves
/// escaped), for a string from a server or a file shown to a person.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// An [`std::io::Write`] that scrubs what passes through it: the log
/// writers of the binaries. `tracing`'s formatter writes each event in one
/// call, so a secret is never split across two writes.
pub struct ScrubWriter<W>(pub W);

impl<W: std::io::Write> std::io::Write for ScrubWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_echoed_in_another_case_or_partly_encoded_is_scrubbed() {
        register("tok/en+secret=val12");
        for echoed in [
            "TOK/EN+SECRET=VAL12",
            "tok/en%2Bsecret%3Dval12",
            "tok%2fen%2bsecret%3dval12",
            "TOK%2FEN%2BSECRET%3DVAL12",
        ] {
            assert_eq!(
                scrub(&format!("bad {echoed}!")),
                "bad [redacted]!",
                "{echoed}"
            );
            let mut data = format!(r#"{{"name":"{echoed}"}}"#).into_bytes();
            remove_secrets_from_data(&mut data);
            assert_eq!(data, br#"{"name":"[redacted]"}"#, "{echoed}");
        }
    }

    #[test]
    fn a_secret_escaped_inside_a_json_string_is_removed_from_data() {
        register("tok/en+secret=val13");
        for escaped in [
            r"\u0074ok/en+secret=val13",
            r"tok\/en+secret=val13",
            r"tok/en\u002Bsecret\u003Dval13",
            r"\u0054\u004f\u004b\/EN+SECRET=VAL13",
        ] {
            let body =
                format!(r#"{{"a":"line\none","name":"x {escaped} y","b":"\u00e9t\u00e9 \/ ok"}}"#);
            let mut data = body.into_bytes();
            remove_secrets_from_data(&mut data);
            let value: serde_json::Value = serde_json::from_slice(&data).unwrap();
            assert_eq!(value["name"], "x [redacted] y", "{escaped}");
            // The other strings keep their meaning.
            assert_eq!(value["a"], "line\none");
            assert_eq!(value["b"], "\u{e9}t\u{e9} / ok");
        }
        // Not JSON at all: scanned, left alone.
        let mut text = br#"he said "\u00 unterminated"#.to_vec();
        remove_secrets_from_data(&mut text);
        assert_eq!(text, br#"he said "\u00 unterminated"#);
    }

    #[test]
    fn a_lone_surrogate_does_not_hide_an_escaped_secret() {
        register("tok/en+secret=val14");
        let mut data =
            br#"{"name":"\ud800 \u0074ok/en+secret=val14","ok":"\ud83d\ude00"}"#.to_vec();
        remove_secrets_from_data(&mut data);
        let text = String::from_utf8(data).unwrap();
        assert!(text.contains("[redacted]"), "{text}");
        assert!(!text.contains("val14"), "{text}");
        // A string without a secret is left as it was, pair and all.
        assert!(text.contains(r#""ok":"\ud83d\ude00""#), "{text}");
    }

    #[test]
    fn a_secret_echoed_percent_encoded_is_scrubbed_too() {
        register("p@ss w0rd/+%\"x;");
        let echoed = "you sent p%40ss%20w0rd%2F%2B%25%22x%3B, and p@ss w0rd/+%\"x;";
        assert_eq!(scrub(echoed), "you sent [redacted], and [redacted]");
    }

    #[test]
    fn secrets_in_data_are_replaced_and_short_ones_left_to_messages() {
        register("data-secret-0123456789");
        register("shortsecret");
        let mut data =
            br#"{"a":"data-secret-0123456789","b":"xdata-secret-0123456789data-secret-0123456789","c":"shortsecret"}"#
                .to_vec();
        remove_secrets_from_data(&mut data);
        assert_eq!(
            String::from_utf8(data).unwrap(),
            r#"{"a":"[redacted]","b":"x[redacted][redacted]","c":"shortsecret"}"#
        );
        let mut clean = b"nothing here".to_vec();
        remove_secrets_from_data(&mut clean);
        assert_eq!(clean, b"nothing here");
        assert!(longest_data_secret() >= "data-secret-0123456789".len());
    }

    #[test]
    fn registered_secrets_and_their_basic_form_are_removed() {
        use base64::Engine as _;
        register_basic("me@example.com", "scrub-test-token-XYZ");
        let b64 =
            base64::engine::general_purpose::STANDARD.encode("me@example.com:scrub-test-token-XYZ");
        let text = format!("token scrub-test-token-XYZ and header {b64} end");
        let clean = scrub(&text);
        assert!(!clean.contains("scrub-test-token-XYZ"), "{clean}");
        assert!(!clean.contains(&b64), "{clean}");
        assert!(clean.contains("end"));
    }

    #[test]
    fn authorization_values_are_removed_even_when_unregistered() {
        for text in [
            "you sent Authorization: Basic Zm9vOmJhcmJhemJhcWJvbw== which we refuse",
            "{\"headers\":{\"authorization\":\"Bearer abc.def.ghi-unregistered\"}}",
            "authorization=opaque-value-123",
        ] {
            let clean = scrub(text);
            for leaked in [
                "Zm9vOmJhcmJhemJhcWJvbw",
                "abc.def.ghi-unregistered",
                "opaque-value-123",
            ] {
                assert!(!clean.contains(leaked), "{clean}");
            }
            assert!(clean.contains(REDACTED), "{clean}");
        }
        assert_eq!(
            scrub("basic auth on cloud needs an email"),
            "basic auth on cloud needs an email"
        );
    }

    #[test]
    fn control_characters_and_bidi_overrides_are_escaped_for_a_terminal() {
        assert_eq!(for_terminal("PROJ"), "PROJ");
        assert_eq!(for_terminal("A\x1b[2JB"), "A\\u{1b}[2JB");
        assert_eq!(for_terminal("ALPHA-\n4"), "ALPHA-\\n4");
        assert_eq!(for_terminal("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(for_terminal("Ünïcødé ok"), "Ünïcødé ok");
    }
}
