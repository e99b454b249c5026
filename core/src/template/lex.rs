//! The lexer of Go's text/template: text, `{{ }}` actions with their trim
//! markers and comments, and the tokens inside an action.

/// A token.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// Plain text between actions (already trimmed by `{{-` / `-}}`).
    Text(String),
    /// `{{` (or `{{- `).
    Open,
    /// `}}` (or ` -}}`).
    Close,
    /// `.name` (without the dot).
    Field(String),
    /// `$name` (with the `$`; `$` alone is the data).
    Var(String),
    /// `.` alone.
    Dot,
    /// A function name.
    Ident(String),
    /// A keyword: if, else, end, range, with, define, template, block,
    /// break, continue.
    Keyword(&'static str),
    /// A string literal, unquoted.
    Str(String),
    /// A number literal as written.
    Number(String),
    /// A character literal's code point.
    Char(char),
    /// `true` or `false`.
    Bool(bool),
    /// `nil`.
    Nil,
    /// `|`.
    Pipe,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `,`.
    Comma,
    /// `:=`.
    Declare,
    /// `=`.
    Assign,
}

/// A token and whether white space came before it (Go separates the
/// operands of a command by space, and `x.f` chains only without it).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) space_before: bool,
}

const KEYWORDS: [&str; 10] = [
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Splits a template into tokens.
///
/// # Errors
/// On an unclosed action, comment or quote, or a character that cannot
/// start a token; the message is Go's where it has one.
pub(crate) fn lex(input: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut rest = input;
    // Whether the previous action ended with `-}}`: the next text loses its
    // leading white space.
    let mut trim_next = false;
    loop {
        let Some(start) = rest.find("{{") else {
            push_text(&mut out, rest, trim_next, false);
            return Ok(out);
        };
        let after = &rest[start + 2..];
        // `{{-` trims only when a space follows, so `{{-3}}` is the number -3.
        let trim_left = after.starts_with('-') && after[1..].starts_with(is_space);
        push_text(&mut out, &rest[..start], trim_next, trim_left);
        let mut body = if trim_left { &after[2..] } else { after };
        if trim_left {
            body = body.trim_start_matches(is_space);
        }
        if let Some(comment) = body.strip_prefix("/*") {
            let end = comment.find("*/").ok_or("unclosed comment")?;
            let tail = &comment[end + 2..];
            let (trim_right, tail) = match close_at(tail) {
                Some(x) => x,
                None => return Err("comment ends before closing delimiter".into()),
            };
            trim_next = trim_right;
            rest = tail;
            continue;
        }
        out.push(Token {
            tok: Tok::Open,
            space_before: false,
        });
        let (trim_right, tail) = lex_action(body, &mut out)?;
        trim_next = trim_right;
        rest = tail;
    }
}

fn push_text(out: &mut Vec<Token>, text: &str, trim_start: bool, trim_end: bool) {
    let mut text = text;
    if trim_start {
        text = text.trim_start_matches(is_space);
    }
    if trim_end {
        text = text.trim_end_matches(is_space);
    }
    if !text.is_empty() {
        out.push(Token {
            tok: Tok::Text(text.to_string()),
            space_before: false,
        });
    }
}

/// If `s` starts with the closing delimiter (after optional space, with an
/// optional trim marker), returns whether it trims and the text after it.
fn close_at(s: &str) -> Option<(bool, &str)> {
    let trimmed = s.trim_start_matches(is_space);
    if let Some(tail) = trimmed.strip_prefix("}}") {
        return Some((false, tail));
    }
    // ` -}}` needs the space before the dash, so `3-}}` is not a trim.
    if trimmed.len() < s.len()
        && let Some(tail) = trimmed.strip_prefix("-}}")
    {
        return Some((true, tail));
    }
    None
}

/// Lexes the inside of one action; returns whether it ended with `-}}` and
/// the text after it.
fn lex_action<'a>(mut s: &'a str, out: &mut Vec<Token>) -> Result<(bool, &'a str), String> {
    let mut parens = 0usize;
    let mut space = false;
    loop {
        if let Some((trim, tail)) = close_at(s) {
            if parens > 0 {
                return Err("unclosed left paren".into());
            }
            out.push(Token {
                tok: Tok::Close,
                space_before: false,
            });
            return Ok((trim, tail));
        }
        let Some(c) = s.chars().next() else {
            return Err("unclosed action".into());
        };
        if is_space(c) {
            s = s.trim_start_matches(is_space);
            space = true;
            continue;
        }
        let (tok, len) = match c {
            '|' => (Tok::Pipe, 1),
            '(' => {
                parens += 1;
                (Tok::LParen, 1)
            }
            ')' => {
                if parens == 0 {
                    return Err("unexpected right paren".into());
                }
                parens -= 1;
                (Tok::RParen, 1)
            }
            ',' => (Tok::Comma, 1),
            ':' => {
                if !s[1..].starts_with('=') {
                    return Err("expected :=".into());
                }
                (Tok::Declare, 2)
            }
            '=' => (Tok::Assign, 1),
            '"' => lex_quote(s)?,
            '`' => {
                let end = s[1..].find('`').ok_or("unterminated raw quoted string")?;
                (Tok::Str(s[1..1 + end].to_string()), end + 2)
            }
            '\'' => lex_char(s)?,
            '$' => {
                let len = 1 + s[1..].find(|c: char| !is_alnum(c)).unwrap_or(s.len() - 1);
                (Tok::Var(s[..len].to_string()), len)
            }
            '.' if !s[1..].starts_with(|c: char| c.is_ascii_digit()) => {
                let len = 1 + s[1..].find(|c: char| !is_alnum(c)).unwrap_or(s.len() - 1);
                if len == 1 {
                    (Tok::Dot, 1)
                } else {
                    (Tok::Field(s[1..len].to_string()), len)
                }
            }
            c if c.is_ascii_digit() || c == '.' || c == '+' || c == '-' => {
                let len = number_len(s);
                if len == 0 {
                    return Err(format!("bad character {c:?}"));
                }
                (Tok::Number(s[..len].to_string()), len)
            }
            c if is_alnum(c) => {
                let len = s.find(|c: char| !is_alnum(c)).unwrap_or(s.len());
                let word = &s[..len];
                let tok = match word {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    "nil" => Tok::Nil,
                    w => match KEYWORDS.iter().find(|k| **k == w) {
                        Some(k) => Tok::Keyword(k),
                        None => Tok::Ident(w.to_string()),
                    },
                };
                (tok, len)
            }
            c => return Err(format!("bad character {c:?}")),
        };
        out.push(Token {
            tok,
            space_before: space,
        });
        space = false;
        s = &s[len..];
    }
}

/// The length of the number literal at the start of `s` (0 if none): an
/// optional sign, then digits, `_`, `.`, exponents and radix prefixes,
/// checked later by [`parse_number`].
fn number_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    let mut i = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let start = i;
    while i < bytes.len() {
        let b = bytes[i];
        let exp_sign = matches!(b, b'+' | b'-')
            && i > start
            && matches!(bytes[i - 1], b'e' | b'E' | b'p' | b'P')
            && !s[start..].starts_with("0x")
            && !s[start..].starts_with("0X");
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || exp_sign {
            i += 1;
        } else {
            break;
        }
    }
    if i == start { 0 } else { i }
}

fn lex_quote(s: &str) -> Result<(Tok, usize), String> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((Tok::Str(out), i + 1)),
            '\n' => break,
            '\\' => {
                let (_, e) = chars.next().ok_or("unterminated quoted string")?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut code = 0u32;
                        for _ in 0..n {
                            let (_, h) = chars.next().ok_or("unterminated quoted string")?;
                            code = code * 16
                                + h.to_digit(16).ok_or("invalid syntax in quoted string")?;
                        }
                        out.push(char::from_u32(code).ok_or("invalid syntax in quoted string")?);
                    }
                    '0'..='7' => {
                        let mut code = e.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            let (_, o) = chars.next().ok_or("unterminated quoted string")?;
                            code = code * 8
                                + o.to_digit(8).ok_or("invalid syntax in quoted string")?;
                        }
                        out.push(char::from_u32(code).ok_or("invalid syntax in quoted string")?);
                    }
                    _ => return Err("invalid syntax in quoted string".into()),
                }
            }
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

fn lex_char(s: &str) -> Result<(Tok, usize), String> {
    let body = &s[1..];
    let end = body.find('\'').ok_or("unterminated character constant")?;
    let inner = &body[..end];
    let c = if let Some(esc) = inner.strip_prefix('\\') {
        match esc {
            "n" => '\n',
            "t" => '\t',
            "r" => '\r',
            "\\" => '\\',
            "'" => '\'',
            "0" => '\0',
            _ => return Err(format!("malformed character constant: '{inner}'")),
        }
    } else {
        let mut it = inner.chars();
        match (it.next(), it.next()) {
            (Some(c), None) => c,
            _ => return Err(format!("malformed character constant: '{inner}'")),
        }
    };
    Ok((Tok::Char(c), end + 2))
}

/// A parsed number literal: Go's int (decimal, 0x, 0o, 0b, with `_`) or
/// float.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Number {
    /// An integer constant.
    Int(i64),
    /// A floating-point constant.
    Float(f64),
}

/// Parses a number literal as written.
///
/// # Errors
/// When it is not a valid Go number.
pub(crate) fn parse_number(text: &str) -> Result<Number, String> {
    let bad = || format!("bad number syntax: {text:?}");
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let clean: String = body.chars().filter(|c| *c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    let radix = if lower.starts_with("0x") {
        Some((16, &clean[2..]))
    } else if lower.starts_with("0o") {
        Some((8, &clean[2..]))
    } else if lower.starts_with("0b") {
        Some((2, &clean[2..]))
    } else if clean.len() > 1 && clean.starts_with('0') && clean.bytes().all(|b| b.is_ascii_digit())
    {
        Some((8, &clean[1..]))
    } else {
        None
    };
    if let Some((radix, digits)) = radix {
        let v = i64::from_str_radix(digits, radix).map_err(|_| bad())?;
        return Ok(Number::Int(if neg { -v } else { v }));
    }
    if clean.bytes().all(|b| b.is_ascii_digit()) && !clean.is_empty() {
        let v: i64 = clean.parse().map_err(|_| bad())?;
        return Ok(Number::Int(if neg { -v } else { v }));
    }
    let v: f64 = clean.parse().map_err(|_| bad())?;
    if !v.is_finite() || clean.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E') {
        return Err(bad());
    }
    // A literal with a point or an exponent is a float64, as Go passes it
    // to an `interface{}` (`{{ 1e6 }}` prints 1e+06); functions that want an
    // int still take it when it is whole.
    Ok(Number::Float(if neg { -v } else { v }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).expect("lexes").into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn trim_markers_remove_adjacent_white_space() {
        assert_eq!(
            toks("a \n{{- .x -}}\n b"),
            vec![
                Tok::Text("a".into()),
                Tok::Open,
                Tok::Field("x".into()),
                Tok::Close,
                Tok::Text("b".into())
            ]
        );
    }

    #[test]
    fn a_dash_without_space_is_a_negative_number() {
        assert_eq!(
            toks("{{-3}}"),
            vec![Tok::Open, Tok::Number("-3".into()), Tok::Close]
        );
    }

    #[test]
    fn comments_vanish_and_may_trim() {
        assert_eq!(
            toks("a {{- /* hi */ -}} b"),
            vec![Tok::Text("a".into()), Tok::Text("b".into())]
        );
    }

    #[test]
    fn lex_errors_name_the_problem() {
        let cases = [
            ("{{ .x ", "unclosed action"),
            ("{{ \"abc }}", "unterminated quoted string"),
            ("{{ (.x }}", "unclosed left paren"),
            ("{{ .x) }}", "unexpected right paren"),
            ("{{/* x */ .y }}", "comment ends before closing delimiter"),
            ("{{ /* x */ }}", "bad character"),
            ("{{ # }}", "bad character"),
        ];
        for (input, want) in cases {
            let err = lex(input).expect_err(input);
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn numbers_parse_as_go_constants() {
        let cases = [
            ("42", Number::Int(42)),
            ("-7", Number::Int(-7)),
            ("0x1F", Number::Int(31)),
            ("0o17", Number::Int(15)),
            ("0b101", Number::Int(5)),
            ("1_000", Number::Int(1000)),
            ("1.5", Number::Float(1.5)),
            ("1e3", Number::Float(1000.0)),
            ("2.5e-1", Number::Float(0.25)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_number(text), Ok(want), "{text}");
        }
        assert!(parse_number("1x").is_err());
    }
}
