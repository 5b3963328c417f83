//! Where minijinja and Python's Jinja2 differ in what a template prints or tests, the chat
//! templates get Jinja2's behaviour: they were written for it (transformers renders them with
//! Jinja2), and the rendered text must match byte for byte.
//!
//! - `{{ x }}` writes `str(x)`: `None`, `True`/`False`, floats as `repr`, lists and dicts as
//!   Python writes them (`{'a': [1.5, None]}`), where minijinja would write `none`, `true`,
//!   `[1.5, none]`.
//! - `x is iterable` is false for `None` (minijinja iterates it as empty).

use std::fmt::Write as _;

use minijinja::value::ValueKind;
use minijinja::{Environment, Error, Output, State, Value};

use super::json::py_float;

/// Installs the Jinja2 behaviours above in `env`.
pub(crate) fn install(env: &mut Environment<'_>) {
    env.set_formatter(python_formatter);
    env.add_test("iterable", |value: &Value| {
        !value.is_none() && value.try_iter().is_ok()
    });
}

fn python_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None | ValueKind::Bool | ValueKind::Seq | ValueKind::Map => {
            out.write_str(&py_str(value))?;
            Ok(())
        }
        ValueKind::Number if !value.is_integer() => {
            out.write_str(&py_str(value))?;
            Ok(())
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// Python's `str(value)`.
pub(crate) fn py_str(value: &Value) -> String {
    match value.kind() {
        ValueKind::String => value.as_str().unwrap_or_default().to_owned(),
        _ => py_repr(value),
    }
}

/// Python's `repr(value)` for the JSON-like values templates handle.
fn py_repr(value: &Value) -> String {
    match value.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::None => "None".to_owned(),
        ValueKind::Bool => if value.is_true() { "True" } else { "False" }.to_owned(),
        ValueKind::Number if value.is_integer() => value.to_string(),
        ValueKind::Number => {
            f64::try_from(value.clone()).map_or_else(|_| value.to_string(), py_float_repr)
        }
        ValueKind::String => py_str_repr(value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<String> = value
                .try_iter()
                .map(|it| it.map(|v| py_repr(&v)).collect())
                .unwrap_or_default();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let entries: Vec<String> = value
                .try_iter()
                .map(|keys| {
                    keys.map(|k| {
                        let v = value.get_item(&k).unwrap_or_default();
                        format!("{}: {}", py_repr(&k), py_repr(&v))
                    })
                    .collect()
                })
                .unwrap_or_default();
            format!("{{{}}}", entries.join(", "))
        }
        _ => value.to_string(),
    }
}

/// `repr(float)`: as json.dumps writes it, except for the non-finite values.
fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        "nan".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        py_float(f)
    }
}

/// `repr(str)`: single quotes unless the text holds a single quote and no double one.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_python_prints_them() {
        let mut env = Environment::new();
        install(&mut env);
        let out = env
            .render_str(
                "{{ none }} {{ true }} {{ 0.5 }} {{ 1e16 }} {{ 3 }} {{ [1.5, none, \"it's\", 'a\"b'] }} \
                 {{ none is iterable }} {{ 'ab' is iterable }}",
                (),
            )
            .unwrap();
        assert_eq!(
            out,
            "None True 0.5 1e+16 3 [1.5, None, \"it's\", 'a\"b'] False True"
        );
    }
}
