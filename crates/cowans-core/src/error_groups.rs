//! Error tracking's grouping: a failed attempt's error message becomes a *pattern* (numbers,
//! ids, UUIDs, hex strings and quoted values replaced by placeholders), so "order 1234 not found"
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

/// The message with what varies between occurrences replaced: quoted values by `"…"`, UUIDs by
/// `<uuid>`, hex strings of 8+ characters with a digit and a letter by `<hex>`, digit runs by `<n>` (a word
/// mixing letters and digits, like `v2` or `gid://shopify/Product/42`'s number, keeps its
/// letters); whitespace collapsed; cut to [`MAX_PATTERN_CHARS`].
pub fn pattern(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_PATTERN_CHARS));
    let chars: Vec<char> = message.chars().collect();
    let mut i = 0;
    let mut last_space = true;
    while i < chars.len() && out.chars().count() < MAX_PATTERN_CHARS {
        let c = chars[i];
        if (c == '"' || c == '\'' || c == '`')
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
        if c.is_ascii_hexdigit() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric()) {
            let end = chars[i..]
                .iter()
                .position(|d| !(d.is_ascii_hexdigit() || *d == '-'))
                .map_or(chars.len(), |p| i + p);
            let word: String = chars[i..end].iter().collect();
            let followed_by_letter = chars.get(end).is_some_and(|d| d.is_ascii_alphabetic());
            if !followed_by_letter && is_uuid(&word) {
                out.push_str("<uuid>");
                i = end;
                continue;
            }
            if !followed_by_letter
                && !word.contains('-')
                && word.len() >= 8
                && word.chars().any(|d| d.is_ascii_digit())
                && word.chars().any(|d| d.is_ascii_alphabetic())
            {
                out.push_str("<hex>");
                i = end;
                continue;
            }
        }
        if c.is_ascii_digit() {
            let end = chars[i..]
                .iter()
                .position(|d| !d.is_ascii_digit())
                .map_or(chars.len(), |p| i + p);
            out.push_str("<n>");
            i = end;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out.trim_end().to_owned()
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
    } else if has(&["throttled", "rate limit", "too many requests", "429"]) {
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
        assert_eq!(pattern("sha deadbeef12 bad"), "sha <hex> bad");
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
        ] {
            assert_eq!(class(message), want, "{message}");
            assert!(CLASSES.contains(&class(message)));
        }
    }
}
