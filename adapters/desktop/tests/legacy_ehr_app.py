#!/usr/bin/env python3
"""A stand-in for a legacy desktop EHR, for the desktop bridge's tests and demo.

Not part of the product. Two screens with fixed layouts, like the green-screen-era
Windows/X11 EHRs the bridge exists for:

* "LegacyEHR — Order Entry": an order filled from a synthetic JSON file
  (--order), shown in read-only entries the bridge selects and copies.
* "LegacyEHR — Prior Authorization": a patient banner like a real EHR's
  (read-only patient name, MRN, birth date and order number, by default the
  order's patient), editable entries (auth number, status, start/end dates,
  note) and a Save button that writes exactly what the entries hold to --out
  as JSON.

Test hooks: --keylog FILE records every key and button event the application
receives with its window title and widget name, tab-separated (to prove
nothing was typed or clicked outside the banner), --auth-on-other-patient opens
the authorization screen on another (synthetic) patient, --switch-patient-on-key-in
FIELD switches the banner to that other patient when the first key event
reaches the entry FIELD (e.g. `note`: mid-run, event-driven, no delay),
--max-auth-len N makes the auth number
entry refuse longer input (a verification mismatch), --modal-popup shows a
"Session Warning" dialog that takes the focus back whenever the authorization
screen gets it (a wrong-window situation), --ready FILE is written once both
screens are mapped. All data is synthetic.
"""

import argparse
import json
import os
import sys
import tkinter as tk

ORDER_TITLE = "LegacyEHR \u2014 Order Entry"
AUTH_TITLE = "LegacyEHR \u2014 Prior Authorization"
POPUP_TITLE = "LegacyEHR \u2014 Session Warning"

# (key in the order JSON, label); row i is at y = 20 + 40 * i.
ORDER_FIELDS = [
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
]
# The banner of the authorization screen: (key, label, x, y, width); the
# entries are read-only like the order screen's.
BANNER_FIELDS = [
    ("patient_name", "Patient", 80, 10, 260),
    ("mrn", "MRN", 410, 10, 170),
    ("dob", "DOB", 80, 46, 120),
    ("order_number", "Order #", 410, 46, 170),
]
BANNER_H = 90
# Another patient, for the wrong-patient hooks. Synthetic.
OTHER_PATIENT = {
    "patient_name": "OKAFOR, ADAEZE",
    "mrn": "E20002",
    "dob": "07/04/1982",
    "order_number": "ORD-70002",
}
AUTH_FIELDS = [
    ("auth_number", "Auth #"),
    ("status", "Status"),
    ("start_date", "Start date"),
    ("end_date", "End date"),
    ("note", "Note"),
]
ENTRY_X, ENTRY_W, ROW_Y, ROW_H = 180, 380, 20, 40


def atomic_write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--order", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--keylog")
    ap.add_argument("--ready")
    ap.add_argument("--max-auth-len", type=int, default=0)
    ap.add_argument("--modal-popup", action="store_true")
    ap.add_argument("--auth-on-other-patient", action="store_true")
    ap.add_argument("--switch-patient-on-key-in", metavar="FIELD")
    ap.add_argument("--parent-pid", type=int, default=0)
    args = ap.parse_args()

    with open(args.order, encoding="utf-8") as f:
        order = json.load(f)

    root = tk.Tk()
    root.title(ORDER_TITLE)
    root.geometry("600x440+0+0")
    root.resizable(False, False)

    keylog = open(args.keylog, "a", encoding="utf-8") if args.keylog else None

    def log_event(kind):
        def handler(event):
            if keylog:
                widget = event.widget
                name = widget.winfo_name() if hasattr(widget, "winfo_name") else str(widget)
                keylog.write(f"{kind} {widget.winfo_toplevel().title()}\t{name}\n")
                keylog.flush()
        return handler

    root.bind_all("<KeyPress>", log_event("key"), add="+")
    root.bind_all("<ButtonPress>", log_event("button"), add="+")

    for i, (key, label) in enumerate(ORDER_FIELDS):
        y = ROW_Y + ROW_H * i
        tk.Label(root, text=label, anchor="w").place(x=10, y=y, width=160, height=26)
        entry = tk.Entry(root, name=key)
        entry.insert(0, str(order.get(key, "")))
        entry.configure(state="readonly")
        entry.place(x=ENTRY_X, y=y, width=ENTRY_W, height=26)

    auth = tk.Toplevel(root)
    auth.title(AUTH_TITLE)
    auth.geometry("600x380+640+0")
    auth.resizable(False, False)

    # Patient banner: name upper-cased as banners do; the order's own patient
    # unless a hook says otherwise.
    banner = tk.Frame(auth, name="banner", background="#dbe8f5")
    banner.place(x=0, y=0, width=600, height=BANNER_H)
    banner_entries = {}

    def show_patient(patient):
        for key, entry in banner_entries.items():
            entry.configure(state="normal")
            entry.delete(0, "end")
            value = str(patient.get(key, ""))
            entry.insert(0, value.upper() if key == "patient_name" else value)
            entry.configure(state="readonly")

    for key, label, x, y, width in BANNER_FIELDS:
        tk.Label(banner, text=label, anchor="w", background="#dbe8f5").place(
            x=x - 70, y=y, width=65, height=26
        )
        entry = tk.Entry(banner, name="banner_" + key)
        entry.place(x=x, y=y, width=width, height=26)
        banner_entries[key] = entry
    show_patient(OTHER_PATIENT if args.auth_on_other_patient else order)

    def limit(proposed):
        return args.max_auth_len <= 0 or len(proposed) <= args.max_auth_len

    validate = (auth.register(limit), "%P")
    entries = {}
    for i, (key, label) in enumerate(AUTH_FIELDS):
        y = BANNER_H + 10 + ROW_H * i
        tk.Label(auth, text=label, anchor="w").place(x=10, y=y, width=160, height=26)
        if key == "auth_number":
            entry = tk.Entry(auth, name=key, validate="key", validatecommand=validate)
        else:
            entry = tk.Entry(auth, name=key)
        entry.place(x=ENTRY_X, y=y, width=ENTRY_W, height=26)
        entries[key] = entry

    if args.switch_patient_on_key_in:
        switched = []

        def switch_patient(_event):
            # The first key reaching the field switches the chart under the
            # bridge's feet; the key itself still goes into the field.
            if not switched:
                switched.append(True)
                show_patient(OTHER_PATIENT)

        entries[args.switch_patient_on_key_in].bind("<KeyPress>", switch_patient, add="+")

    form_bottom = BANNER_H + 10 + ROW_H * len(AUTH_FIELDS)
    saved = tk.Label(auth, text="", anchor="w")
    saved.place(x=300, y=form_bottom + 10, width=200, height=30)

    def save():
        data = {key: entry.get() for key, entry in entries.items()}
        atomic_write(args.out, json.dumps(data, ensure_ascii=False))
        saved.configure(text="Saved")

    tk.Button(auth, text="Save", name="save", command=save).place(
        x=ENTRY_X, y=form_bottom + 10, width=100, height=30
    )

    if args.modal_popup:
        popup = tk.Toplevel(root)
        popup.title(POPUP_TITLE)
        popup.geometry("300x120+700+360")
        tk.Label(popup, text="Your session will expire soon.").place(x=10, y=10)
        reply = tk.Entry(popup, name="reply")
        reply.place(x=10, y=50, width=200, height=26)

        def take_focus_back(_event=None):
            popup.after(1, lambda: (popup.focus_force(), reply.focus_set()))

        auth.bind("<FocusIn>", take_focus_back, add="+")

    def ready():
        if args.ready:
            atomic_write(args.ready, str(os.getpid()))

    def watch_parent():
        # Exit with the process that started us (the demo), never linger.
        try:
            os.kill(args.parent_pid, 0)
        except OSError:
            root.destroy()
            return
        root.after(500, watch_parent)

    if args.parent_pid:
        root.after(500, watch_parent)
    root.after(300, ready)
    root.mainloop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
