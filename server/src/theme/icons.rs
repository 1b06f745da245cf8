//! The installable app's icons: the theme's logo drawn into a square of 192 and 512 pixels, as
//! the PNG files phones and desktops want for a web app. An SVG logo is rendered (resvg, pure
//! Rust; text in a logo is not drawn, as no fonts ship with the binary); a PNG, JPEG or WebP
//! one is scaled (PNG only: the others are drawn as the built-in mark).

use super::Picture;
use super::images;
use resvg::usvg;
use tiny_skia::{FilterQuality, Pixmap, PixmapPaint, Transform};

/// The sizes the manifest names.
pub const SIZES: [u32; 2] = [192, 512];

/// Scales a `w` by `h` picture to fit a `size` square, centred.
fn fit(w: f32, h: f32, size: u32) -> Transform {
    let scale = size as f32 / w.max(h);
    let (dx, dy) = ((size as f32 - w * scale) / 2.0, (size as f32 - h * scale) / 2.0);
    Transform::from_row(scale, 0.0, 0.0, scale, dx, dy)
}

/// The logo as a `size`-pixel square PNG, the picture centred and as large as it fits.
pub fn app_icon(logo: &Picture, size: u32) -> Result<Vec<u8>, String> {
    let mut canvas = Pixmap::new(size, size).ok_or("an icon size of zero")?;
    match logo.content_type {
        images::SVG => {
            let tree = usvg::Tree::from_data(&logo.bytes, &usvg::Options::default())
                .map_err(|e| format!("the logo cannot be drawn: {e}"))?;
            resvg::render(&tree, fit(tree.size().width(), tree.size().height(), size), &mut canvas.as_mut());
        }
        "image/png" => {
            let picture =
                Pixmap::decode_png(&logo.bytes).map_err(|e| format!("the logo is not a PNG: {e}"))?;
            let paint = PixmapPaint { quality: FilterQuality::Bicubic, ..PixmapPaint::default() };
            let place = fit(picture.width() as f32, picture.height() as f32, size);
            canvas.draw_pixmap(0, 0, picture.as_ref(), &paint, place, None);
        }
        other => return Err(format!("a {other} logo is not drawn as an app icon")),
    }
    canvas.encode_png().map_err(|e| format!("encoding the icon: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(png: &[u8]) -> (u32, u32, Vec<u8>) {
        let p = Pixmap::decode_png(png).unwrap();
        (p.width(), p.height(), p.data().to_vec())
    }

    #[test]
    fn the_built_in_mark_becomes_square_pngs_in_the_brand_colour() {
        let svg = include_str!("../web/static/logo.svg").replace("#3b5bdb", "#c2255c");
        let logo = Picture { bytes: svg.into_bytes().into(), content_type: images::SVG };
        for size in SIZES {
            let (w, h, rgba) = decoded(&app_icon(&logo, size).unwrap());
            assert_eq!((w, h), (size, size));
            // A pixel inside the rounded square, away from the white letter: the brand colour.
            let at = ((size / 8) * size + size / 2) as usize * 4;
            assert_eq!(&rgba[at..at + 3], &[0xc2, 0x25, 0x5c], "{size}");
        }
    }

    #[test]
    fn a_png_logo_is_scaled_and_centred() {
        let mut small = Pixmap::new(40, 20).unwrap();
        small.fill(tiny_skia::Color::from_rgba8(0, 128, 0, 255));
        let logo = Picture { bytes: small.encode_png().unwrap().into(), content_type: "image/png" };
        let (_, _, rgba) = decoded(&app_icon(&logo, 192).unwrap());
        let pixel = |x: usize, y: usize| rgba[(y * 192 + x) * 4..(y * 192 + x) * 4 + 4].to_vec();
        assert_eq!(pixel(96, 96), vec![0, 128, 0, 255], "drawn in the middle");
        assert_eq!(pixel(96, 10)[3], 0, "transparent above a wide logo");
        let jpeg = Picture { bytes: vec![0xff, 0xd8, 0xff].into(), content_type: "image/jpeg" };
        assert!(app_icon(&jpeg, 192).is_err());
    }
}
