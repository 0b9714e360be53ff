//! Redaction of secrets from a job's output before it leaves the factory: every occurrence of
//! a secret's value, of its base64 (standard and URL-safe alphabets, padded or not, alone or
//! inside longer base64 text at any of the three byte alignments), of each 76-character line of
//! its wrapped base64 (`base64`'s default), of each line of a multi-line value, of its
//! JSON-escaped form and of its percent-encoded forms (upper- and lower-case hex, `+` for a
//! space, `/` kept as Python's `quote()` does) becomes `[secret NAME]`. Overlapping matches
//! (of one secret or several) are replaced as one, so no tail of either is left.
//!
//! Inside longer base64 text only the characters made of the value's bits alone are stable
//! (the first and last may mix in the neighbours' bits): those are what is replaced, so the
//! value can no longer be decoded from what is left. A value transformed any other way
//! (reversed, hex, split by the job itself, compressed) is not recognised; nor is a line, or a
//! line of wrapped base64, shorter than [`MIN_PIECE`].
//!
//! Output arrives in pieces, and a value may straddle two: [`RedactStream`] holds back the
//! shortest tail that could still become a match and gives out everything before it, so a
//! stream cut anywhere redacts exactly as the whole text at once would (a property test holds
//! it to that). Text that could not start a match is never held.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use crate::wire::urlencode;

/// One text to replace, and what replaces it.
#[derive(Clone)]
struct Pattern {
    text: String,
    marker: String,
}

/// The forms of a set of secrets, ready to be found in text. Its `Debug` shows counts only.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, each text once: at one position the longest match wins.
    patterns: Vec<Pattern>,
    /// Indexes into `patterns` by their first byte, so most positions cost one lookup.
    by_first: Vec<Vec<usize>>,
}

/// The marker a secret's forms are replaced with.
pub fn marker(name: &str) -> String {
    format!("[secret {name}]")
}

/// How long a piece of a value (one of its lines, one line of its wrapped base64) must be to
/// be a pattern of its own: shorter pieces would replace ordinary text.
pub const MIN_PIECE: usize = 8;

/// The width `base64` (coreutils) wraps its output at by default.
const BASE64_WRAP: usize = 76;

/// Every form of `value` this module recognises.
pub fn forms(value: &str) -> Vec<String> {
    let bytes = value.as_bytes();
    let mut out = vec![value.to_string()];
    for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
        // Alone (padding, if any, follows it and is harmless), then inside longer text.
        out.push(engine.encode(bytes));
        for offset in 0..3usize {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(bytes);
            let encoded = engine.encode(&shifted);
            // Character i holds bits [6i, 6i + 6): keep those inside the value's bits.
            let start = (8 * offset).div_ceil(6);
            let end = (8 * (offset + bytes.len())) / 6;
            if start < end {
                out.push(encoded[start..end].to_string());
            }
        }
    }
    // `base64 key.json` wraps its output: each of its lines is a pattern of its own.
    let wrapped = STANDARD_NO_PAD.encode(bytes);
    out.extend(pieces(&wrapped, BASE64_WRAP));
    // A PEM key or a JSON file is seldom printed whole (`head -3 key.pem`): each line counts.
    out.extend(
        value
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| l.len() >= MIN_PIECE)
            .map(str::to_string),
    );
    // Inside a JSON string (`\n`, `\"`, `\\` escaped), as a file's value often ends up.
    let json = serde_json::to_string(value).unwrap_or_default();
    if let Some(inner) = json.strip_prefix('"').and_then(|j| j.strip_suffix('"')) {
        out.push(inner.to_string());
    }
    let upper = urlencode(value);
    out.push(upper.to_ascii_lowercase_hex());
    out.push(upper.replace("%20", "+"));
    // Python's `quote()` keeps `/`.
    out.push(upper.replace("%2F", "/"));
    out.push(upper);
    out.retain(|f| !f.is_empty());
    out.sort();
    out.dedup();
    out
}

/// The `width`-character lines of `text` that are at least [`MIN_PIECE`] long.
fn pieces(text: &str, width: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(width)
        .filter(|c| c.len() >= MIN_PIECE)
        .map(|c| c.iter().collect())
        .collect()
}

/// Lower-case hex digits in a percent-encoded text (what `%2f`-writing encoders give).
trait LowerHex {
    fn to_ascii_lowercase_hex(&self) -> String;
}

impl LowerHex for String {
    fn to_ascii_lowercase_hex(&self) -> String {
        let mut out = String::with_capacity(self.len());
        let mut hex_left = 0;
        for c in self.chars() {
            if hex_left > 0 {
                out.push(c.to_ascii_lowercase());
                hex_left -= 1;
            } else {
                out.push(c);
                if c == '%' {
                    hex_left = 2;
                }
            }
        }
        out
    }
}

impl Redactor {
    /// A redactor of `secrets`, given as (name, value).
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut patterns: Vec<Pattern> = Vec::new();
        for (name, value) in secrets {
            for text in forms(value) {
                patterns.push(Pattern {
                    text,
                    marker: marker(name),
                });
            }
        }
        patterns.sort_by(|a, b| b.text.len().cmp(&a.text.len()).then(a.text.cmp(&b.text)));
        patterns.dedup_by(|a, b| a.text == b.text);
        let mut by_first = vec![Vec::new(); 256];
        for (i, p) in patterns.iter().enumerate() {
            by_first[usize::from(p.text.as_bytes()[0])].push(i);
        }
        Redactor { patterns, by_first }
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// `text` with every form of every secret replaced.
    pub fn redact(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_string();
        }
        self.scan(text, false).0
    }

    /// Redacts `buf` from its start; with `hold`, stops where a match could still begin (or
    /// grow) with text not seen yet. Overlapping matches are replaced as one: their union
    /// becomes the first one's marker, so no secret's tail is left beside another's marker.
    /// Returns the redacted text and how many bytes of `buf` it covers.
    fn scan(&self, buf: &str, hold: bool) -> (String, usize) {
        let bytes = buf.as_bytes();
        let mut out = String::with_capacity(buf.len());
        let mut plain_from = 0;
        // The union of the overlapping matches seen so far: its start, end and marker.
        let mut cover: Option<(usize, usize, usize)> = None;
        let mut i = 0;
        while i < bytes.len() {
            let rest = &bytes[i..];
            let mut found = None;
            let mut may_grow = false;
            for &k in &self.by_first[usize::from(bytes[i])] {
                let p = self.patterns[k].text.as_bytes();
                if found.is_none() && rest.starts_with(p) {
                    found = Some(k);
                } else if hold && rest.len() < p.len() && p.starts_with(rest) {
                    // A longer form than any found may yet complete here.
                    may_grow = true;
                }
            }
            if let Some((start, end, k)) = cover
                && i >= end
            {
                out.push_str(&buf[plain_from..start]);
                out.push_str(&self.patterns[k].marker);
                plain_from = end;
                cover = None;
            }
            if may_grow {
                // An open union may still grow too: hold it from its start.
                if let Some((start, _, _)) = cover {
                    out.push_str(&buf[plain_from..start]);
                    return (out, start);
                }
                break;
            }
            if let Some(k) = found {
                let end = i + self.patterns[k].text.len();
                cover = Some(match cover {
                    Some((start, e, first)) => (start, e.max(end), first),
                    None => (i, end, k),
                });
            }
            // Every pattern starts a character, so a continuation byte finds none.
            i += 1;
        }
        if let Some((start, end, k)) = cover {
            out.push_str(&buf[plain_from..start]);
            out.push_str(&self.patterns[k].marker);
            plain_from = end;
            i = i.max(end);
        }
        out.push_str(&buf[plain_from..i]);
        (out, i)
    }
}

/// One output stream's redaction across its pieces: what is given out is final; what may
/// still become a match is held until the next piece or [`RedactStream::finish`].
#[derive(Default)]
pub struct RedactStream {
    held: String,
}

// By hand: a derived `Debug` would print every value (and a held tail may be part of one).
impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.patterns.len())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedactStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedactStream")
            .field("held_bytes", &self.held.len())
            .finish()
    }
}

impl RedactStream {
    /// The next piece of the stream, redacted as far as it can be yet.
    pub fn push(&mut self, redactor: &Redactor, piece: &str) -> String {
        if redactor.is_empty() {
            return piece.to_string();
        }
        self.held.push_str(piece);
        let (out, used) = redactor.scan(&self.held, true);
        self.held.drain(..used);
        out
    }

    /// The end of the stream: what was held, redacted.
    pub fn finish(&mut self, redactor: &Redactor) -> String {
        let held = std::mem::take(&mut self.held);
        redactor.redact(&held)
    }

    /// Bytes held back now.
    pub fn held_bytes(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    use proptest::prelude::*;

    use super::*;

    const NAME: &str = "API_KEY";

    /// Every window of `text` decoded as base64 (either alphabet, any start), and `text`
    /// percent-decoded: the independent check that a value cannot be read back.
    fn readable_in(text: &str, value: &str) -> bool {
        let v = value.as_bytes();
        let unescaped = json_unescaped(text);
        if text.contains(value) || unescaped.contains(value) {
            return true;
        }
        if value
            .lines()
            .any(|l| l.len() >= MIN_PIECE && text.contains(l))
        {
            return true;
        }
        // Wrapped base64 is read with its line breaks taken out.
        let unwrapped = text.replace('\n', "");
        base64_readable_in(text, v) || base64_readable_in(&unwrapped, v) || {
            percent_decode(text).windows(v.len()).any(|w| w == v)
        }
    }

    /// `text` with JSON string escapes undone.
    fn json_unescaped(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            out.push(match (c, c == '\\') {
                (_, true) => match chars.next() {
                    Some('n') => '\n',
                    Some('r') => '\r',
                    Some('t') => '\t',
                    Some(other) => other,
                    None => c,
                },
                (c, false) => c,
            });
        }
        out
    }

    fn base64_readable_in(text: &str, v: &[u8]) -> bool {
        let bytes = text.as_bytes();
        for start in 0..bytes.len() {
            for (engine, extra) in [(STANDARD_NO_PAD, b"+/"), (URL_SAFE_NO_PAD, b"-_")] {
                let run: Vec<u8> = bytes[start..]
                    .iter()
                    .copied()
                    .take_while(|b| b.is_ascii_alphanumeric() || extra.contains(b))
                    .collect();
                let usable = run.len() - run.len() % 4;
                if let Ok(decoded) = engine.decode(&run[..usable])
                    && decoded.windows(v.len()).any(|w| w == v)
                {
                    return true;
                }
            }
        }
        false
    }

    fn percent_decode(text: &str) -> Vec<u8> {
        let b = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (b[i], hex) {
                (b'%', Some(x)) => {
                    out.push(x);
                    i += 3;
                }
                (b'+', _) => {
                    out.push(b' ');
                    i += 1;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        out
    }

    fn chunked(r: &Redactor, text: &str, cuts: &[usize]) -> String {
        let mut stream = RedactStream::default();
        let mut out = String::new();
        let mut from = 0;
        let mut cuts: Vec<usize> = cuts
            .iter()
            .map(|c| c % (text.len() + 1))
            .filter(|c| text.is_char_boundary(*c))
            .collect();
        cuts.sort();
        for cut in cuts {
            out.push_str(&stream.push(r, &text[from..cut]));
            from = cut;
        }
        out.push_str(&stream.push(r, &text[from..]));
        out + &stream.finish(r)
    }

    /// How a value is written into the text.
    fn encode(how: u8, value: &str, before: &[u8], after: &[u8]) -> String {
        let mut wrapped = before.to_vec();
        wrapped.extend_from_slice(value.as_bytes());
        wrapped.extend_from_slice(after);
        match how % 10 {
            0 => value.to_string(),
            1 => STANDARD.encode(value),
            2 => URL_SAFE.encode(&wrapped),
            3 => STANDARD_NO_PAD.encode(&wrapped),
            4 => urlencode(value),
            5 => urlencode(value).to_ascii_lowercase_hex(),
            6 => wrap(&STANDARD.encode(value)),
            7 => json_escaped(value),
            8 => urlencode(value).replace("%2F", "/"),
            _ => value.lines().next().unwrap_or_default().to_string(),
        }
    }

    /// `text` in lines of 76 characters, as `base64` writes it.
    fn wrap(text: &str) -> String {
        let chars: Vec<char> = text.chars().collect();
        let lines: Vec<String> = chars.chunks(76).map(|c| c.iter().collect()).collect();
        lines.join("\n") + "\n"
    }

    fn json_escaped(value: &str) -> String {
        let json = serde_json::to_string(value).unwrap();
        json[1..json.len() - 1].to_string()
    }

    #[test]
    fn a_file_secret_printed_in_part_wrapped_or_escaped_is_caught() {
        let body: String = (0..40)
            .map(|i| format!("MIIEvQIBADANBgkqhkiG9w0B{i:04}\n"))
            .collect();
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}-----END PRIVATE KEY-----\n");
        let r = Redactor::new([(NAME, pem.as_str())]);
        let head: String = pem.lines().take(3).map(|l| format!("{l}\n")).collect();
        for printed in [
            head,
            wrap(&STANDARD.encode(&pem)),
            format!("{{\"private_key\": \"{}\"}}", json_escaped(&pem)),
            urlencode(&pem).replace("%2F", "/"),
        ] {
            let out = r.redact(&printed);
            assert!(out.contains("[secret API_KEY]"), "{printed} → {out}");
            assert!(!readable_in(&out, &pem), "{printed} → {out}");
        }
    }

    #[test]
    fn overlapping_secrets_leave_no_tail() {
        let r = Redactor::new([("A", "password1234"), ("B", "1234abcdefgh")]);
        assert_eq!(r.redact("x password1234abcdefgh y"), "x [secret A] y");
        assert_eq!(
            r.redact("1234abcdefgh password1234"),
            "[secret B] [secret A]"
        );
    }

    #[test]
    fn debug_shows_counts_never_values() {
        let r = Redactor::new([(NAME, "hunter2-very-secret")]);
        let mut s = RedactStream::default();
        s.push(&r, "hunter2-very");
        let shown = format!("{r:?} {s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("held_bytes: 12"), "{shown}");
    }

    #[test]
    fn the_value_and_its_encodings_become_the_marker() {
        let value = "sk-ant/é?x y&z=1";
        let r = Redactor::new([(NAME, value)]);
        for form in [
            value.to_string(),
            STANDARD.encode(value),
            URL_SAFE.encode(value),
            urlencode(value),
            urlencode(value).replace("%20", "+"),
        ] {
            let out = r.redact(&format!("key: {form}!"));
            assert!(out.contains("[secret API_KEY]"), "{form} → {out}");
            assert!(!readable_in(&out, value), "{form} → {out}");
        }
        assert_eq!(r.redact("nothing here"), "nothing here");
    }

    #[test]
    fn a_value_inside_longer_base64_is_caught_at_every_alignment() {
        let value = "correct horse battery staple";
        let r = Redactor::new([(NAME, value)]);
        for lead in 0..6 {
            let mut bytes = vec![b'#'; lead];
            bytes.extend_from_slice(value.as_bytes());
            bytes.extend_from_slice(b"trailing bytes");
            let out = r.redact(&STANDARD.encode(&bytes));
            assert!(!readable_in(&out, value), "lead {lead}: {out}");
        }
    }

    #[test]
    fn plain_text_is_never_held_back() {
        let r = Redactor::new([(NAME, "abcdefgh")]);
        let mut s = RedactStream::default();
        assert_eq!(s.push(&r, "hello world\n"), "hello world\n");
        assert_eq!(s.held_bytes(), 0);
        assert_eq!(s.push(&r, "key abcd"), "key ");
        assert_eq!(s.push(&r, "efgh done"), "[secret API_KEY] done");
        assert_eq!(s.finish(&r), "");
    }

    proptest! {
        #[test]
        fn no_text_carrying_a_secret_comes_out_with_it_however_it_is_cut(
            value in "[A-Za-z0-9 /&?=+é\n\"\\\\]{8,120}",
            prefix in "[a-zA-Z0-9 .\n]{0,30}",
            suffix in "[a-zA-Z0-9 .\n]{0,30}",
            how in 0u8..10,
            before in proptest::collection::vec(any::<u8>(), 0..5),
            after in proptest::collection::vec(any::<u8>(), 0..5),
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let r = Redactor::new([("OTHER", "unrelated-secret"), (NAME, value.as_str())]);
            let text = format!("{prefix}{}{suffix}", encode(how, &value, &before, &after));
            let whole = r.redact(&text);
            prop_assert!(!readable_in(&whole, &value), "{text:?} → {whole:?}");
            prop_assert_eq!(chunked(&r, &text, &cuts), whole);
        }

        #[test]
        fn overlapping_secrets_are_replaced_as_one_however_it_is_cut(
            a in "[A-Z0-9]{8,30}",
            extra in "[A-Z0-9]{4,20}",
            overlap in 1usize..8,
            prefix in "[a-z .\n]{0,30}",
            suffix in "[a-z .\n]{0,30}",
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            // B starts with A's last characters: written together, they overlap.
            let b = format!("{}{extra}", &a[a.len() - overlap..]);
            let r = Redactor::new([("A", a.as_str()), ("B", b.as_str())]);
            let text = format!("{prefix}{a}{extra}{suffix}");
            let whole = r.redact(&text);
            prop_assert_eq!(&whole, &format!("{prefix}[secret A]{suffix}"));
            prop_assert_eq!(chunked(&r, &text, &cuts), whole);
        }

        #[test]
        fn text_without_secrets_comes_out_unchanged_however_it_is_cut(
            value in "[A-Za-z0-9 /&?=+]{8,40}",
            text in "[,;:!()\n]{0,200}",
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let r = Redactor::new([(NAME, value.as_str())]);
            prop_assert_eq!(r.redact(&text), text.clone());
            prop_assert_eq!(chunked(&r, &text, &cuts), text);
        }
    }
}
