//! Window-title patterns: globs with `*` (any run) and `?` (one character).
//!
//! Titles of legacy applications carry varying parts (`Order Entry - E10001`), so a
//! step names the stable part and globs the rest. Globs, not regular expressions:
//! a playbook author cannot write a pattern that accidentally matches everything
//! except by writing `*` on purpose, and matching is linear and never panics.

/// A compiled title glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitlePattern {
    text: String,
    chars: Vec<char>,
}

impl TitlePattern {
    /// Compiles `text`. Every string is a valid glob; an empty pattern matches
    /// only an empty title (rejected by playbook validation).
    pub fn new(text: &str) -> Self {
        TitlePattern {
            text: text.to_owned(),
            chars: text.chars().collect(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when `title` matches the whole pattern.
    pub fn matches(&self, title: &str) -> bool {
        let title: Vec<char> = title.chars().collect();
        glob_match(&self.chars, &title)
    }
}

impl std::fmt::Display for TitlePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Iterative glob matching with single backtrack point (linear in practice).
fn glob_match(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == '?' || *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_titles() {
        let p = TitlePattern::new("LegacyEHR — Order*");
        assert!(p.matches("LegacyEHR — Order Entry"));
        assert!(p.matches("LegacyEHR — Order"));
        assert!(!p.matches("xLegacyEHR — Order Entry"));
        assert!(!p.matches("LegacyEHR — Prior Authorization"));
        let q = TitlePattern::new("*Auth?rization*");
        assert!(q.matches("LegacyEHR — Prior Authorization"));
        assert!(!q.matches("Authoization"));
        assert!(TitlePattern::new("a*b*c").matches("aXbYbZc"));
        assert!(!TitlePattern::new("a*b*c").matches("aXbYbZ"));
        assert!(TitlePattern::new("").matches(""));
        assert!(!TitlePattern::new("").matches("x"));
        assert!(TitlePattern::new("**").matches("anything"));
    }
}
