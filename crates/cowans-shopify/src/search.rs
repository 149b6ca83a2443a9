//! Shopify's API search syntax (<https://shopify.dev/docs/api/usage/search-syntax>), parsed:
//! terms joined by whitespace (implicit `AND`) or the connectives `AND` / `OR` (`OR` binds
//! tighter: `a OR b c` is `(a OR b) AND c`), parenthesised groups, the modifiers `-` and `NOT `,
//! the comparators `:` `:<` `:>` `:<=` `:>=`, single- or double-quoted values, backslash
//! escapes, the prefix wildcard `value*` and the existence test `field:*`. A term without a field
//! (or whose colon is followed by whitespace) is free text, Shopify's "default" search.
//!
//! Shared by the client ([`crate::check_product_search`]) and the simulator, so both read a
//! query the same way.

/// How a term compares its field with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparator {
    /// `:` — equality (numbers), term match (tokenized text) or exact match (other text).
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
}

/// One `field:value` (or free-text) term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Lower-cased field name; `None` for free text.
    pub field: Option<String>,
    pub comparator: Comparator,
    /// The value, unquoted and unescaped (without a trailing wildcard `*`).
    pub value: String,
    /// `value*`: a prefix search.
    pub prefix: bool,
    /// `field:*`: the field has a value.
    pub exists: bool,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    And(Vec<Query>),
    Or(Vec<Query>),
    Not(Box<Query>),
    Term(Term),
}

impl Query {
    /// Every term, depth first.
    pub fn terms(&self) -> Vec<&Term> {
        let mut out = Vec::new();
        fn walk<'a>(q: &'a Query, out: &mut Vec<&'a Term>) {
            match q {
                Query::And(v) | Query::Or(v) => v.iter().for_each(|q| walk(q, out)),
                Query::Not(q) => walk(q, out),
                Query::Term(t) => out.push(t),
            }
        }
        walk(self, &mut out);
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Minus,
    And,
    Or,
    Not,
    /// Characters of a word, each flagged literal (quoted or escaped) or not.
    Word(Vec<(char, bool)>),
}

fn lex(q: &str) -> Vec<Token> {
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => {
                out.push(Token::Open);
                i += 1;
                continue;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
                continue;
            }
            '-' if chars.get(i + 1).is_some_and(|n| !n.is_whitespace()) => {
                out.push(Token::Minus);
                i += 1;
                continue;
            }
            _ => {}
        }
        let mut word: Vec<(char, bool)> = Vec::new();
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() || c == '(' || c == ')' {
                break;
            }
            if c == '\\' {
                if let Some(n) = chars.get(i + 1) {
                    word.push((*n, true));
                }
                i += 2;
                continue;
            }
            if c == '\'' || c == '"' {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    word.push((chars[i], true));
                    i += 1;
                }
                i += 1; // the closing quote (or the end)
                // An empty quoted string still makes a (literal, empty) value.
                if word.is_empty() {
                    word.push(('\0', true));
                }
                continue;
            }
            word.push((c, false));
            i += 1;
        }
        let plain: String = word.iter().map(|(c, _)| c).collect();
        let literal = word.iter().any(|(_, l)| *l);
        out.push(match (plain.as_str(), literal) {
            ("AND", false) => Token::And,
            ("OR", false) => Token::Or,
            ("NOT", false) => Token::Not,
            _ => Token::Word(word),
        });
    }
    out
}

fn term(word: &[(char, bool)], next_is_word: bool) -> Term {
    let text = |cs: &[(char, bool)]| -> String {
        cs.iter()
            .filter(|(c, _)| *c != '\0')
            .map(|(c, _)| *c)
            .collect()
    };
    let colon = word.iter().position(|(c, l)| *c == ':' && !l);
    let free = |cs: &[(char, bool)]| {
        let (value, prefix) = strip_wildcard(cs);
        Term {
            field: None,
            comparator: Comparator::Eq,
            value: text(value),
            prefix,
            exists: false,
        }
    };
    let Some(colon) = colon.filter(|c| *c > 0) else {
        return free(word);
    };
    let field = text(&word[..colon]).to_ascii_lowercase();
    let rest = &word[colon + 1..];
    // `field: value` (whitespace after the colon) is two free-text terms; the field name is
    // searched as text. A bare `field:` at the end likewise.
    if rest.is_empty() {
        let _ = next_is_word;
        return free(&word[..colon]);
    }
    let starts = |p: &str| {
        rest.len() >= p.len()
            && rest
                .iter()
                .zip(p.chars())
                .all(|((c, l), want)| !l && *c == want)
    };
    let (comparator, skip) = if starts(">=") {
        (Comparator::Ge, 2)
    } else if starts("<=") {
        (Comparator::Le, 2)
    } else if starts(">") {
        (Comparator::Gt, 1)
    } else if starts("<") {
        (Comparator::Lt, 1)
    } else {
        (Comparator::Eq, 0)
    };
    let value = &rest[skip..];
    if value.len() == 1 && value[0] == ('*', false) {
        return Term {
            field: Some(field),
            comparator,
            value: String::new(),
            prefix: false,
            exists: true,
        };
    }
    let (value, prefix) = strip_wildcard(value);
    Term {
        field: Some(field),
        comparator,
        value: text(value),
        prefix,
        exists: false,
    }
}

fn strip_wildcard(cs: &[(char, bool)]) -> (&[(char, bool)], bool) {
    match cs.split_last() {
        Some((('*', false), rest)) if !rest.is_empty() => (rest, true),
        _ => (cs, false),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    /// Terms and `OR` groups joined by whitespace or `AND`, up to a `)` or the end.
    fn and(&mut self) -> Option<Query> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None | Some(Token::Close) => break,
                Some(Token::And) => {
                    self.at += 1;
                    continue;
                }
                // A dangling OR (nothing before it) is ignored.
                Some(Token::Or) => {
                    self.at += 1;
                    continue;
                }
                _ => {}
            }
            if let Some(q) = self.or() {
                items.push(q);
            }
        }
        match items.len() {
            0 => None,
            1 => items.pop(),
            _ => Some(Query::And(items)),
        }
    }

    fn or(&mut self) -> Option<Query> {
        let mut items: Vec<Query> = self.unary().into_iter().collect();
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            if let Some(q) = self.unary() {
                items.push(q);
            }
        }
        match items.len() {
            0 => None,
            1 => items.pop(),
            _ => Some(Query::Or(items)),
        }
    }

    fn unary(&mut self) -> Option<Query> {
        let token = self.peek()?.clone();
        self.at += 1;
        match token {
            Token::Minus | Token::Not => self.unary().map(|q| Query::Not(Box::new(q))),
            Token::Open => {
                let q = self.and();
                if self.peek() == Some(&Token::Close) {
                    self.at += 1;
                }
                q
            }
            Token::Word(w) => {
                let next_is_word = matches!(self.peek(), Some(Token::Word(_)));
                Some(Query::Term(term(&w, next_is_word)))
            }
            // A stray `)` or connective where a term belongs.
            Token::Close | Token::And | Token::Or => None,
        }
    }
}

/// Parses `q`; `None` for a query with no terms (which matches everything).
pub fn parse(q: &str) -> Option<Query> {
    let mut p = Parser {
        tokens: lex(q),
        at: 0,
    };
    let mut items = Vec::new();
    while p.at < p.tokens.len() {
        if let Some(q) = p.and() {
            items.push(q);
        }
        // An unbalanced `)`: skip it and go on.
        if p.peek() == Some(&Token::Close) {
            p.at += 1;
        }
    }
    match items.len() {
        0 => None,
        1 => items.pop(),
        _ => Some(Query::And(items)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(field: &str, c: Comparator, value: &str) -> Query {
        Query::Term(Term {
            field: Some(field.into()),
            comparator: c,
            value: value.into(),
            prefix: false,
            exists: false,
        })
    }

    #[test]
    fn connectives_groups_modifiers_and_quotes_parse_as_documented() {
        use Comparator::*;
        // OR binds tighter than AND (implicit or explicit).
        assert_eq!(
            parse("status:active OR status:draft vendor:Acme"),
            Some(Query::And(vec![
                Query::Or(vec![t("status", Eq, "active"), t("status", Eq, "draft")]),
                t("vendor", Eq, "Acme"),
            ]))
        );
        assert_eq!(
            parse("vendor:Acme AND (tag:a OR tag:b)"),
            Some(Query::And(vec![
                t("vendor", Eq, "Acme"),
                Query::Or(vec![t("tag", Eq, "a"), t("tag", Eq, "b")]),
            ]))
        );
        assert_eq!(
            parse("-tag:sale NOT vendor:x"),
            Some(Query::And(vec![
                Query::Not(Box::new(t("tag", Eq, "sale"))),
                Query::Not(Box::new(t("vendor", Eq, "x"))),
            ]))
        );
        // Quoted values keep spaces and colons; comparators are read before the value.
        assert_eq!(
            parse("updated_at:>='2026-01-01 10:00' title:\"a:b c\""),
            Some(Query::And(vec![
                t("updated_at", Ge, "2026-01-01 10:00"),
                t("title", Eq, "a:b c"),
            ]))
        );
        // Escapes, wildcard, existence, free text.
        let q = parse(r"title:a\:b handle:hat* published_at:* Bob").unwrap();
        let terms = q.terms();
        assert_eq!(terms[0].value, "a:b");
        assert!(terms[1].prefix && terms[1].value == "hat");
        assert!(terms[2].exists);
        assert_eq!(
            (terms[3].field.as_deref(), terms[3].value.as_str()),
            (None, "Bob")
        );
        // `field: value` is two free-text terms; lower-case `or` is text, not a connective.
        let q = parse("title: hat or cap").unwrap();
        assert!(q.terms().iter().all(|t| t.field.is_none()));
        assert_eq!(q.terms().len(), 4);
        assert_eq!(parse("   "), None);
    }
}
