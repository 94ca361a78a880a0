//! Shell-style globs over QEMU machine type names (`pc-q35-*`), as descriptor targets use them.

/// Shell-style matching as QEMU's machine globs need it: `*`, `?`, `[...]` classes (with `!` or
/// `^` negation and `a-z` ranges) and `\` escapes. The whole text must match.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let tokens = tokenize(pattern);
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // After a mismatch, let the last `*` swallow one more character and retry from there;
    // earlier stars never need revisiting, which keeps this linear-ish with no recursion.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Star) => {
                p += 1;
                backtrack = Some((p, t));
                continue;
            }
            Some(token) if token.matches(text[t]) => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match backtrack {
            Some((star_p, star_t)) => {
                backtrack = Some((star_p, star_t + 1));
                (p, t) = (star_p, star_t + 1);
            }
            None => return false,
        }
    }
    tokens[p..].iter().all(|token| matches!(token, Token::Star))
}

enum Token {
    Star,
    Any,
    Char(char),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Star | Token::Any => true,
            Token::Char(x) => *x == c,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) != *negated
            }
        }
    }
}

fn tokenize(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        tokens.push(match chars[i] {
            '*' => Token::Star,
            '?' => Token::Any,
            '\\' if i + 1 < chars.len() => {
                i += 1;
                Token::Char(chars[i])
            }
            '[' => match parse_class(&chars[i + 1..]) {
                Some((class, used)) => {
                    i += used;
                    class
                }
                // As in fnmatch(3), an unterminated class is a literal `[`.
                None => Token::Char('['),
            },
            c => Token::Char(c),
        });
        i += 1;
    }
    tokens
}

/// Parses what follows a `[`; returns the class and how many characters it took, `]` included.
fn parse_class(chars: &[char]) -> Option<(Token, usize)> {
    let negated = matches!(chars.first(), Some('!' | '^'));
    let start = usize::from(negated);
    let mut ranges = Vec::new();
    let mut i = start;
    loop {
        let c = *chars.get(i)?;
        // A `]` first in the class is a member, so `[]]` matches `]`.
        if c == ']' && i > start {
            return Some((Token::Class { negated, ranges }, i + 1));
        }
        match (chars.get(i + 1), chars.get(i + 2)) {
            // A `-` just before the closing `]` is a literal, as in `[a-]`.
            (Some('-'), Some(&hi)) if hi != ']' => {
                ranges.push((c, hi));
                i += 3;
            }
            _ => {
                ranges.push((c, c));
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("pc-q35-*", "pc-q35-7.2", true)]
    #[case("pc-q35-*", "q35", false)]
    #[case("pc-q35-*", "pc-q35-", true)]
    #[case("pc-q35-*", "pc-i440fx-7.2", false)]
    #[case("pc-i440fx-?.*", "pc-i440fx-8.2", true)]
    #[case("pc-i440fx-?.*", "pc-i440fx-10.0", false)]
    #[case("virt", "virt", true)]
    #[case("virt", "virt-9.0", false)]
    #[case("virt*", "virt-9.0", true)]
    #[case("*-7.2", "pc-q35-7.2", true)]
    #[case("a*b*c", "axxbyyc", true)]
    #[case("a*b*c", "axxbyyca", false)]
    #[case("*", "", true)]
    #[case("", "", true)]
    #[case("", "x", false)]
    #[case("pc-[iq]*", "pc-q35-1", true)]
    #[case("pc-[!q]*", "pc-q35-1", false)]
    #[case("pc-[^q]*", "pc-i440fx-1", true)]
    #[case("[0-9].[0-9]", "7.2", true)]
    #[case("[0-9].[0-9]", "x.2", false)]
    #[case("[]]", "]", true)]
    #[case("[a-]", "-", true)]
    #[case("[abc", "[abc", true)]
    #[case(r"\*", "*", true)]
    #[case(r"\*", "x", false)]
    #[case("ü?", "üx", true)]
    fn globs(#[case] pattern: &str, #[case] text: &str, #[case] expected: bool) {
        assert_eq!(glob_match(pattern, text), expected);
    }
}
