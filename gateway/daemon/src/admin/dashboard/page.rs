//! The dashboard pages: HTML documents with inline CSS and JS (`page.html`,
//! `messages.html`), filled with the viewer's name, its CSRF token and what
//! it may do. The figures and rows are filled in by the scripts from
//! `/api/v1/stats` and `/api/v1/messages`.

const TEMPLATE: &str = include_str!("page.html");
const MESSAGES: &str = include_str!("messages.html");
/// The style both pages share (colours, body, header and navigation).
const BASE_CSS: &str = include_str!("base.css");

/// The dashboard for `user` (HTML-escaped), with `csrf` for changing requests.
pub fn render(user: &str, csrf: &str, can_replay: bool) -> String {
    fill(TEMPLATE, user, csrf, can_replay)
}

/// The messages page for `user`. `can_read_phi` only words the page's hint;
/// whether raw bytes are shown is decided by what the API returns.
pub fn render_messages(user: &str, csrf: &str, can_replay: bool, can_read_phi: bool) -> String {
    fill(MESSAGES, user, csrf, can_replay).replace("{{CAN_READ_PHI}}", flag(can_read_phi))
}

fn fill(template: &str, user: &str, csrf: &str, can_replay: bool) -> String {
    template
        .replace("{{BASE_CSS}}", BASE_CSS)
        .replace("{{USER}}", &escape(user))
        .replace("{{CSRF}}", &escape(csrf))
        .replace("{{CAN_REPLAY}}", flag(can_replay))
}

fn flag(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// Escapes text for an HTML element or a double-quoted attribute.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{render, render_messages};

    #[test]
    fn the_messages_page_is_filled_and_self_contained() {
        let html = render_messages("desk<b>", "tok\"en", true, false);
        assert!(html.contains("desk&lt;b&gt;"));
        assert!(html.contains("tok&quot;en"));
        assert!(!html.contains("{{"), "an unfilled placeholder");
        assert!(
            html.contains("header nav a"),
            "the shared style is spliced in"
        );
        assert!(html.contains("data-can-replay=\"true\""));
        assert!(html.contains("data-can-read-phi=\"false\""));
        for needle in ["src=\"http", "href=\"http", "<link", "@import", "src=\"//"] {
            assert!(!html.contains(needle), "external asset: {needle}");
        }
        // Each page links the other.
        assert!(html.contains("href=\"/\""));
        assert!(render("u", "c", false).contains("href=\"/messages\""));
    }

    #[test]
    fn placeholders_are_filled_and_escaped() {
        let html = render("ops<script>", "abc\"def", false);
        assert!(html.contains("ops&lt;script&gt;"));
        assert!(html.contains("abc&quot;def"));
        assert!(!html.contains("{{"), "an unfilled placeholder");
        assert!(
            html.contains("header nav a"),
            "the shared style is spliced in"
        );
        assert!(html.contains("data-can-replay=\"false\""));
        // Self-contained: nothing is loaded from elsewhere.
        for needle in ["src=\"http", "href=\"http", "<link", "@import", "src=\"//"] {
            assert!(!html.contains(needle), "external asset: {needle}");
        }
    }
}
