//! The dashboard page: one HTML document with inline CSS and JS
//! (`page.html`), filled with the viewer's name, its CSRF token and whether it
//! may replay. The figures are filled in by the script from `/api/v1/stats`.

const TEMPLATE: &str = include_str!("page.html");

/// The page for `user` (HTML-escaped), with `csrf` for changing requests.
pub fn render(user: &str, csrf: &str, can_replay: bool) -> String {
    TEMPLATE
        .replace("{{USER}}", &escape(user))
        .replace("{{CSRF}}", &escape(csrf))
        .replace("{{CAN_REPLAY}}", if can_replay { "true" } else { "false" })
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
    use super::render;

    #[test]
    fn placeholders_are_filled_and_escaped() {
        let html = render("ops<script>", "abc\"def", false);
        assert!(html.contains("ops&lt;script&gt;"));
        assert!(html.contains("abc&quot;def"));
        assert!(!html.contains("{{"), "an unfilled placeholder");
        assert!(html.contains("data-can-replay=\"false\""));
        // Self-contained: nothing is loaded from elsewhere.
        for needle in ["src=\"http", "href=\"http", "<link", "@import", "src=\"//"] {
            assert!(!html.contains(needle), "external asset: {needle}");
        }
    }
}
