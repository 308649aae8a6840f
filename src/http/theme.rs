//! The login page's theme ([`crate::crd::Theme`], CentralAuth's ThemeSettings) as a style
//! sheet: colours and layouts with CSS only, no JavaScript. Colours are checked again here (the
//! schema refuses bad ones at apply, but nothing stored is trusted to be CSS): only `#rgb` and
//! `#rrggbb` reach the style sheet. The image URL never enters CSS: the page makes it the
//! escaped `src` of an `<img>` that the layout places (the CSP allows `img-src https:`).

use crate::crd::{LoginBlockLayout, LoginPageLayout, Theme};

/// The style sheet and the image element of a themed page.
pub struct Look {
    /// The whole `<style>` content.
    pub css: String,
    /// The `https://` image to show (none in the `Compact` page layout), not escaped.
    pub image_url: Option<String>,
}

const BASE: &str = "*{box-sizing:border-box}body{margin:0;min-height:100vh;display:flex;font-family:system-ui,sans-serif;color:var(--neutral);background:var(--bg)}\
.block{background:var(--content);padding:2rem;width:24rem;max-width:100%;border-radius:8px}\
.image{position:fixed;inset:0;z-index:-1}.image img{width:100%;height:100%;object-fit:cover;display:block}\
label{display:block;margin-top:1rem}input{width:100%;padding:.5rem;border:1px solid var(--neutral);border-radius:4px;background:#fff;color:#222}\
button{margin-top:1.5rem;width:100%;padding:.6rem;background:var(--primary);color:#fff;border:0;border-radius:4px;font-size:1rem}\
button.secondary{margin-top:.5rem;background:none;color:var(--primary);border:1px solid var(--primary)}\
.error{color:#b00020}.or{text-align:center;opacity:.7;margin:1rem 0 0}h1{margin-top:.5rem}";

fn page_css(layout: LoginPageLayout) -> &'static str {
    match layout {
        LoginPageLayout::Default => "body{justify-content:center;align-items:flex-start;padding:4rem 1rem}",
        LoginPageLayout::AlignLeft => "body{justify-content:flex-start;align-items:center;padding:2rem 6vw}",
        LoginPageLayout::AlignRight => "body{justify-content:flex-end;align-items:center;padding:2rem 6vw}",
        LoginPageLayout::FullLeft | LoginPageLayout::FullRight => {
            ".block{width:30rem;min-height:100vh;border-radius:0;display:flex;flex-direction:column;justify-content:center;padding:3rem}\
.image{position:static;flex:1;z-index:auto}@media(max-width:48rem){.image{display:none}.block{width:100%}}"
        }
        LoginPageLayout::Compact => {
            "body{justify-content:center;align-items:flex-start;padding:1rem}.block{width:20rem;padding:1rem}"
        }
    }
}

fn block_css(layout: LoginBlockLayout) -> &'static str {
    match layout {
        LoginBlockLayout::Default => "",
        LoginBlockLayout::Compact => {
            ".block{padding:1rem 1.25rem}h1{font-size:1.25rem}label{margin-top:.5rem}input{padding:.35rem}button{margin-top:.75rem;padding:.4rem;font-size:.9rem}"
        }
    }
}

/// Whether `c` is `#rgb` or `#rrggbb`.
pub fn is_color(c: &str) -> bool {
    c.strip_prefix('#')
        .is_some_and(|h| matches!(h.len(), 3 | 6) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn color(value: &Option<String>, default: &'static str) -> String {
    value.as_deref().filter(|c| is_color(c)).unwrap_or(default).to_string()
}

/// The look of a page of an organization with `theme` (the default look without one).
pub fn look(theme: Option<&Theme>) -> Look {
    let t = theme.cloned().unwrap_or_default();
    let vars = format!(
        ":root{{--primary:{};--bg:{};--content:{};--neutral:{}}}",
        color(&t.primary_color, "#2457d6"),
        color(&t.background_color, "#ffffff"),
        color(&t.content_color, "#ffffff"),
        color(&t.neutral_color, "#222222"),
    );
    // The image comes first in the page: `FullLeft` puts the block at the left.
    let flow = match t.login_page_layout {
        LoginPageLayout::FullLeft => "body{flex-direction:row-reverse}",
        _ => "",
    };
    let image_url = t
        .image_url
        .filter(|u| u.starts_with("https://") && t.login_page_layout != LoginPageLayout::Compact);
    Look {
        css: format!(
            "{vars}{BASE}{}{}{flow}",
            page_css(t.login_page_layout),
            block_css(t.login_block_layout)
        ),
        image_url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hex_colours_reach_the_style_sheet() {
        let theme = Theme {
            primary_color: Some("#abc".into()),
            background_color: Some("red;}body{display:none".into()),
            image_url: Some("https://img.example/a.png?\"><script>".into()),
            login_page_layout: LoginPageLayout::FullLeft,
            ..Theme::default()
        };
        let look = look(Some(&theme));
        assert!(look.css.contains("--primary:#abc;--bg:#ffffff;"), "{}", look.css);
        assert!(!look.css.contains("red;"));
        assert!(look.css.contains("row-reverse"));
        assert!(look.image_url.is_some());
        for ok in ["#fff", "#A0b1C2"] {
            assert!(is_color(ok), "{ok}");
        }
        for bad in ["fff", "#ffff", "#ggg", "#fffffff", "url(x)"] {
            assert!(!is_color(bad), "{bad}");
        }
    }

    #[test]
    fn the_compact_page_has_no_image_and_a_plain_http_url_is_not_shown() {
        let compact = Theme {
            image_url: Some("https://img.example/a.png".into()),
            login_page_layout: LoginPageLayout::Compact,
            ..Theme::default()
        };
        assert!(look(Some(&compact)).image_url.is_none());
        let plain = Theme {
            image_url: Some("http://img.example/a.png".into()),
            ..Theme::default()
        };
        assert!(look(Some(&plain)).image_url.is_none());
        assert!(look(None).css.contains("--primary:#2457d6"));
    }
}
