//! Hand-written HTML: one escape function used for every value, and the page frame. No
//! templating crate: the pages are small, and a single `escape` is easy to audit.

use std::fmt::Write;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
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

/// The Content-Security-Policy of every page: only orderguard's own script and stylesheet,
/// inline SVG, same-origin fetches; no inline script, no frames, no foreign anything.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    base-uri 'none'; frame-ancestors 'none'";

/// Which page of the navigation is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Pharmacy,
    Reports,
}

/// A whole page around `body` (already escaped HTML).
pub fn page(title: &str, nav: Nav, scripts: &[&str], body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · orderguard</title>\
         <link rel=\"icon\" href=\"data:,\">\
         <link rel=\"stylesheet\" href=\"/static/orderguard.css\">",
        escape(title)
    );
    for script in scripts {
        let _ = write!(out, "<script src=\"{}\" defer></script>", escape(script));
    }
    let link = |href: &str, label: &str, current: bool| {
        format!(
            "<a href=\"{href}\"{}>{label}</a>",
            if current {
                " aria-current=\"page\""
            } else {
                ""
            }
        )
    };
    let _ = write!(
        out,
        "</head><body><header><strong>orderguard</strong><nav>{}{}</nav></header>\
         <main><h1>{}</h1>{body}</main></body></html>",
        link("/pharmacy", "Dosing alerts", nav == Nav::Pharmacy),
        link("/reports", "Reports", nav == Nav::Reports),
        escape(title)
    );
    out
}

/// `<option>`s for a select, `selected` marking the current value.
pub fn options(values: &[(&str, &str)], selected: Option<&str>) -> String {
    let mut out = String::new();
    for (value, label) in values {
        let _ = write!(
            out,
            "<option value=\"{}\"{}>{}</option>",
            escape(value),
            if Some(*value) == selected {
                " selected"
            } else {
                ""
            },
            escape(label)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_the_five_characters() {
        assert_eq!(
            escape(r#"<script>alert('x' & "y")</script>"#),
            "&lt;script&gt;alert(&#39;x&#39; &amp; &quot;y&quot;)&lt;/script&gt;"
        );
        assert_eq!(escape("plain é"), "plain é");
    }

    #[test]
    fn the_page_escapes_its_title_and_marks_the_current_page() {
        let html = page("<b>x</b>", Nav::Reports, &["/static/a.js"], "<p>body</p>");
        assert!(html.contains("<title>&lt;b&gt;x&lt;/b&gt; · orderguard</title>"));
        assert!(html.contains("<a href=\"/reports\" aria-current=\"page\">"));
        assert!(html.contains("<script src=\"/static/a.js\" defer></script>"));
        assert!(html.contains("<p>body</p>"));
    }
}
