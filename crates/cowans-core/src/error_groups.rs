//! Error tracking's grouping: a failed attempt's error message becomes a *pattern* (numbers,
//! ids, UUIDs and quoted values replaced by placeholders), so "order 1234 not found"
//! and "order 98 not found" are one group of their kind; and a *class* from a small fixed set, so
//! a metric labelled by it stays bounded however many patterns there are.

/// Longest pattern kept, in characters (longer ones are cut: the start names the failure).
pub const MAX_PATTERN_CHARS: usize = 200;

/// The error classes, a closed set (the `class` label of `cowans_job_errors_total`).
pub const CLASSES: [&str; 9] = [
    "lease_expired",
    "timeout",
    "panic",
    "payload",
    "throttled",
    "network",
    "database",
    "cancelled",
    "other",
];

/// The message with what varies between occurrences replaced: quoted values by `"…"` (an
/// apostrophe inside a word, as in "can't", is no quote), UUIDs by `<uuid>`, words of 8+
/// characters mixing letters and digits (ids, hashes, tokens) and `0x…` numbers by `<id>`, the
/// other digit runs by `<n>` (`v2` → `v<n>`, `gid://shopify/Product/42` →
/// `gid://shopify/Product/<n>`); whitespace collapsed; at most [`MAX_PATTERN_CHARS`]
/// characters. Only the message's first 1,000 characters are read.
pub fn pattern(message: &str) -> String {
    let chars: Vec<char> = message
        .chars()
        .take(crate::event::EVENT_ERROR_CHARS)
        .collect();
    let mut out = String::new();
    let mut i = 0;
    let mut last_space = true;
    while i < chars.len() {
        let c = chars[i];
        let after_word = i > 0 && chars[i - 1].is_alphanumeric();
        if (c == '"' || c == '`' || (c == '\'' && !after_word))
            && let Some(len) = chars[i + 1..].iter().position(|&d| d == c)
        {
            out.push(c);
            out.push('…');
            out.push(c);
            i += len + 2;
            last_space = false;
            continue;
        }
        if c.is_whitespace() {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
            i += 1;
            continue;
        }
        last_space = false;
        if c.is_ascii_alphanumeric() {
            // A word: letters, digits, and the inner dashes of a UUID.
            let mut end = chars[i..]
                .iter()
                .position(|d| !(d.is_ascii_alphanumeric() || *d == '-'))
                .map_or(chars.len(), |p| i + p);
            while chars[end - 1] == '-' {
                end -= 1;
            }
            let word: String = chars[i..end].iter().collect();
            out.push_str(&word_pattern(&word));
            i = end;
            continue;
        }
        out.push(c);
        i += 1;
    }
    let out = out.trim_end();
    match out.char_indices().nth(MAX_PATTERN_CHARS) {
        Some((cut, _)) => out[..cut].to_owned(),
        None => out.to_owned(),
    }
}

/// One word of a message, as its pattern.
fn word_pattern(word: &str) -> String {
    if is_uuid(word) {
        return "<uuid>".to_owned();
    }
    let letters = word.chars().any(|c| c.is_ascii_alphabetic());
    let digits = word.chars().any(|c| c.is_ascii_digit());
    let hex_number = word.len() > 2
        && (word.starts_with("0x") || word.starts_with("0X"))
        && word[2..].chars().all(|c| c.is_ascii_hexdigit());
    if hex_number || (letters && digits && word.len() >= 8 && !word.contains('-')) {
        return "<id>".to_owned();
    }
    let mut out = String::with_capacity(word.len());
    let mut in_digits = false;
    for c in word.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push_str("<n>");
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

fn is_uuid(word: &str) -> bool {
    let parts: Vec<&str> = word.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The class of an error message (one of [`CLASSES`]), from words the engine, the Shopify
/// client and common libraries use.
pub fn class(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
    let status = |code: &str| {
        m.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == code)
    };
    if m.starts_with("lease expired") {
        "lease_expired"
    } else if has(&["timed out", "timeout", "deadline"]) {
        "timeout"
    } else if has(&["panic"]) {
        "panic"
    } else if has(&[
        "undecodable",
        "decode",
        "deserializ",
        "invalid type",
        "missing field",
        "unknown field",
        "payload",
    ]) {
        "payload"
    } else if has(&["throttled", "rate limit", "too many requests"]) || status("429") {
        "throttled"
    } else if has(&[
        "connection",
        "connect",
        "dns",
        "network",
        "broken pipe",
        "unreachable",
        "tls",
    ]) {
        "network"
    } else if has(&["database", "postgres", "sqlx", "redis", "deadlock"]) {
        "database"
    } else if has(&["cancelled", "canceled"]) {
        "cancelled"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_varies_between_occurrences_is_replaced() {
        assert_eq!(pattern("order 1234 not found"), "order <n> not found");
        assert_eq!(
            pattern("order 98 not found"),
            pattern("order 1234 not found")
        );
        assert_eq!(
            pattern("job 4503599627371523 on worker 0f8fad5b-d9cb-469f-a165-70867728950e failed"),
            "job <n> on worker <uuid> failed"
        );
        assert_eq!(
            pattern("product gid://shopify/Product/42 missing"),
            "product gid://shopify/Product/<n> missing"
        );
        assert_eq!(pattern("sha deadbeef12 bad"), "sha <id> bad");
        assert_eq!(pattern("token abC9dE2fG expired"), "token <id> expired");
        assert_eq!(pattern("at 0x7f3a9c"), "at <id>");
        assert_eq!(
            pattern("can't read user's file 'a.txt'"),
            "can't read user's file '…'"
        );
        assert_eq!(pattern("a-b-c 12-34"), "a-b-c <n>-<n>");
        assert_eq!(
            pattern(r#"field "title" is "a b c"   too long"#),
            r#"field "…" is "…" too long"#
        );
        assert_eq!(pattern("HTTP 503 from v2 api"), "HTTP <n> from v<n> api");
        // Words that only look like hex stay.
        assert_eq!(pattern("decoded a cafe face"), "decoded a cafe face");
        assert_eq!(pattern("  spaced \n out  "), "spaced out");
        assert_eq!(
            pattern("unterminated \"quote 12"),
            "unterminated \"quote <n>"
        );
    }

    #[test]
    fn patterns_are_bounded() {
        let long = "x".repeat(1000);
        assert_eq!(pattern(&long).chars().count(), MAX_PATTERN_CHARS);
        let wide = "é".repeat(1000);
        assert_eq!(pattern(&wide).chars().count(), MAX_PATTERN_CHARS);
        // Only the first 1,000 characters are read: 27 UUIDs' worth.
        let ids = "0f8fad5b-d9cb-469f-a165-70867728950e ".repeat(100);
        assert!(pattern(&ids).starts_with(&"<uuid> ".repeat(27)));
        assert!(pattern(&ids).chars().count() <= MAX_PATTERN_CHARS);
        let huge = "word 12 ".repeat(100_000);
        assert_eq!(pattern(&huge).chars().count(), MAX_PATTERN_CHARS);
    }

    #[test]
    fn classes_are_a_closed_set() {
        for (message, want) in [
            (crate::queue::LEASE_EXPIRED, "lease_expired"),
            ("attempt timed out after 900000 ms", "timeout"),
            ("handler panicked: demo panic", "panic"),
            ("undecodable payload: missing field `ms`", "payload"),
            ("Shopify THROTTLED the request", "throttled"),
            ("error sending request: connection refused", "network"),
            ("database error: deadlock detected", "database"),
            ("demo failure on attempt 1", "other"),
            ("order 14290 not found", "other"),
            ("HTTP 429 from Shopify", "throttled"),
        ] {
            assert_eq!(class(message), want, "{message}");
            assert!(CLASSES.contains(&class(message)));
        }
    }
}
