//! Keys and chords through enigo, shared by the X11 and Windows drivers: the
//! playbook's [`Chord`]s mean the same keys on both, so the mapping lives once.

use enigo::{Direction, Enigo, Keyboard as _};

use crate::driver::DriverError;
use crate::keys::{Chord, Key, Modifier};

fn enigo_key(key: Key) -> enigo::Key {
    match key {
        Key::Char(c) => enigo::Key::Unicode(c),
        Key::Return => enigo::Key::Return,
        Key::Tab => enigo::Key::Tab,
        Key::Escape => enigo::Key::Escape,
        Key::Backspace => enigo::Key::Backspace,
        Key::Delete => enigo::Key::Delete,
        Key::Home => enigo::Key::Home,
        Key::End => enigo::Key::End,
        Key::Up => enigo::Key::UpArrow,
        Key::Down => enigo::Key::DownArrow,
        Key::Left => enigo::Key::LeftArrow,
        Key::Right => enigo::Key::RightArrow,
        Key::PageUp => enigo::Key::PageUp,
        Key::PageDown => enigo::Key::PageDown,
        Key::Space => enigo::Key::Space,
        Key::F(n) => match n {
            1 => enigo::Key::F1,
            2 => enigo::Key::F2,
            3 => enigo::Key::F3,
            4 => enigo::Key::F4,
            5 => enigo::Key::F5,
            6 => enigo::Key::F6,
            7 => enigo::Key::F7,
            8 => enigo::Key::F8,
            9 => enigo::Key::F9,
            10 => enigo::Key::F10,
            11 => enigo::Key::F11,
            _ => enigo::Key::F12,
        },
    }
}

fn enigo_modifier(m: Modifier) -> enigo::Key {
    match m {
        Modifier::Ctrl => enigo::Key::Control,
        Modifier::Shift => enigo::Key::Shift,
        Modifier::Alt => enigo::Key::Alt,
        Modifier::Super => enigo::Key::Meta,
    }
}

/// Presses `chord`: modifiers held while the key is clicked, and every
/// modifier pressed is released again, even after a failure.
pub(crate) fn key_chord(enigo: &mut Enigo, chord: &Chord) -> Result<(), DriverError> {
    let mut pressed = Vec::new();
    let mut result = Ok(());
    for m in &chord.modifiers {
        let k = enigo_modifier(*m);
        result = enigo.key(k, Direction::Press);
        if result.is_err() {
            break;
        }
        pressed.push(k);
    }
    if result.is_ok() {
        result = enigo.key(enigo_key(chord.key), Direction::Click);
    }
    // Always release what was pressed, even after a failure.
    for k in pressed.into_iter().rev() {
        let released = enigo.key(k, Direction::Release);
        if result.is_ok() {
            result = released;
        }
    }
    result.map_err(|e| DriverError::new(format!("key chord failed: {e}")))
}
