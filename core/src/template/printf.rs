//! Go's fmt for template values: how an action prints a value (`%v`),
//! `print`/`println`, and `printf` with its verbs, flags, width and
//! precision.

use super::exec::MAX_OUTPUT;
use super::value::{MAX_DEPTH, V, too_deep};

/// How an action prints its value: nil (a missing key) is `<no value>`.
///
/// # Errors
/// When the value nests too deep.
pub(crate) fn print_top(v: &V) -> Result<String, String> {
    match v {
        V::Null => Ok("<no value>".into()),
        other => fmt_v(other),
    }
}

/// Go's `%v`: `[a b]` for lists, `map[k:v]` for maps, `<nil>` for nil.
///
/// # Errors
/// When the value nests too deep or prints larger than the output bound.
pub(crate) fn fmt_v(v: &V) -> Result<String, String> {
    let mut out = String::new();
    write_v(&mut out, v, 0)?;
    Ok(out)
}

fn write_v(out: &mut String, v: &V, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    if out.len() > MAX_OUTPUT {
        return Err(format!("output larger than {MAX_OUTPUT} bytes"));
    }
    match v {
        V::Null => out.push_str("<nil>"),
        V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        V::Int(i) => out.push_str(&i.to_string()),
        V::Float(f) => out.push_str(&format_float_v(*f)),
        V::Str(s) => out.push_str(s),
        V::List(l) => {
            out.push('[');
            for (i, item) in l.0.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v(out, item, depth + 1)?;
            }
            out.push(']');
        }
        V::Map(m) => {
            out.push_str("map[");
            for (i, (k, item)) in m.0.borrow().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_v(out, item, depth + 1)?;
            }
            out.push(']');
        }
    }
    Ok(())
}

/// The shortest decimal digits of `f` and its decimal exponent: `f` is
/// `0.d1d2d3... × 10^(exp+1)`, that is `d1.d2d3... × 10^exp`.
fn shortest_digits(f: f64) -> (String, i32) {
    // Rust's `{:e}` prints the shortest digits that round-trip, as Go's
    // strconv does with precision -1.
    let s = format!("{:e}", f.abs());
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// Go's `%v` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): the
/// shortest digits, in exponent form when the exponent is below -4 or 6 and
/// above (so 1e6 prints `1e+06`, as in Helm and Argo CD).
pub(crate) fn format_float_v(f: f64) -> String {
    format_float_g(f, None, 6)
}

/// `%g` with an optional precision; `eprec` is the exponent from which the
/// shortest form switches to the exponent notation.
fn format_float_g(f: f64, prec: Option<usize>, shortest_eprec: i32) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let neg = f.is_sign_negative() && f != 0.0;
    let (digits, exp) = match prec {
        None => shortest_digits(f),
        Some(p) => {
            let p = p.max(1);
            let s = format!("{:.*e}", p - 1, f.abs());
            let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
            let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
            while digits.len() > 1 && digits.ends_with('0') {
                digits.pop();
            }
            (digits, exp.parse().unwrap_or(0))
        }
    };
    let eprec = match prec {
        None => shortest_eprec,
        Some(p) => {
            let p = p.max(1) as i32;
            if p > digits.len() as i32 && digits.len() as i32 > exp {
                digits.len() as i32
            } else {
                p
            }
        }
    };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if f == 0.0 {
        out.push('0');
        return out;
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    } else if exp < 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-exp - 1) as usize));
        out.push_str(&digits);
    } else {
        let point = exp as usize + 1;
        if digits.len() <= point {
            out.push_str(&digits);
            out.push_str(&"0".repeat(point - digits.len()));
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
    out
}

/// Go's `%e` with a precision (default 6).
fn format_float_e(f: f64, prec: usize, upper: bool) -> String {
    let s = format!("{:.*e}", prec, f);
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let e = if upper { 'E' } else { 'e' };
    format!(
        "{mantissa}{e}{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.abs()
    )
}

/// Go's `fmt.Sprint`: operands joined, with a space between two operands
/// when neither is a string.
///
/// # Errors
/// When a value nests too deep.
pub(crate) fn sprint(args: &[V]) -> Result<String, String> {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, V::Str(_)) && !matches!(args[i - 1], V::Str(_)) {
            out.push(' ');
        }
        write_v(&mut out, a, 0)?;
    }
    Ok(out)
}

/// Go's `fmt.Sprintln`: operands joined by spaces, then a newline.
///
/// # Errors
/// When a value nests too deep.
pub(crate) fn sprintln(args: &[V]) -> Result<String, String> {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_v(&mut out, a, 0)?;
    }
    out.push('\n');
    Ok(out)
}

/// Go's `strconv.Quote`: a double-quoted string with Go escapes.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One `%` directive's flags, width and precision.
#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Go's `fmt.Sprintf` over template values.
///
/// # Errors
/// When a value nests too deep or the width asks for too much output.
pub(crate) fn sprintf(format: &str, args: &[V]) -> Result<String, String> {
    let mut out = String::new();
    let mut next = 0usize;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        spec.width = number(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(number(&mut chars).unwrap_or(0));
        }
        if spec.width.unwrap_or(0) > MAX_OUTPUT || spec.prec.unwrap_or(0) > MAX_OUTPUT {
            return Err(format!(
                "printf width or precision larger than {MAX_OUTPUT}"
            ));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let text = match format_one(verb, &spec, arg)? {
            Some(t) => t,
            None => {
                out.push_str(&format!("%!{verb}({}={})", arg.type_name(), fmt_v(arg)?));
                continue;
            }
        };
        out.push_str(&pad(&text, &spec, matches!(arg, V::Int(_) | V::Float(_))));
        if out.len() > MAX_OUTPUT {
            return Err(format!("output larger than {MAX_OUTPUT} bytes"));
        }
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[next..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("{}={}", a.type_name(), fmt_v(a)?));
        }
        out.push(')');
    }
    Ok(out)
}

fn number(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
        chars.next();
    }
    n
}

fn pad(text: &str, spec: &Spec, numeric: bool) -> String {
    let width = spec.width.unwrap_or(0);
    let len = text.chars().count();
    if len >= width {
        return text.to_string();
    }
    let fill = width - len;
    if spec.minus {
        format!("{text}{}", " ".repeat(fill))
    } else if spec.zero && numeric {
        // Zeros go after the sign.
        let (sign, rest) = match text.strip_prefix(['-', '+']) {
            Some(rest) => (&text[..1], rest),
            None => ("", text),
        };
        format!("{sign}{}{rest}", "0".repeat(fill))
    } else {
        format!("{}{text}", " ".repeat(fill))
    }
}

fn sign(spec: &Spec, negative: bool) -> &'static str {
    if negative {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

/// Formats one operand; `None` when the verb does not fit its type.
fn format_one(verb: char, spec: &Spec, arg: &V) -> Result<Option<String>, String> {
    Ok(Some(match (verb, arg) {
        ('v', V::Int(i)) | ('d', V::Int(i)) => {
            format!("{}{}", sign(spec, *i < 0), i.unsigned_abs())
        }
        ('v', V::Float(f)) => {
            let s = format_float_g(*f, spec.prec, 6);
            if *f >= 0.0 {
                format!("{}{s}", sign(spec, false))
            } else {
                s
            }
        }
        ('v', other) => fmt_v(other)?,
        ('T', other) => other.type_name().to_string(),
        ('s', V::Str(s)) => truncate(s, spec.prec),
        ('s', V::Null) => "%!s(<nil>)".into(),
        ('s', V::List(_) | V::Map(_) | V::Bool(_)) => fmt_v(arg)?,
        ('q', V::Str(s)) => go_quote(s),
        ('q', V::Int(i)) => match u32::try_from(*i).ok().and_then(char::from_u32) {
            Some(c) => format!("'{c}'"),
            None => return Ok(None),
        },
        ('t', V::Bool(b)) => b.to_string(),
        ('c', V::Int(i)) => match u32::try_from(*i).ok().and_then(char::from_u32) {
            Some(c) => c.to_string(),
            None => "\u{fffd}".into(),
        },
        ('x' | 'X', V::Int(i)) => {
            let digits = if verb == 'x' {
                format!("{:x}", i.unsigned_abs())
            } else {
                format!("{:X}", i.unsigned_abs())
            };
            let prefix = match (spec.sharp, verb) {
                (true, 'x') => "0x",
                (true, _) => "0X",
                _ => "",
            };
            format!("{}{prefix}{digits}", sign(spec, *i < 0))
        }
        ('x' | 'X', V::Str(s)) => {
            let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
            if verb == 'X' { hex.to_uppercase() } else { hex }
        }
        ('o', V::Int(i)) => format!(
            "{}{}{:o}",
            sign(spec, *i < 0),
            if spec.sharp { "0" } else { "" },
            i.unsigned_abs()
        ),
        ('O', V::Int(i)) => format!("{}0o{:o}", sign(spec, *i < 0), i.unsigned_abs()),
        ('b', V::Int(i)) => format!("{}{:b}", sign(spec, *i < 0), i.unsigned_abs()),
        ('U', V::Int(i)) => format!("U+{:04X}", i),
        ('f' | 'F', V::Float(f)) => {
            float_with_sign(spec, *f, format!("{:.*}", spec.prec.unwrap_or(6), f.abs()))
        }
        ('e' | 'E', V::Float(f)) => float_with_sign(
            spec,
            *f,
            format_float_e(f.abs(), spec.prec.unwrap_or(6), verb == 'E'),
        ),
        ('g' | 'G', V::Float(f)) => {
            let s = format_float_g(f.abs(), spec.prec, 6);
            float_with_sign(spec, *f, if verb == 'G' { s.to_uppercase() } else { s })
        }
        _ => return Ok(None),
    }))
}

fn float_with_sign(spec: &Spec, f: f64, body: String) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return format!("{}Inf", if f < 0.0 { "-" } else { "+" });
    }
    format!("{}{body}", sign(spec, f.is_sign_negative() && f != 0.0))
}

fn truncate(s: &str, prec: Option<usize>) -> String {
    match prec {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go_v() {
        let cases = [
            (3.0, "3"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (123456789.0, "1.23456789e+08"),
        ];
        for (f, want) in cases {
            assert_eq!(format_float_v(f), want, "{f}");
        }
    }
}
