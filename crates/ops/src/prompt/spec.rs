//! Python's format-spec mini-language (`format(value, spec)`), for the
//! JSON values a prompt variable can hold.
//!
//! Supported: `[[fill]align][sign][z][#][0][width][grouping][.precision][type]`
//! with the types `s` for strings, `b c d o x X n` for integers and
//! `e E f F g G n %` for integers and floats. Booleans format as integers
//! (an empty spec gives `True`/`False`, as in Python); null, lists and
//! objects accept only the empty spec.

use operonx_graph::expr::to_py_str;
use serde_json::Value;

/// A parsed format spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Spec {
    fill: Option<char>,
    align: Option<char>,
    sign: Option<char>,
    no_neg_zero: bool,
    alternate: bool,
    zero: bool,
    width: usize,
    grouping: Option<char>,
    precision: Option<usize>,
    kind: Option<char>,
}

/// Format `value` with `spec` as Python's `format(value, spec)` does.
/// The error text is Python's message for the same failure.
pub(crate) fn format_value(value: &Value, spec: &str) -> Result<String, String> {
    if spec.is_empty() {
        return Ok(to_py_str(value));
    }
    let parsed = parse(spec)?;
    match value {
        Value::String(s) => format_str(s, &parsed),
        Value::Bool(b) => format_int(i128::from(*b), &parsed),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                format_int(i128::from(i), &parsed)
            } else if let Some(u) = n.as_u64() {
                format_int(i128::from(u), &parsed)
            } else {
                format_float(n.as_f64().unwrap_or(f64::NAN), &parsed)
            }
        }
        Value::Null => Err("unsupported format string passed to NoneType.__format__".to_owned()),
        Value::Array(_) => Err("unsupported format string passed to list.__format__".to_owned()),
        Value::Object(_) => Err("unsupported format string passed to dict.__format__".to_owned()),
    }
}

fn is_align(c: char) -> bool {
    matches!(c, '<' | '>' | '=' | '^')
}

fn parse(spec: &str) -> Result<Spec, String> {
    let chars: Vec<char> = spec.chars().collect();
    let mut out = Spec::default();
    let mut i = 0;
    if chars.len() >= 2 && is_align(chars[1]) {
        out.fill = Some(chars[0]);
        out.align = Some(chars[1]);
        i = 2;
    } else if chars.first().copied().is_some_and(is_align) {
        out.align = chars.first().copied();
        i = 1;
    }
    if let Some(&c @ ('+' | '-' | ' ')) = chars.get(i) {
        out.sign = Some(c);
        i += 1;
    }
    if chars.get(i) == Some(&'z') {
        out.no_neg_zero = true;
        i += 1;
    }
    if chars.get(i) == Some(&'#') {
        out.alternate = true;
        i += 1;
    }
    if chars.get(i) == Some(&'0') {
        out.zero = true;
        i += 1;
    }
    let digits = |i: &mut usize| -> Option<usize> {
        let start = *i;
        while chars.get(*i).is_some_and(char::is_ascii_digit) {
            *i += 1;
        }
        (*i > start).then(|| chars[start..*i].iter().collect::<String>().parse().unwrap_or(usize::MAX))
    };
    out.width = digits(&mut i).unwrap_or(0);
    if let Some(&c @ (',' | '_')) = chars.get(i) {
        out.grouping = Some(c);
        i += 1;
    }
    if chars.get(i) == Some(&'.') {
        i += 1;
        out.precision = Some(digits(&mut i).ok_or("Format specifier missing precision")?);
    }
    if let Some(&c) = chars.get(i) {
        out.kind = Some(c);
        i += 1;
    }
    if i < chars.len() {
        return Err("Invalid format specifier".to_owned());
    }
    if out.zero && out.align.is_none() {
        out.fill = out.fill.or(Some('0'));
        out.align = Some('=');
    }
    Ok(out)
}

fn unknown_code(kind: char, type_name: &str) -> String {
    format!("Unknown format code '{kind}' for object of type '{type_name}'")
}

fn format_str(s: &str, spec: &Spec) -> Result<String, String> {
    if let Some(kind) = spec.kind.filter(|&k| k != 's') {
        return Err(unknown_code(kind, "str"));
    }
    if spec.sign.is_some() {
        return Err("Sign not allowed in string format specifier".to_owned());
    }
    if spec.alternate {
        return Err("Alternate form (#) not allowed in string format specifier".to_owned());
    }
    if spec.align == Some('=') && !spec.zero {
        return Err("'=' alignment not allowed in string format specifier".to_owned());
    }
    if let Some(g) = spec.grouping {
        return Err(format!("Cannot specify '{g}' with 's'."));
    }
    let text: String = match spec.precision {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_owned(),
    };
    // A `0` flag on a string pads with zeros on the right.
    let align = if spec.align == Some('=') { '<' } else { spec.align.unwrap_or('<') };
    Ok(pad("", &text, spec.fill.unwrap_or(' '), align, spec.width))
}

fn format_int(i: i128, spec: &Spec) -> Result<String, String> {
    let kind = spec.kind.unwrap_or('d');
    let (radix, prefix) = match kind {
        'd' | 'n' => (10, ""),
        'b' => (2, "0b"),
        'o' => (8, "0o"),
        'x' => (16, "0x"),
        'X' => (16, "0X"),
        'c' => {
            return char::from_u32(u32::try_from(i).map_err(|_| "%c arg not in range(0x110000)".to_owned())?)
                .map(|c| pad("", &c.to_string(), spec.fill.unwrap_or(' '), spec.align.unwrap_or('<'), spec.width))
                .ok_or_else(|| "%c arg not in range(0x110000)".to_owned());
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' | '%' => return format_float(i as f64, spec),
        other => return Err(unknown_code(other, "int")),
    };
    if spec.precision.is_some() {
        return Err("Precision not allowed in integer format specifier".to_owned());
    }
    if spec.grouping == Some(',') && radix != 10 || kind == 'n' && spec.grouping.is_some() {
        return Err(format!("Cannot specify ',' with '{kind}'."));
    }
    let magnitude = i.unsigned_abs();
    let mut digits = match radix {
        2 => format!("{magnitude:b}"),
        8 => format!("{magnitude:o}"),
        16 if kind == 'X' => format!("{magnitude:X}"),
        16 => format!("{magnitude:x}"),
        _ => magnitude.to_string(),
    };
    if let Some(sep) = spec.grouping {
        digits = group(&digits, sep, if radix == 10 { 3 } else { 4 });
    }
    let prefix = if spec.alternate { prefix } else { "" };
    let sign = sign_text(i < 0, spec.sign);
    Ok(pad(&format!("{sign}{prefix}"), &digits, spec.fill.unwrap_or(' '), spec.align.unwrap_or('>'), spec.width))
}

fn format_float(f: f64, spec: &Spec) -> Result<String, String> {
    let kind = spec.kind;
    if let Some(k) = kind.filter(|k| !"eEfFgGn%".contains(*k)) {
        return Err(unknown_code(k, "float"));
    }
    let upper = matches!(kind, Some('E' | 'F' | 'G'));
    let mut value = f;
    let body = if !f.is_finite() {
        let word = if f.is_nan() { "nan" } else { "inf" };
        if upper { word.to_uppercase() } else { word.to_owned() }
    } else {
        match kind {
            None if spec.precision.is_none() => {
                operonx_graph::expr::repr(&Value::from(f.abs())).trim_start_matches('-').to_owned()
            }
            None => general(f.abs(), spec.precision.unwrap_or(6), spec.alternate, true),
            Some('f' | 'F') => fixed(f.abs(), spec.precision.unwrap_or(6)),
            Some('e' | 'E') => scientific(f.abs(), spec.precision.unwrap_or(6), upper),
            Some('%') => {
                value = f * 100.0;
                format!("{}%", fixed(value.abs(), spec.precision.unwrap_or(6)))
            }
            _ => general(f.abs(), spec.precision.unwrap_or(6), spec.alternate, false),
        }
    };
    let body = if upper { body.to_uppercase() } else { body };
    let body = match spec.grouping {
        Some(sep) if value.is_finite() => {
            let split = body.find(|c: char| !c.is_ascii_digit()).unwrap_or(body.len());
            format!("{}{}", group(&body[..split], sep, 3), &body[split..])
        }
        _ => body,
    };
    let is_zero = body.chars().all(|c| !c.is_ascii_digit() || c == '0');
    let negative = value.is_sign_negative() && !value.is_nan() && !(spec.no_neg_zero && is_zero);
    let sign = sign_text(negative, spec.sign);
    Ok(pad(sign, &body, spec.fill.unwrap_or(' '), spec.align.unwrap_or('>'), spec.width))
}

/// `f` formatting of a non-negative finite float.
fn fixed(f: f64, precision: usize) -> String {
    format!("{f:.precision$}")
}

/// `e` formatting with Python's exponent (`e+05`).
fn scientific(f: f64, precision: usize, upper: bool) -> String {
    let text = format!("{f:.precision$e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exp: i32 = exponent.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    let e = if upper { 'E' } else { 'e' };
    format!("{mantissa}{e}{sign}{:02}", exp.abs())
}

/// `g` formatting (and the no-type form with a precision, `repr_like`,
/// which switches to scientific one exponent earlier and keeps a `.0`).
fn general(f: f64, precision: usize, alternate: bool, repr_like: bool) -> String {
    let p = precision.max(1);
    let probe = format!("{f:.prec$e}", prec = p - 1);
    let exp: i64 = probe.split_once('e').and_then(|(_, e)| e.parse().ok()).unwrap_or(0);
    let limit = i64::try_from(p).unwrap_or(i64::MAX) - i64::from(repr_like);
    let mut text = if (-4..limit).contains(&exp) {
        fixed(f, usize::try_from(i64::try_from(p).unwrap_or(0) - 1 - exp).unwrap_or(0))
    } else {
        scientific(f, p - 1, false)
    };
    if !alternate {
        let (mantissa, exponent) = match text.find('e') {
            Some(at) => text.split_at(at),
            None => (text.as_str(), ""),
        };
        let mantissa =
            if mantissa.contains('.') { mantissa.trim_end_matches('0').trim_end_matches('.') } else { mantissa };
        text = format!("{mantissa}{exponent}");
    }
    if repr_like && !text.contains(['.', 'e']) {
        text.push_str(".0");
    }
    text
}

fn sign_text(negative: bool, sign: Option<char>) -> &'static str {
    match (negative, sign) {
        (true, _) => "-",
        (false, Some('+')) => "+",
        (false, Some(' ')) => " ",
        _ => "",
    }
}

/// Insert `sep` every `every` digits from the right.
fn group(digits: &str, sep: char, every: usize) -> String {
    let count = digits.chars().count();
    let mut out = String::with_capacity(digits.len() + count / every);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (count - i).is_multiple_of(every) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

/// Pad `prefix + body` to `width` characters.
fn pad(prefix: &str, body: &str, fill: char, align: char, width: usize) -> String {
    let len = prefix.chars().count() + body.chars().count();
    let missing = width.saturating_sub(len);
    let fill_n = |n: usize| std::iter::repeat_n(fill, n).collect::<String>();
    match align {
        '<' => format!("{prefix}{body}{}", fill_n(missing)),
        '^' => format!("{}{prefix}{body}{}", fill_n(missing / 2), fill_n(missing - missing / 2)),
        '=' => format!("{prefix}{}{body}", fill_n(missing)),
        _ => format!("{}{prefix}{body}", fill_n(missing)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(value: Value, spec: &str) -> String {
        format_value(&value, spec).unwrap()
    }

    #[test]
    fn formats_integers_like_python() {
        assert_eq!(f(json!(7), "03d"), "007");
        assert_eq!(f(json!(-5), "+05d"), "-0005");
        assert_eq!(f(json!(255), "#x"), "0xff");
        assert_eq!(f(json!(255), "X"), "FF");
        assert_eq!(f(json!(12), "_b"), "1100");
        assert_eq!(f(json!(1_234_567), ","), "1,234,567");
        assert_eq!(f(json!(7), "*^7"), "***7***");
        assert_eq!(f(json!(5), "+"), "+5");
        assert_eq!(f(json!(5), "<3"), "5  ");
        assert_eq!(f(json!(3), ".2f"), "3.00");
        assert_eq!(f(json!(5), ".1%"), "500.0%");
        assert_eq!(f(json!(true), "d"), "1");
        assert_eq!(f(json!(true), ">5"), "    1");
        assert_eq!(f(json!(true), ""), "True");
    }

    #[test]
    fn formats_floats_like_python() {
        assert_eq!(f(json!(1_234_567.891), ",.2f"), "1,234,567.89");
        assert_eq!(f(json!(0.25), "%"), "25.000000%");
        assert_eq!(f(json!(1e-5), "g"), "1e-05");
        assert_eq!(f(json!(123_456_789.0), "e"), "1.234568e+08");
        assert_eq!(f(json!(-3.5), "=+8.2f"), "-   3.50");
        assert_eq!(f(json!(123.0), ".3"), "1.23e+02");
        assert_eq!(f(json!(123.0), ".3g"), "123");
        assert_eq!(f(json!(1.0), ".3"), "1.0");
        assert_eq!(f(json!(100.0), ".2"), "1e+02");
        assert_eq!(f(json!(0.0001), ".2"), "0.0001");
        assert_eq!(f(json!(0.125), ".2f"), "0.12");
        assert_eq!(f(json!(2.5), ".0f"), "2");
        assert_eq!(f(json!(1.5), ".0e"), "2e+00");
        assert_eq!(f(json!(5.0), "#g"), "5.00000");
        assert_eq!(f(json!(5.0), "g"), "5");
        assert_eq!(f(json!(1e16), ">8"), "   1e+16");
        assert_eq!(f(json!(-0.0), "z.1f"), "0.0");
        assert_eq!(f(json!(2.5), "x>6"), "xxx2.5");
    }

    #[test]
    fn formats_strings_like_python() {
        assert_eq!(f(json!("Bo"), ">4"), "  Bo");
        assert_eq!(f(json!("ab"), "^6"), "  ab  ");
        assert_eq!(f(json!("abc"), ".2"), "ab");
        assert_eq!(f(json!("ab"), "05"), "ab000");
        assert_eq!(f(json!("ab"), "s"), "ab");
    }

    #[test]
    fn rejects_specs_that_do_not_apply() {
        assert!(format_value(&json!("a"), "d").unwrap_err().contains("Unknown format code 'd'"));
        assert!(format_value(&json!("a"), "+").unwrap_err().contains("Sign not allowed"));
        assert!(format_value(&json!(1), ".2d").unwrap_err().contains("Precision not allowed"));
        assert!(format_value(&json!(2.5), "d").is_err());
        assert!(format_value(&json!([1]), "d").unwrap_err().contains("list.__format__"));
        assert!(format_value(&json!(null), ">3").is_err());
        assert!(format_value(&json!(1), "3q3").unwrap_err().contains("Invalid format specifier"));
        assert!(format_value(&json!(1), ".").is_err());
    }
}
