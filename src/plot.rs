//! What every plot japanim draws shares (training curves, key-frame curves): a font compiled
//! into the binary, so plots need no system fonts.

use plotters::style::FontStyle;

/// Registers the built-in font as plotters' "sans-serif", once.
pub fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT);
    });
}
