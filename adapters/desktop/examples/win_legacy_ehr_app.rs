//! A stand-in for a legacy Windows EHR, for the desktop bridge's Windows
//! tests (under Wine here, on Windows as well): the Win32 twin of
//! `tests/legacy_ehr_app.py`. Not part of the product.
//!
//! Why a Win32 program and not the Tk one under Wine: the Windows driver must
//! be proven against the controls real Windows EHRs are built from (Win32 EDIT
//! and BUTTON controls in top-level windows, Win32 focus and activation), and
//! the same shipped playbooks must drive it unchanged — so the layout (client
//! coordinates), titles and the select-all chord (`ctrl+/`, Tk's) are the Tk
//! app's.
//!
//! Two screens:
//! * "LegacyEHR — Order Entry": the order from `--order` (synthetic JSON) in
//!   read-only edit controls the bridge selects and copies.
//! * "LegacyEHR — Prior Authorization": a patient banner (read-only patient
//!   name, MRN, birth date, order number — the order's patient by default),
//!   editable entries (auth number, status, start/end dates, note) in tab
//!   order, and Save, which writes exactly what the entries hold to `--out` as
//!   JSON.
//!
//! Test hooks (as the Tk app's): `--keylog FILE` records every key and mouse
//! button event the application receives as `key|button <window title>\t<control
//! name>`; `--auth-on-other-patient`; `--switch-patient-on-key-in FIELD`;
//! `--max-auth-len N`; `--modal-popup` (a "Session Warning" that takes the
//! foreground back whenever the authorization screen is activated);
//! `--ready FILE` written once both screens are shown. All data is synthetic.

#[cfg(not(windows))]
fn main() {
    eprintln!(
        "win_legacy_ehr_app is a Windows program: build it with --target x86_64-pc-windows-gnu \
         and run it on Windows or under Wine"
    );
    std::process::exit(2);
}

#[cfg(windows)]
fn main() {
    std::process::exit(app::main());
}

#[cfg(windows)]
#[allow(unsafe_code)] // Win32 calls; every pointer handed over is a live local or a static.
mod app {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::io::Write as _;
    use std::path::PathBuf;

    use windows_sys::Win32::Foundation::{HWND, LPARAM, LRESULT, RECT, WPARAM};
    use windows_sys::Win32::Graphics::Gdi::UpdateWindow;
    use windows_sys::Win32::System::LibraryLoader::GetModuleHandleW;
    use windows_sys::Win32::UI::Input::KeyboardAndMouse::{
        GetKeyState, SetFocus, VK_CONTROL, VK_OEM_2,
    };
    use windows_sys::Win32::UI::WindowsAndMessaging::{
        AdjustWindowRectEx, BN_CLICKED, BS_PUSHBUTTON, CS_HREDRAW, CS_VREDRAW, CreateWindowExW,
        DefWindowProcW, DestroyWindow, DispatchMessageW, ES_AUTOHSCROLL, ES_READONLY, GA_ROOT,
        GetAncestor, GetMessageW, GetWindowTextLengthW, GetWindowTextW, IDC_ARROW,
        IsDialogMessageW, LoadCursorW, MSG, PostMessageW, PostQuitMessage, RegisterClassW, SW_SHOW,
        SendMessageW, SetForegroundWindow, SetWindowTextW, ShowWindow, WA_INACTIVE, WM_ACTIVATE,
        WM_APP, WM_CHAR, WM_CLOSE, WM_COMMAND, WM_COPY, WM_DESTROY, WM_KEYDOWN, WM_LBUTTONDOWN,
        WM_MBUTTONDOWN, WM_RBUTTONDOWN, WM_SYSKEYDOWN, WNDCLASSW, WS_BORDER, WS_CAPTION, WS_CHILD,
        WS_EX_CLIENTEDGE, WS_MINIMIZEBOX, WS_OVERLAPPED, WS_SYSMENU, WS_TABSTOP, WS_VISIBLE,
    };

    const ORDER_TITLE: &str = "LegacyEHR \u{2014} Order Entry";
    const AUTH_TITLE: &str = "LegacyEHR \u{2014} Prior Authorization";
    const POPUP_TITLE: &str = "LegacyEHR \u{2014} Session Warning";

    /// (key in the order JSON, label); row i is at y = 20 + 40 * i.
    const ORDER_FIELDS: [(&str, &str); 10] = [
        ("order_number", "Order #"),
        ("patient_name", "Patient"),
        ("mrn", "MRN"),
        ("dob", "DOB"),
        ("sex", "Sex"),
        ("payer_name", "Insurance"),
        ("payer_id", "Payer ID"),
        ("member_id", "Member ID"),
        ("procedure_code", "Procedure (CPT)"),
        ("diagnosis_code", "Diagnosis (ICD-10)"),
    ];
    /// The banner: (key, label, x, y, width).
    const BANNER_FIELDS: [(&str, &str, i32, i32, i32); 4] = [
        ("patient_name", "Patient", 80, 10, 260),
        ("mrn", "MRN", 410, 10, 170),
        ("dob", "DOB", 80, 46, 120),
        ("order_number", "Order #", 410, 46, 170),
    ];
    const BANNER_H: i32 = 90;
    /// Another patient for the wrong-patient hooks. Synthetic.
    const OTHER_PATIENT: [(&str, &str); 4] = [
        ("patient_name", "OKAFOR, ADAEZE"),
        ("mrn", "E20002"),
        ("dob", "07/04/1982"),
        ("order_number", "ORD-70002"),
    ];
    const AUTH_FIELDS: [(&str, &str); 5] = [
        ("auth_number", "Auth #"),
        ("status", "Status"),
        ("start_date", "Start date"),
        ("end_date", "End date"),
        ("note", "Note"),
    ];
    const ENTRY_X: i32 = 180;
    const ENTRY_W: i32 = 380;
    const ROW_Y: i32 = 20;
    const ROW_H: i32 = 40;
    const ID_SAVE: usize = 1001;
    const WM_TAKE_FOCUS: u32 = WM_APP + 1;
    const CLASS: &str = "LegacyEhrTestWindow";
    // Edit-control messages and the system colour (winuser.h); kept here to
    // spare the crate the Win32_UI_Controls bindings for two constants.
    const EM_SETSEL: u32 = 0x00B1;
    const EM_SETLIMITTEXT: u32 = 0x00C5;
    const COLOR_BTNFACE: i32 = 15;

    #[derive(Default)]
    struct Args {
        order: PathBuf,
        out: PathBuf,
        keylog: Option<PathBuf>,
        ready: Option<PathBuf>,
        max_auth_len: usize,
        modal_popup: bool,
        auth_on_other_patient: bool,
        switch_patient_on_key_in: Option<String>,
    }

    struct State {
        out: PathBuf,
        keylog: Option<std::fs::File>,
        /// Control handle → control name (the keylog's second column).
        names: HashMap<usize, String>,
        banner: Vec<(String, HWND)>,
        entries: Vec<(String, HWND)>,
        auth: HWND,
        order_window: HWND,
        popup: HWND,
        popup_reply: HWND,
        saved_label: HWND,
        switch_on: HWND,
        switched: bool,
    }

    thread_local! {
        static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
    }

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().chain(std::iter::once(0)).collect()
    }

    fn parse_args() -> Result<Args, String> {
        let mut args = Args::default();
        let mut it = std::env::args_os().skip(1);
        let mut order = None;
        let mut out = None;
        while let Some(a) = it.next() {
            let a = a.to_string_lossy().into_owned();
            let mut value = || {
                it.next()
                    .ok_or_else(|| format!("{a} needs a value"))
                    .map(PathBuf::from)
            };
            match a.as_str() {
                "--order" => order = Some(value()?),
                "--out" => out = Some(value()?),
                "--keylog" => args.keylog = Some(value()?),
                "--ready" => args.ready = Some(value()?),
                "--max-auth-len" => {
                    args.max_auth_len = value()?
                        .to_string_lossy()
                        .parse()
                        .map_err(|_| "--max-auth-len needs a number".to_owned())?
                }
                "--switch-patient-on-key-in" => {
                    args.switch_patient_on_key_in = Some(value()?.to_string_lossy().into_owned())
                }
                "--modal-popup" => args.modal_popup = true,
                "--auth-on-other-patient" => args.auth_on_other_patient = true,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        args.order = order.ok_or("--order is required")?;
        args.out = out.ok_or("--out is required")?;
        Ok(args)
    }

    fn atomic_write(path: &std::path::Path, text: &str) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }

    fn window_text(hwnd: HWND) -> String {
        unsafe {
            let len = GetWindowTextLengthW(hwnd).max(0) as usize;
            let mut buf = vec![0u16; len + 1];
            let n = GetWindowTextW(hwnd, buf.as_mut_ptr(), buf.len() as i32).max(0) as usize;
            String::from_utf16_lossy(&buf[..n.min(len)])
        }
    }

    fn set_text(hwnd: HWND, text: &str) {
        let w = wide(text);
        unsafe {
            SetWindowTextW(hwnd, w.as_ptr());
        }
    }

    unsafe fn top_level(title: &str, x: i32, y: i32, w: i32, h: i32) -> HWND {
        let style = WS_OVERLAPPED | WS_CAPTION | WS_SYSMENU | WS_MINIMIZEBOX;
        // The playbooks' coordinates are client coordinates: size the client area.
        let mut r = RECT {
            left: 0,
            top: 0,
            right: w,
            bottom: h,
        };
        unsafe {
            AdjustWindowRectEx(&mut r, style, 0, 0);
            let class = wide(CLASS);
            let title = wide(title);
            CreateWindowExW(
                0,
                class.as_ptr(),
                title.as_ptr(),
                style,
                x,
                y,
                r.right - r.left,
                r.bottom - r.top,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                GetModuleHandleW(std::ptr::null()),
                std::ptr::null(),
            )
        }
    }

    #[allow(clippy::too_many_arguments)]
    unsafe fn control(
        parent: HWND,
        class: &str,
        text: &str,
        style: u32,
        ex_style: u32,
        x: i32,
        y: i32,
        w: i32,
        h: i32,
        id: usize,
    ) -> HWND {
        let class = wide(class);
        let text = wide(text);
        unsafe {
            CreateWindowExW(
                ex_style,
                class.as_ptr(),
                text.as_ptr(),
                WS_CHILD | WS_VISIBLE | style,
                x,
                y,
                w,
                h,
                parent,
                id as _,
                GetModuleHandleW(std::ptr::null()),
                std::ptr::null(),
            )
        }
    }

    unsafe fn label(parent: HWND, text: &str, x: i32, y: i32, w: i32, h: i32) -> HWND {
        unsafe { control(parent, "STATIC", text, 0, 0, x, y, w, h, 0) }
    }

    unsafe fn entry(parent: HWND, text: &str, read_only: bool, x: i32, y: i32, w: i32) -> HWND {
        let mut style = WS_TABSTOP | WS_BORDER | ES_AUTOHSCROLL as u32;
        if read_only {
            style |= ES_READONLY as u32;
        }
        unsafe {
            control(
                parent,
                "EDIT",
                text,
                style,
                WS_EX_CLIENTEDGE,
                x,
                y,
                w,
                26,
                0,
            )
        }
    }

    fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
        STATE.with(|s| s.try_borrow_mut().ok()?.as_mut().map(f))
    }

    fn show_patient(state: &State, patient: &[(&str, String)]) {
        for (key, hwnd) in &state.banner {
            let value = patient
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let value = if key == "patient_name" {
                value.to_uppercase()
            } else {
                value
            };
            set_text(*hwnd, &value);
        }
    }

    fn other_patient() -> Vec<(&'static str, String)> {
        OTHER_PATIENT
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect()
    }

    fn save(state: &State) {
        let mut data = serde_json::Map::new();
        for (key, hwnd) in &state.entries {
            data.insert(key.clone(), serde_json::Value::String(window_text(*hwnd)));
        }
        let text = serde_json::Value::Object(data).to_string();
        if let Err(e) = atomic_write(&state.out, &text) {
            eprintln!("win_legacy_ehr_app: cannot save: {e}");
            return;
        }
        set_text(state.saved_label, "Saved");
    }

    unsafe extern "system" fn wndproc(hwnd: HWND, msg: u32, wp: WPARAM, lp: LPARAM) -> LRESULT {
        match msg {
            WM_COMMAND
                if (wp & 0xffff) == ID_SAVE && ((wp >> 16) & 0xffff) as u32 == BN_CLICKED =>
            {
                with_state(|s| save(s));
                0
            }
            WM_ACTIVATE if (wp & 0xffff) as u32 != WA_INACTIVE => {
                // The modal-popup hook: the warning takes the foreground back
                // whenever the authorization screen is activated.
                let popup =
                    with_state(|s| (s.auth == hwnd && !s.popup.is_null()).then_some(s.popup))
                        .flatten();
                if let Some(popup) = popup {
                    unsafe { PostMessageW(popup, WM_TAKE_FOCUS, 0, 0) };
                }
                unsafe { DefWindowProcW(hwnd, msg, wp, lp) }
            }
            WM_TAKE_FOCUS => {
                if let Some(reply) = with_state(|s| s.popup_reply) {
                    unsafe {
                        SetForegroundWindow(hwnd);
                        SetFocus(reply);
                    }
                }
                0
            }
            WM_CLOSE => {
                unsafe { DestroyWindow(hwnd) };
                0
            }
            WM_DESTROY => {
                if with_state(|s| s.order_window == hwnd).unwrap_or(false) {
                    unsafe { PostQuitMessage(0) };
                }
                0
            }
            _ => unsafe { DefWindowProcW(hwnd, msg, wp, lp) },
        }
    }

    fn ctrl_down() -> bool {
        unsafe { GetKeyState(i32::from(VK_CONTROL)) < 0 }
    }

    fn copy(hwnd: HWND) {
        // What an edit control does on its own Ctrl+C.
        unsafe { SendMessageW(hwnd, WM_COPY, 0, 0) };
    }

    fn select_all(hwnd: HWND) {
        unsafe { SendMessageW(hwnd, EM_SETSEL, 0, -1) };
    }

    /// Logs input events and implements the Tk chords the playbooks use
    /// (`ctrl+/` select all, `ctrl+c` copy). True = the message is consumed.
    fn pre_translate(msg: &MSG) -> bool {
        let is_entry = with_state(|s| s.names.contains_key(&(msg.hwnd as usize))).unwrap_or(false);
        match msg.message {
            WM_KEYDOWN | WM_SYSKEYDOWN | WM_LBUTTONDOWN | WM_RBUTTONDOWN | WM_MBUTTONDOWN => {
                let kind = if matches!(msg.message, WM_KEYDOWN | WM_SYSKEYDOWN) {
                    "key"
                } else {
                    "button"
                };
                let root = unsafe { GetAncestor(msg.hwnd, GA_ROOT) };
                let title = window_text(root);
                with_state(|s| {
                    let name = s
                        .names
                        .get(&(msg.hwnd as usize))
                        .cloned()
                        .unwrap_or_else(|| "window".to_owned());
                    if let Some(f) = s.keylog.as_mut() {
                        let _ = writeln!(f, "{kind} {title}\t{name}");
                        let _ = f.flush();
                    }
                    if kind == "key" && !s.switched && msg.hwnd == s.switch_on {
                        // The first key reaching the field switches the chart
                        // under the bridge's feet; the key still goes in.
                        s.switched = true;
                        show_patient(s, &other_patient());
                    }
                });
                if kind == "key" && is_entry && ctrl_down() {
                    if msg.wParam == usize::from(VK_OEM_2) || msg.wParam == usize::from(b'A') {
                        select_all(msg.hwnd);
                        return true;
                    }
                    if msg.wParam == usize::from(b'C') {
                        copy(msg.hwnd);
                        return true;
                    }
                }
                false
            }
            // Chords sent as Unicode packets arrive as characters.
            WM_CHAR if is_entry && ctrl_down() => match msg.wParam {
                0x2f | 0x01 | 0x41 | 0x61 => {
                    select_all(msg.hwnd);
                    true
                }
                0x03 | 0x43 | 0x63 => {
                    copy(msg.hwnd);
                    true
                }
                _ => false,
            },
            _ => false,
        }
    }

    pub fn main() -> i32 {
        let args = match parse_args() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("win_legacy_ehr_app: {e}");
                return 2;
            }
        };
        let order: serde_json::Value = match std::fs::read_to_string(&args.order)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                eprintln!("win_legacy_ehr_app: cannot read the order: {e}");
                return 2;
            }
        };
        let field = |key: &str| order[key].as_str().unwrap_or_default().to_owned();
        let keylog = match &args.keylog {
            Some(p) => match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                Ok(f) => Some(f),
                Err(e) => {
                    eprintln!("win_legacy_ehr_app: cannot open the keylog: {e}");
                    return 2;
                }
            },
            None => None,
        };
        unsafe {
            let class = wide(CLASS);
            let wc = WNDCLASSW {
                style: CS_HREDRAW | CS_VREDRAW,
                lpfnWndProc: Some(wndproc),
                cbClsExtra: 0,
                cbWndExtra: 0,
                hInstance: GetModuleHandleW(std::ptr::null()),
                hIcon: std::ptr::null_mut(),
                hCursor: LoadCursorW(std::ptr::null_mut(), IDC_ARROW),
                hbrBackground: (COLOR_BTNFACE + 1) as usize as _,
                lpszMenuName: std::ptr::null(),
                lpszClassName: class.as_ptr(),
            };
            if RegisterClassW(&wc) == 0 {
                eprintln!("win_legacy_ehr_app: RegisterClassW failed");
                return 1;
            }
        }
        let mut state = State {
            out: args.out.clone(),
            keylog,
            names: HashMap::new(),
            banner: Vec::new(),
            entries: Vec::new(),
            auth: std::ptr::null_mut(),
            order_window: std::ptr::null_mut(),
            popup: std::ptr::null_mut(),
            popup_reply: std::ptr::null_mut(),
            saved_label: std::ptr::null_mut(),
            switch_on: std::ptr::null_mut(),
            switched: false,
        };
        unsafe {
            let order_window = top_level(ORDER_TITLE, 0, 0, 600, 440);
            state.order_window = order_window;
            for (i, (key, text)) in ORDER_FIELDS.iter().enumerate() {
                let y = ROW_Y + ROW_H * i as i32;
                label(order_window, text, 10, y + 4, 160, 22);
                let e = entry(order_window, &field(key), true, ENTRY_X, y, ENTRY_W);
                state.names.insert(e as usize, (*key).to_owned());
            }

            let auth = top_level(AUTH_TITLE, 640, 0, 600, 380);
            state.auth = auth;
            for (key, text, x, y, w) in BANNER_FIELDS {
                label(auth, text, x - 70, y + 4, 65, 22);
                let e = entry(auth, "", true, x, y, w);
                state.names.insert(e as usize, format!("banner_{key}"));
                state.banner.push((key.to_owned(), e));
            }
            let own: Vec<(&str, String)> =
                BANNER_FIELDS.iter().map(|(k, ..)| (*k, field(k))).collect();
            if args.auth_on_other_patient {
                show_patient(&state, &other_patient());
            } else {
                show_patient(&state, &own);
            }
            for (i, (key, text)) in AUTH_FIELDS.iter().enumerate() {
                let y = BANNER_H + 10 + ROW_H * i as i32;
                label(auth, text, 10, y + 4, 160, 22);
                let e = entry(auth, "", false, ENTRY_X, y, ENTRY_W);
                if *key == "auth_number" && args.max_auth_len > 0 {
                    // The EHR silently refuses longer input.
                    SendMessageW(e, EM_SETLIMITTEXT, args.max_auth_len, 0);
                }
                if args.switch_patient_on_key_in.as_deref() == Some(*key) {
                    state.switch_on = e;
                }
                state.names.insert(e as usize, (*key).to_owned());
                state.entries.push(((*key).to_owned(), e));
            }
            let form_bottom = BANNER_H + 10 + ROW_H * AUTH_FIELDS.len() as i32;
            let save_button = control(
                auth,
                "BUTTON",
                "Save",
                WS_TABSTOP | BS_PUSHBUTTON as u32,
                0,
                ENTRY_X,
                form_bottom + 10,
                100,
                30,
                ID_SAVE,
            );
            state.names.insert(save_button as usize, "save".to_owned());
            state.saved_label = label(auth, "", 300, form_bottom + 14, 200, 26);

            if args.modal_popup {
                let popup = top_level(POPUP_TITLE, 700, 360, 300, 120);
                label(popup, "Your session will expire soon.", 10, 10, 280, 22);
                let reply = entry(popup, "", false, 10, 50, 200);
                state.names.insert(reply as usize, "reply".to_owned());
                state.popup = popup;
                state.popup_reply = reply;
            }
            let windows = [order_window, auth, state.popup];
            STATE.with(|s| *s.borrow_mut() = Some(state));
            for w in windows.into_iter().filter(|w| !w.is_null()) {
                ShowWindow(w, SW_SHOW);
                UpdateWindow(w);
            }
        }
        if let Some(ready) = &args.ready
            && let Err(e) = atomic_write(ready, &std::process::id().to_string())
        {
            eprintln!("win_legacy_ehr_app: cannot write the ready file: {e}");
            return 1;
        }
        unsafe {
            let mut msg: MSG = std::mem::zeroed();
            while GetMessageW(&mut msg, std::ptr::null_mut(), 0, 0) > 0 {
                if pre_translate(&msg) {
                    continue;
                }
                let root = GetAncestor(msg.hwnd, GA_ROOT);
                if !root.is_null() && IsDialogMessageW(root, &msg) != 0 {
                    continue;
                }
                windows_sys::Win32::UI::WindowsAndMessaging::TranslateMessage(&msg);
                DispatchMessageW(&msg);
            }
        }
        0
    }
}
