//! Key chords as playbooks write them: `ctrl+c`, `ctrl+shift+Tab`, `Return`, `ctrl+/`.
//!
//! Parsed into a platform-neutral [`Chord`] when the playbook loads, so a typo in a
//! key name is a load error with a line number, not a surprise halfway through
//! typing into a chart.

/// A modifier held while the chord's key is clicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Modifier {
    /// Control.
    Ctrl,
    /// Shift.
    Shift,
    /// Alt (Mod1 on X11).
    Alt,
    /// Super / Windows / Meta.
    Super,
}

/// A non-modifier key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A printable character (`a`, `/`, `1`).
    Char(char),
    /// Return / Enter.
    Return,
    /// Tab.
    Tab,
    /// Escape.
    Escape,
    /// Backspace.
    Backspace,
    /// Delete.
    Delete,
    /// Home.
    Home,
    /// End.
    End,
    /// Arrow up.
    Up,
    /// Arrow down.
    Down,
    /// Arrow left.
    Left,
    /// Arrow right.
    Right,
    /// Page up.
    PageUp,
    /// Page down.
    PageDown,
    /// Space bar.
    Space,
    /// Function key F1–F12.
    F(u8),
}

/// Modifiers plus one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Chord {
    /// Held in this order, released in reverse.
    pub modifiers: Vec<Modifier>,
    /// The key clicked while they are held.
    pub key: Key,
}

/// Why a chord did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad key chord `{text}`: {reason}")]
pub struct ChordError {
    /// The chord text.
    pub text: String,
    /// What is wrong.
    pub reason: String,
}

impl Chord {
    /// Parses `ctrl+shift+a`-style text (case-insensitive names, `+` separated;
    /// a literal plus is `ctrl+plus`).
    pub fn parse(text: &str) -> Result<Chord, ChordError> {
        let err = |reason: &str| ChordError {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let parts: Vec<&str> = text.split('+').map(str::trim).collect();
        let Some((last, mods)) = parts.split_last() else {
            return Err(err("empty"));
        };
        let mut modifiers = Vec::new();
        for m in mods {
            let modifier = match m.to_ascii_lowercase().as_str() {
                "ctrl" | "control" => Modifier::Ctrl,
                "shift" => Modifier::Shift,
                "alt" => Modifier::Alt,
                "super" | "meta" | "win" => Modifier::Super,
                "" => return Err(err("empty part")),
                _ => return Err(err(&format!("`{m}` is not a modifier"))),
            };
            if modifiers.contains(&modifier) {
                return Err(err("modifier repeated"));
            }
            modifiers.push(modifier);
        }
        let key = parse_key(last).ok_or_else(|| err(&format!("`{last}` is not a key name")))?;
        Ok(Chord { modifiers, key })
    }
}

fn parse_key(name: &str) -> Option<Key> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return (!c.is_control() && !c.is_whitespace()).then_some(Key::Char(c));
    }
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        "return" | "enter" => Key::Return,
        "tab" => Key::Tab,
        "escape" | "esc" => Key::Escape,
        "backspace" => Key::Backspace,
        "delete" | "del" => Key::Delete,
        "home" => Key::Home,
        "end" => Key::End,
        "up" => Key::Up,
        "down" => Key::Down,
        "left" => Key::Left,
        "right" => Key::Right,
        "pageup" => Key::PageUp,
        "pagedown" => Key::PageDown,
        "space" => Key::Space,
        "plus" => Key::Char('+'),
        f if f.starts_with('f') => {
            let n: u8 = f[1..].parse().ok()?;
            if !(1..=12).contains(&n) {
                return None;
            }
            Key::F(n)
        }
        _ => return None,
    })
}

impl std::fmt::Display for Chord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for m in &self.modifiers {
            let name = match m {
                Modifier::Ctrl => "ctrl",
                Modifier::Shift => "shift",
                Modifier::Alt => "alt",
                Modifier::Super => "super",
            };
            write!(f, "{name}+")?;
        }
        match self.key {
            Key::Char('+') => f.write_str("plus"),
            Key::Char(c) => write!(f, "{c}"),
            Key::F(n) => write!(f, "F{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chords_and_rejects_typos() {
        let c = Chord::parse("ctrl+/").expect("parses");
        assert_eq!(c.modifiers, vec![Modifier::Ctrl]);
        assert_eq!(c.key, Key::Char('/'));
        assert_eq!(Chord::parse("Return").expect("ok").key, Key::Return);
        assert_eq!(
            Chord::parse("Ctrl+Shift+Tab").expect("ok").modifiers,
            vec![Modifier::Ctrl, Modifier::Shift]
        );
        assert_eq!(Chord::parse("F12").expect("ok").key, Key::F(12));
        assert_eq!(Chord::parse("ctrl+plus").expect("ok").key, Key::Char('+'));
        for bad in ["", "ctrl+", "ctl+c", "ctrl+ctrl+c", "F13", "Retrun", "+"] {
            assert!(Chord::parse(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(
            Chord::parse("ctrl+shift+Tab").expect("ok").to_string(),
            "ctrl+shift+Tab"
        );
    }
}
