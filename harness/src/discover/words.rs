//! A command line kept in a file (`lint --file FILE`, `run --argv-template FILE`), split into words as a POSIX shell
//! would, without running anything: blanks separate words, `'...'` is literal, `"..."` keeps
//! `\"`, `\\`, `\$` and `` \` `` escapes, a backslash outside quotes escapes the next
//! character, backslash-newline continues the line, and `#` at the start of a word comments out
//! the rest of its line. Nothing is expanded: `$VAR` stays as written.

/// The most words a command line may have (QEMU lines from libvirt have a few hundred).
pub const MAX_WORDS: usize = 10_000;

/// The words of `text`, or what is wrong with it, naming the line.
pub fn split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                line += 1;
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '#' if word.is_none() => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => line += 1,
                Some(next) => word.get_or_insert_with(String::new).push(next),
                None => return Err(format!("line {line}: a backslash at the very end")),
            },
            '\'' => {
                let start = line;
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => {
                            line += usize::from(c == '\n');
                            w.push(c);
                        }
                        None => return Err(format!("line {start}: a ' that is never closed")),
                    }
                }
            }
            '"' => {
                let start = line;
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') => line += 1,
                            Some(e @ ('"' | '\\' | '$' | '`')) => w.push(e),
                            Some(other) => {
                                line += usize::from(other == '\n');
                                w.push('\\');
                                w.push(other);
                            }
                            None => return Err(format!("line {start}: a \" that is never closed")),
                        },
                        Some(c) => {
                            line += usize::from(c == '\n');
                            w.push(c);
                        }
                        None => return Err(format!("line {start}: a \" that is never closed")),
                    }
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
        if words.len() > MAX_WORDS {
            return Err(format!("more than {MAX_WORDS} words"));
        }
    }
    if let Some(w) = word {
        words.push(w);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_as_a_shell_would() {
        let text = "# from somewhere\nqemu-system-x86_64 \\\n  -machine q35,smm=on \\\n  \
                    -drive 'if=pflash,file=/a b' -append \"console=ttyS0 \\\"x\\\"\" # tail\n\
                    -name a\\ b \"\"\n";
        assert_eq!(
            split(text).unwrap(),
            [
                "qemu-system-x86_64",
                "-machine",
                "q35,smm=on",
                "-drive",
                "if=pflash,file=/a b",
                "-append",
                "console=ttyS0 \"x\"",
                "-name",
                "a b",
                ""
            ]
        );
        // A # inside a word is part of it; $ is not expanded.
        assert_eq!(split("a#b $X").unwrap(), ["a#b", "$X"]);
    }

    #[test]
    fn an_unclosed_quote_names_its_line() {
        assert_eq!(
            split("a\nb 'c\nd").unwrap_err(),
            "line 2: a ' that is never closed"
        );
        assert_eq!(
            split("\"x").unwrap_err(),
            "line 1: a \" that is never closed"
        );
        assert!(split("x \\").unwrap_err().contains("backslash"));
    }
}
