//! Finding, naming and focusing top-level windows with x11rb.
//!
//! Titles come from `_NET_WM_NAME` (UTF-8) with `WM_NAME` as the fallback.
//! Candidates come from `_NET_CLIENT_LIST` when an EWMH window manager runs, else
//! from a bounded walk of the window tree (without a window manager the
//! top-levels are the root's children; with a reparenting one that lacks EWMH,
//! the titled window sits one or two levels deeper).

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ClientMessageEvent, ConfigureWindowAux, ConnectionExt as _, EventMask, InputFocus,
    MapState, StackMode, Window,
};
use x11rb::rust_connection::RustConnection;

use super::err;
use crate::driver::{DriverError, WindowId, WindowInfo};

/// Atoms the driver uses, interned once.
pub(crate) struct Atoms {
    net_wm_name: u32,
    utf8_string: u32,
    pub(crate) net_client_list: u32,
    net_active_window: u32,
    net_supported: u32,
}

impl Atoms {
    pub(crate) fn intern(conn: &RustConnection) -> Result<Atoms, DriverError> {
        let atom = |name: &[u8]| -> Result<u32, DriverError> {
            Ok(conn
                .intern_atom(false, name)
                .map_err(err("intern atom"))?
                .reply()
                .map_err(err("intern atom"))?
                .atom)
        };
        Ok(Atoms {
            net_wm_name: atom(b"_NET_WM_NAME")?,
            utf8_string: atom(b"UTF8_STRING")?,
            net_client_list: atom(b"_NET_CLIENT_LIST")?,
            net_active_window: atom(b"_NET_ACTIVE_WINDOW")?,
            net_supported: atom(b"_NET_SUPPORTED")?,
        })
    }
}

fn window_property(
    conn: &RustConnection,
    window: Window,
    property: u32,
) -> Result<Vec<u32>, DriverError> {
    let reply = conn
        .get_property(false, window, property, AtomEnum::WINDOW, 0, 4096)
        .map_err(err("get property"))?
        .reply()
        .map_err(err("get property"))?;
    Ok(reply.value32().map(Iterator::collect).unwrap_or_default())
}

/// True when the root's `_NET_SUPPORTED` lists `atom` (an EWMH WM is running).
pub(crate) fn wm_supports(
    conn: &RustConnection,
    root: Window,
    atoms: &Atoms,
    atom: u32,
) -> Result<bool, DriverError> {
    let reply = conn
        .get_property(false, root, atoms.net_supported, AtomEnum::ATOM, 0, 4096)
        .map_err(err("get _NET_SUPPORTED"))?
        .reply()
        .map_err(err("get _NET_SUPPORTED"))?;
    Ok(reply
        .value32()
        .is_some_and(|mut atoms_iter| atoms_iter.any(|a| a == atom)))
}

/// The window's title, if it has one.
fn title(
    conn: &RustConnection,
    window: Window,
    atoms: &Atoms,
) -> Result<Option<String>, DriverError> {
    let reply = conn
        .get_property(false, window, atoms.net_wm_name, atoms.utf8_string, 0, 1024)
        .map_err(err("get _NET_WM_NAME"))?
        .reply();
    // A window destroyed between listing and asking yields an error: no title.
    if let Ok(r) = reply
        && !r.value.is_empty()
    {
        return Ok(Some(String::from_utf8_lossy(&r.value).into_owned()));
    }
    let reply = conn
        .get_property(false, window, AtomEnum::WM_NAME, AtomEnum::ANY, 0, 1024)
        .map_err(err("get WM_NAME"))?
        .reply();
    Ok(match reply {
        // WM_NAME is Latin-1 (STRING) or compound text; decode Latin-1 faithfully.
        Ok(r) if !r.value.is_empty() => Some(r.value.iter().map(|b| char::from(*b)).collect()),
        _ => None,
    })
}

fn viewable(conn: &RustConnection, window: Window) -> bool {
    conn.get_window_attributes(window)
        .ok()
        .and_then(|c| c.reply().ok())
        .is_some_and(|a| a.map_state == MapState::VIEWABLE)
}

fn info(
    conn: &RustConnection,
    root: Window,
    window: Window,
    title: String,
) -> Result<Option<WindowInfo>, DriverError> {
    let Ok(geometry) = conn
        .get_geometry(window)
        .map_err(err("get geometry"))?
        .reply()
    else {
        return Ok(None);
    };
    let Ok(origin) = conn
        .translate_coordinates(window, root, 0, 0)
        .map_err(err("translate coordinates"))?
        .reply()
    else {
        return Ok(None);
    };
    Ok(Some(WindowInfo {
        id: WindowId(u64::from(window)),
        title,
        x: i32::from(origin.dst_x),
        y: i32::from(origin.dst_y),
        width: u32::from(geometry.width),
        height: u32::from(geometry.height),
    }))
}

/// All viewable titled top-level windows.
pub(crate) fn list(
    conn: &RustConnection,
    root: Window,
    atoms: &Atoms,
) -> Result<Vec<WindowInfo>, DriverError> {
    let mut out = Vec::new();
    if wm_supports(conn, root, atoms, atoms.net_client_list)? {
        for w in window_property(conn, root, atoms.net_client_list)? {
            if let Some(t) = title(conn, w, atoms)?
                && let Some(i) = info(conn, root, w, t)?
            {
                out.push(i);
            }
        }
        return Ok(out);
    }
    let mut stack: Vec<(Window, u8)> = children(conn, root)?.into_iter().map(|w| (w, 0)).collect();
    stack.reverse();
    while let Some((w, depth)) = stack.pop() {
        if !viewable(conn, w) {
            continue;
        }
        match title(conn, w, atoms)? {
            Some(t) => {
                if let Some(i) = info(conn, root, w, t)? {
                    out.push(i);
                }
            }
            None if depth < 2 => {
                let mut kids: Vec<(Window, u8)> = children(conn, w)?
                    .into_iter()
                    .map(|c| (c, depth + 1))
                    .collect();
                kids.reverse();
                stack.extend(kids);
            }
            None => {}
        }
    }
    Ok(out)
}

fn children(conn: &RustConnection, window: Window) -> Result<Vec<Window>, DriverError> {
    Ok(conn
        .query_tree(window)
        .map_err(err("query tree"))?
        .reply()
        .map(|r| r.children)
        .unwrap_or_default())
}

/// The titled top-level that holds the keyboard focus.
pub(crate) fn active(
    conn: &RustConnection,
    root: Window,
    atoms: &Atoms,
) -> Result<Option<WindowInfo>, DriverError> {
    let focus = conn
        .get_input_focus()
        .map_err(err("get input focus"))?
        .reply()
        .map_err(err("get input focus"))?
        .focus;
    // 0 = None, 1 = PointerRoot.
    let mut current = (focus > 1 && focus != root).then_some(focus);
    while let Some(w) = current {
        if let Some(t) = title(conn, w, atoms)? {
            return info(conn, root, w, t);
        }
        let parent = conn
            .query_tree(w)
            .map_err(err("query tree"))?
            .reply()
            .ok()
            .map(|r| r.parent);
        current = parent.filter(|p| *p != root && *p != 0);
    }
    // The focus sits on a window-manager frame (or nowhere): ask the WM.
    if wm_supports(conn, root, atoms, atoms.net_active_window)?
        && let Some(&w) = window_property(conn, root, atoms.net_active_window)?.first()
        && w != 0
        && let Some(t) = title(conn, w, atoms)?
    {
        return info(conn, root, w, t);
    }
    Ok(None)
}

/// Raises the window and gives it the focus (EWMH request when a WM runs).
pub(crate) fn focus(
    conn: &RustConnection,
    root: Window,
    atoms: &Atoms,
    window: WindowId,
) -> Result<(), DriverError> {
    let w = u32::try_from(window.0).map_err(|_| DriverError::new("not an X11 window id"))?;
    if wm_supports(conn, root, atoms, atoms.net_active_window)? {
        // Source indication 2 (pager): WMs honour it without focus-stealing checks.
        let event = ClientMessageEvent::new(
            32,
            w,
            atoms.net_active_window,
            [2, x11rb::CURRENT_TIME, 0, 0, 0],
        );
        conn.send_event(
            false,
            root,
            EventMask::SUBSTRUCTURE_REDIRECT | EventMask::SUBSTRUCTURE_NOTIFY,
            event,
        )
        .map_err(err("send _NET_ACTIVE_WINDOW"))?;
    } else {
        conn.configure_window(w, &ConfigureWindowAux::new().stack_mode(StackMode::ABOVE))
            .map_err(err("raise window"))?;
        conn.set_input_focus(InputFocus::PARENT, w, x11rb::CURRENT_TIME)
            .map_err(err("set input focus"))?;
    }
    conn.flush().map_err(err("flush"))?;
    Ok(())
}

/// Window-relative coordinates to root coordinates.
pub(crate) fn to_root(
    conn: &RustConnection,
    root: Window,
    window: WindowId,
    x: i32,
    y: i32,
) -> Result<(i32, i32), DriverError> {
    let w = u32::try_from(window.0).map_err(|_| DriverError::new("not an X11 window id"))?;
    let clamp = |v: i32| i16::try_from(v).map_err(|_| DriverError::new("coordinate out of range"));
    let reply = conn
        .translate_coordinates(w, root, clamp(x)?, clamp(y)?)
        .map_err(err("translate coordinates"))?
        .reply()
        .map_err(err("translate coordinates"))?;
    Ok((i32::from(reply.dst_x), i32::from(reply.dst_y)))
}
