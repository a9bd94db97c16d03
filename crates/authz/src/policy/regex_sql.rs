//! `regex:` resource patterns in SQL, exactly as the in-memory evaluator matches them.
//!
//! The evaluator matches the Rust regex `\A(?:<re>)` against the qualified id
//! (`sql_record::<table>::<id>`). On SQLite the compiled predicate calls the `regexp` function the
//! catalog registers on every connection, which runs that same Rust regex: equal by construction.
//! On PostgreSQL the regex is translated to an equivalent Advanced Regular Expression for the `~`
//! operator, from the syntax tree the `regex` crate itself parses (so escapes, classes, flags and
//! case folding are already resolved): literals and class ranges become code-point escapes,
//! groups become non-capturing, repetitions keep their bounds (greediness does not change
//! whether a text matches). What cannot be translated exactly is refused, naming it: multi-line
//! and word-boundary assertions, repetition bounds above PostgreSQL's 255.

use std::fmt::Write as _;

use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// The most a PostgreSQL repetition bound may be (`DUPMAX`).
const PG_MAX_REPEAT: u32 = 255;

/// A `regex:` pattern ready for both dialects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlRegex {
    /// For SQLite's `regexp`: the evaluator's own regex, `\A(?:<re>)`.
    pub rust: String,
    /// For PostgreSQL's `~`: the translation, anchored with `^`.
    pub postgres: String,
}

/// Both forms of the start-anchored regex `source`, or why PostgreSQL cannot get an exact one.
pub fn translate(source: &str) -> Result<SqlRegex, String> {
    let rust = format!(r"\A(?:{source})");
    let hir = regex_syntax::ParserBuilder::new().build().parse(&rust).map_err(|e| format!("invalid regex: {e}"))?;
    let mut postgres = String::new();
    emit(&hir, &mut postgres)?;
    Ok(SqlRegex { rust, postgres })
}

fn emit(hir: &Hir, out: &mut String) -> Result<(), String> {
    match hir.kind() {
        HirKind::Empty => out.push_str("(?:)"),
        HirKind::Literal(lit) => {
            let text = std::str::from_utf8(&lit.0).map_err(|_| "a byte literal that is not UTF-8".to_owned())?;
            for c in text.chars() {
                literal_char(c, out);
            }
        }
        HirKind::Class(Class::Unicode(class)) => {
            // Ranges of code points, each end as an escape. PostgreSQL text never holds NUL, so a
            // range may start at 1 instead; an empty class matches nothing, and neither does a
            // class holding only NUL.
            let mut body = String::new();
            for r in class.ranges() {
                let start = u32::from(r.start()).max(1);
                let end = u32::from(r.end());
                if end < start {
                    continue;
                }
                write_escape(start, &mut body);
                if end > start {
                    body.push('-');
                    write_escape(end, &mut body);
                }
            }
            if body.is_empty() {
                out.push_str(r"[^\U00000001-\U0010FFFF]");
            } else {
                out.push('[');
                out.push_str(&body);
                out.push(']');
            }
        }
        HirKind::Class(Class::Bytes(_)) => return Err("a byte class (?-u)".to_owned()),
        HirKind::Look(look) => match look {
            Look::Start => out.push('^'),
            Look::End => out.push('$'),
            Look::StartLF | Look::EndLF | Look::StartCRLF | Look::EndCRLF => {
                return Err("a multi-line anchor ((?m)^ or (?m)$)".to_owned());
            }
            _ => return Err("a word-boundary assertion (\\b, \\B, \\<, \\>)".to_owned()),
        },
        HirKind::Repetition(rep) => {
            if rep.min > PG_MAX_REPEAT || rep.max.is_some_and(|m| m > PG_MAX_REPEAT) {
                return Err(format!("a repetition bound above {PG_MAX_REPEAT}"));
            }
            out.push_str("(?:");
            emit(&rep.sub, out)?;
            out.push(')');
            match rep.max {
                Some(max) if max == rep.min => {
                    let _ = write!(out, "{{{max}}}");
                }
                Some(max) => {
                    let _ = write!(out, "{{{},{max}}}", rep.min);
                }
                None => {
                    let _ = write!(out, "{{{},}}", rep.min);
                }
            }
        }
        HirKind::Capture(cap) => {
            out.push_str("(?:");
            emit(&cap.sub, out)?;
            out.push(')');
        }
        HirKind::Concat(items) => {
            for item in items {
                emit(item, out)?;
            }
        }
        HirKind::Alternation(items) => {
            out.push_str("(?:");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                emit(item, out)?;
            }
            out.push(')');
        }
    }
    Ok(())
}

/// A literal character: ASCII letters and digits as they are, anything else as a code-point
/// escape (never special, in or out of brackets).
fn literal_char(c: char, out: &mut String) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else {
        write_escape(u32::from(c), out);
    }
}

fn write_escape(code: u32, out: &mut String) {
    let _ = write!(out, "\\U{code:08X}");
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn translations() {
        let t = translate("sql_record::t::file-[a-f0-9]+").map(|r| r.postgres);
        assert_eq!(
            t.as_deref(),
            Ok(
                r"^sql\U0000005Frecord\U0000003A\U0000003At\U0000003A\U0000003Afile\U0000002D(?:[\U00000030-\U00000039\U00000061-\U00000066]){1,}"
            )
        );
        assert_eq!(translate("a|b").map(|r| r.rust).as_deref(), Ok(r"\A(?:a|b)"));
        assert_eq!(translate("(?:ab){2,3}$").map(|r| r.postgres).as_deref(), Ok("^(?:ab){2,3}$"));
    }

    #[test]
    fn refusals_name_the_construct() {
        for (re, words) in [
            ("(?m)^a", "multi-line"),
            (r"a\b", "word-boundary"),
            ("a{256}", "above 255"),
            // Byte classes that can match invalid UTF-8 are refused by the parser already.
            ("(?-u:[\\x80-\\xff])", "invalid regex"),
        ] {
            let err = translate(re).expect_err(re);
            assert!(err.contains(words), "{re}: {err}");
        }
    }
}
