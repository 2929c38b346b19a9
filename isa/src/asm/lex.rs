//! Splitting a listing line into tokens with their columns.
//!
//! A token is a run of non-blank characters, or a double-quoted string (which may hold
//! blanks and `;`). A `;` outside quotes ends the line's content.

/// One token: its 1-based column and its text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token<'a> {
    /// 1-based column of the first character.
    pub col: usize,
    /// The text (quotes included for strings).
    pub text: &'a str,
}

/// The tokens of one line, or the column and message of an unterminated string.
pub(crate) fn tokens(line: &str) -> Result<Vec<Token<'_>>, (usize, String)> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
        } else if b == b';' {
            break;
        } else {
            let start = i;
            i = if b == b'"' { string_end(bytes, i)? } else { word_end(bytes, i) };
            out.push(Token { col: col_of(line, start), text: &line[start..i] });
        }
    }
    Ok(out)
}

/// 1-based character column of byte offset `at`.
pub(crate) fn col_of(line: &str, at: usize) -> usize {
    line.get(..at).map_or(at, |s| s.chars().count()) + 1
}

fn word_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b';' {
        // A quote inside a word (`name="x y"`) extends the word over the string.
        if bytes[i] == b'"' {
            match string_end(bytes, i) {
                Ok(end) => i = end,
                Err(_) => return bytes.len(),
            }
        } else {
            i += 1;
        }
    }
    i
}

fn string_end(bytes: &[u8], start: usize) -> Result<usize, (usize, String)> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err((start + 1, "unterminated string: expected a closing `\"`".to_string()))
}

/// The contents of a quoted string token, with escapes (`\"`, `\\`, `\u{hex}`) resolved.
pub(crate) fn unquote(tok: &str) -> Result<String, String> {
    let inner = tok
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|_| tok.len() >= 2)
        .ok_or_else(|| format!("expected a quoted name like \"fc1\", found `{tok}`"))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some('u') => out.push(unicode_escape(&mut chars)?),
            other => return Err(format!("bad escape `\\{}`: expected \\\", \\\\ or \\u{{hex}}", other.unwrap_or(' '))),
        }
    }
    Ok(out)
}

fn unicode_escape(chars: &mut std::str::Chars<'_>) -> Result<char, String> {
    let bad = || "bad escape: expected \\u{hex} with a valid code point".to_string();
    if chars.next() != Some('{') {
        return Err(bad());
    }
    let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
    u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32).ok_or_else(bad)
}
