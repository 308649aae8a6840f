//! The login page's theme (CentralAuth's ThemeSettings): colours, layouts and a side image,
//! rendered server-side with CSS only (`crate::http::theme`).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// CEL: a hex colour `#rgb` or `#rrggbb`.
const COLOR_RULE: &str = "self.matches('^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$')";

/// How the login page looks. Every field is optional; what is absent keeps the default look.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Theme {
    /// Colour of buttons and links, `#rgb` or `#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(COLOR_RULE).message("primaryColor must be a hex colour such as #2457d6 or #25d"))]
    pub primary_color: Option<String>,

    /// Colour of the page behind the login block, `#rgb` or `#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(COLOR_RULE).message("backgroundColor must be a hex colour such as #f4f5f7"))]
    pub background_color: Option<String>,

    /// Colour of the login block itself, `#rgb` or `#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(COLOR_RULE).message("contentColor must be a hex colour such as #ffffff"))]
    pub content_color: Option<String>,

    /// Colour of text, borders and secondary elements, `#rgb` or `#rrggbb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(COLOR_RULE).message("neutralColor must be a hex colour such as #222222"))]
    pub neutral_color: Option<String>,

    /// The login block: `Default` (roomy) or `Compact` (tighter spacing, smaller controls).
    #[serde(default)]
    pub login_block_layout: LoginBlockLayout,

    /// Where the block sits on the page: `Default` (centred), `AlignLeft` / `AlignRight`
    /// (over the image, at one side), `FullLeft` / `FullRight` (a full-height panel at one side,
    /// the image filling the other), `Compact` (a narrow page without image).
    #[serde(default)]
    pub login_page_layout: LoginPageLayout,

    /// An `https://` image shown behind or beside the block (by the layout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self) && self.startsWith('https://')").message("imageUrl must be an https:// URL"))]
    pub image_url: Option<String>,
}

/// The login block's density.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoginBlockLayout {
    /// Roomy.
    #[default]
    Default,
    /// Tighter spacing and smaller controls.
    Compact,
}

/// Where the login block sits on the page.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoginPageLayout {
    /// Centred.
    #[default]
    Default,
    /// At the left, over the image.
    AlignLeft,
    /// At the right, over the image.
    AlignRight,
    /// A full-height panel at the left, the image at the right.
    FullLeft,
    /// A full-height panel at the right, the image at the left.
    FullRight,
    /// A narrow page without image.
    Compact,
}
