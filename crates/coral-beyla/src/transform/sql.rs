//! Query text obfuscation: literals become `?`.
//!
//! [`obfuscate_sql`] is a single-pass lexer, not a parser: string literals
//! (`'…'` with `''` or `\'` escapes, `E'…'`, `N'…'`, `X'…'`, `B'…'`),
//! dollar-quoted strings (`$tag$…$tag$`) and numbers (integers, decimals,
//! exponents, `0x…` hex) become `?`; comments are removed; identifiers
//! (including `t1`, `"quoted"` and `` `quoted` `` ones) and positional
//! parameters (`$1`) stay. A parenthesised list of nothing but `?` collapses
//! to `(?)`, so `IN (1, 2, 3)` and `IN (4, 5)` give the same text.
//! [`obfuscate_redis`] keeps a Redis command and its key and hides the rest.

/// `query` with its literals replaced by `?` (see the module docs).
pub fn obfuscate_sql(query: &str) -> String {
    let b = query.as_bytes();
    if !b
        .iter()
        .any(|c| matches!(c, b'\'' | b'0'..=b'9' | b'$' | b'-' | b'/' | b'.'))
    {
        return query.to_string();
    }
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match c {
            b'\'' => {
                i = skip_quoted(b, i);
                out.push(b'?');
            }
            b'"' | b'`' => {
                let end = skip_quoted(b, i);
                out.extend_from_slice(&b[i..end]);
                i = end;
            }
            b'-' if next == Some(b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if next == Some(b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(b.len());
            }
            b'$' if next.is_some_and(|n| n.is_ascii_digit()) => {
                let end = scan(b, i + 1, |c| c.is_ascii_digit());
                out.extend_from_slice(&b[i..end]);
                i = end;
            }
            b'$' => {
                let tag_end = scan(b, i + 1, |c| c.is_ascii_alphanumeric() || c == b'_');
                if b.get(tag_end) == Some(&b'$') {
                    let tag = &b[i..=tag_end];
                    let body = tag_end + 1;
                    i = b[body..]
                        .windows(tag.len())
                        .position(|w| w == tag)
                        .map_or(b.len(), |p| body + p + tag.len());
                    out.push(b'?');
                } else {
                    out.push(c);
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let end = scan(b, i, |c| {
                    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
                });
                let prefix =
                    end == i + 1 && matches!(c.to_ascii_uppercase(), b'E' | b'N' | b'X' | b'B');
                if !(prefix && b.get(end) == Some(&b'\'')) {
                    out.extend_from_slice(&b[i..end]);
                }
                i = end;
            }
            c if c.is_ascii_digit() || (c == b'.' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let end = number_end(b, i);
                if b.get(end)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
                {
                    // Not a number after all (e.g. `3d`): copy the word.
                    let word = scan(b, end, |c| c.is_ascii_alphanumeric() || c == b'_');
                    out.extend_from_slice(&b[i..word]);
                    i = word;
                } else {
                    out.push(b'?');
                    i = end;
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    let text = String::from_utf8_lossy(&out);
    collapse_lists(text.trim_end())
}

/// `command` with every argument after the key replaced by one `?`
/// (`HSET session:1 name John` → `HSET session:1 ?`); `AUTH` hides all.
pub fn obfuscate_redis(command: &str) -> String {
    let mut words = command.split_whitespace();
    let Some(cmd) = words.next() else {
        return String::new();
    };
    if cmd.eq_ignore_ascii_case("AUTH") || cmd.eq_ignore_ascii_case("HELLO") {
        return if words.next().is_some() {
            format!("{cmd} ?")
        } else {
            cmd.to_string()
        };
    }
    let mut out = cmd.to_string();
    if let Some(key) = words.next() {
        out.push(' ');
        out.push_str(key);
    }
    if words.next().is_some() {
        out.push_str(" ?");
    }
    out
}

fn scan(b: &[u8], mut i: usize, f: impl Fn(u8) -> bool) -> usize {
    while i < b.len() && f(b[i]) {
        i += 1;
    }
    i
}

/// The end of the quoted text starting at `start` (its quote doubled or
/// backslash-escaped inside), or the end of input.
fn skip_quoted(b: &[u8], start: usize) -> usize {
    let q = b[start];
    let mut i = start + 1;
    while i < b.len() {
        if b[i] == b'\\' && q == b'\'' {
            i += 2;
        } else if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

fn number_end(b: &[u8], i: usize) -> usize {
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        return scan(b, i + 2, |c| c.is_ascii_hexdigit());
    }
    let mut j = scan(b, i, |c| c.is_ascii_digit());
    if b.get(j) == Some(&b'.') {
        j = scan(b, j + 1, |c| c.is_ascii_digit());
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        let k = if matches!(b.get(j + 1), Some(b'+' | b'-')) {
            j + 2
        } else {
            j + 1
        };
        if b.get(k).is_some_and(|c| c.is_ascii_digit()) {
            j = scan(b, k, |c| c.is_ascii_digit());
        }
    }
    j
}

/// `( ?, ?, ? )` → `(?)`.
fn collapse_lists(s: &str) -> String {
    if !s.contains("?,") && !s.contains("? ,") {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'(' {
            let end = scan(b, i + 1, |c| {
                matches!(c, b'?' | b',' | b' ' | b'\t' | b'\n' | b'\r')
            });
            let inner = &s[i + 1..end];
            if b.get(end) == Some(&b')')
                && inner.contains('?')
                && !inner.contains("??")
                && !inner.contains(",,")
            {
                out.push_str("(?)");
                i = end + 1;
                continue;
            }
        }
        let ch = s[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, want: &str) {
        assert_eq!(obfuscate_sql(input), want, "input: {input}");
    }

    #[test]
    fn strings_and_numbers() {
        check(
            "SELECT * FROM users WHERE id = 42 AND name = 'bob'",
            "SELECT * FROM users WHERE id = ? AND name = ?",
        );
        check(
            "UPDATE t SET a = 'it''s', b = 'a\\'b' WHERE c = -1.5e-3",
            "UPDATE t SET a = ?, b = ? WHERE c = -?",
        );
        check(
            "SELECT 0xFF, X'0A', E'\\n', N'ü', .5",
            "SELECT ?, ?, ?, ?, ?",
        );
        check(
            "INSERT INTO t VALUES ('x', 1, 2)",
            "INSERT INTO t VALUES (?)",
        );
        check("SELECT 'unterminated", "SELECT ?");
    }

    #[test]
    fn identifiers_parameters_and_comments_stay_or_go() {
        check(
            "SELECT t1.col2 FROM table2 t1",
            "SELECT t1.col2 FROM table2 t1",
        );
        check(
            "SELECT \"col 1\", `x 2` FROM s WHERE a = $1",
            "SELECT \"col 1\", `x 2` FROM s WHERE a = $1",
        );
        check(
            "SELECT 1 -- id = 'secret'\nFROM t /* 42 */",
            "SELECT ? \nFROM t",
        );
        check("SELECT $$a 'b' 1$$, $tag$x$tag$", "SELECT ?, ?");
        check(
            "SELECT ü FROM t WHERE v = 'é'",
            "SELECT ü FROM t WHERE v = ?",
        );
        check("SELECT", "SELECT");
        check("GET /3d-models", "GET /3d-models");
    }

    #[test]
    fn in_lists_collapse() {
        check(
            "SELECT a FROM t WHERE id IN (1, 2, 3) AND f(x, 1)",
            "SELECT a FROM t WHERE id IN (?) AND f(x, ?)",
        );
        check("WHERE id IN ( 'a' ,'b' )", "WHERE id IN (?)");
        assert_eq!(
            obfuscate_sql("WHERE a IN (1,2)"),
            obfuscate_sql("WHERE a IN (7, 8, 9)")
        );
    }

    #[test]
    fn redis_keeps_command_and_key() {
        assert_eq!(
            obfuscate_redis("HSET user-session:123 name John"),
            "HSET user-session:123 ?"
        );
        assert_eq!(obfuscate_redis("GET k"), "GET k");
        assert_eq!(obfuscate_redis("AUTH hunter2"), "AUTH ?");
        assert_eq!(obfuscate_redis(""), "");
    }
}
