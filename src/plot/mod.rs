//! Pictures (SVG, drawn with plotters): `pathkernel plot REPORT --out DIR`
//! draws a report's loss, kernel machine, kernels, coefficients and (for
//! discrete methods) residuals; `converge --plot` the refinement study;
//! `search` its counterexample's failing quantity. Every picture is built
//! in memory from [`Panel`]s and written atomically, so a file is whole
//! or absent, and nothing is written when a report lacks what one needs.
//!
//! Each data series gets a colour of [`PALETTE`] that nothing else uses;
//! its elements (a `polyline`, or one `circle` or `polyline` per point or
//! bar) carry `class="series" data-series="k"`, so a reader (and
//! tests/plot.rs) can find each series and count its points.
pub mod chart;
pub mod coefficients;
pub mod converge;
pub mod kernels;
pub mod loss;
pub mod machine;
pub mod residuals;
pub mod search;
pub mod view;

use crate::error::InputError;
use crate::report::write_atomic;
use std::path::{Path, PathBuf};
use view::View;

pub use chart::{Mark, Panel, Series};

/// The series colours, in order (Tableau 10 less its grey, and two more):
/// no axis, grid, reference line or heatmap of these pictures uses them.
pub const PALETTE: [(u8, u8, u8); 11] = [
    (0x1F, 0x77, 0xB4),
    (0xFF, 0x7F, 0x0E),
    (0x2C, 0xA0, 0x2C),
    (0xD6, 0x27, 0x28),
    (0x94, 0x67, 0xBD),
    (0x8C, 0x56, 0x4B),
    (0xE3, 0x77, 0xC2),
    (0xBC, 0xBD, 0x22),
    (0x17, 0xBE, 0xCF),
    (0x00, 0x33, 0x66),
    (0x99, 0x66, 0x00),
];

/// A picture's file name and SVG text.
pub type Picture = (&'static str, String);

/// Marks each element drawn in a series colour with its series index
/// (the palette position): `class="series" data-series="k"`.
pub fn tag_series(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len() + svg.len() / 8);
    for line in svg.split_inclusive('\n') {
        let colour_attr = if line.starts_with("<polyline") {
            Some("stroke=\"")
        } else if line.starts_with("<circle") {
            Some("fill=\"")
        } else {
            None
        };
        let k = colour_attr.and_then(|attr| {
            let at = line.find(attr)? + attr.len();
            let hex = line.get(at..at + 7)?;
            PALETTE
                .iter()
                .position(|&(r, g, b)| hex == hex_colour(r, g, b))
        });
        match k {
            Some(k) => {
                let cut = line.find(' ').unwrap_or(line.len());
                out.push_str(&line[..cut]);
                out.push_str(&format!(" class=\"series\" data-series=\"{k}\""));
                out.push_str(&line[cut..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// `#RRGGBB` as the SVG backend writes colours.
fn hex_colour(r: u8, g: u8, b: u8) -> String {
    format!("#{r:02X}{g:02X}{b:02X}")
}

/// Writes each picture into `dir` (created if absent), atomically.
pub fn write_pictures(dir: &Path, pictures: &[Picture]) -> Result<Vec<PathBuf>, InputError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        InputError::new(
            dir.display().to_string(),
            format!("cannot create the output directory: {e}"),
        )
    })?;
    let mut written = Vec::new();
    for (name, svg) in pictures {
        let path = dir.join(name);
        write_atomic(&path, svg, "the picture")?;
        written.push(path);
    }
    Ok(written)
}

/// Every picture of a report: loss.svg, kernel_machine.svg, kernels.svg,
/// coefficients.svg, and residuals.svg for a discrete method (gd, sgd,
/// adam). A field a picture needs and the report lacks is an error.
pub fn pictures(view: &View) -> Result<Vec<Picture>, InputError> {
    let mut all = vec![
        ("loss.svg", loss::draw(view)?),
        ("kernel_machine.svg", machine::draw(view)?),
        ("kernels.svg", kernels::draw(view)?),
        ("coefficients.svg", coefficients::draw(view)?),
    ];
    if view.is_discrete() {
        all.push(("residuals.svg", residuals::draw(view)?));
    }
    Ok(all)
}

/// `pathkernel plot REPORT --out DIR`: draws every picture in memory, then
/// writes them; returns what to print.
pub fn command(report: &Path, out: &Path) -> Result<String, InputError> {
    if out.exists() && !out.is_dir() {
        return Err(InputError::new(
            "--out",
            format!(
                "{}: is a file, expected a directory for the pictures",
                out.display()
            ),
        ));
    }
    let view = View::read(report)?;
    let pictures = pictures(&view)?;
    let written = write_pictures(out, &pictures)?;
    Ok(written
        .iter()
        .map(|p| format!("wrote {}\n", p.display()))
        .collect())
}

/// A drawing error (plotters') as an error naming the picture.
pub fn drawn(
    view_path: &Path,
    name: &str,
    svg: Result<String, String>,
) -> Result<String, InputError> {
    svg.map_err(|e| {
        InputError::new(
            format!("{}: {name}", view_path.display()),
            format!("cannot draw the picture: {e}"),
        )
    })
}

/// "output c" for C > 1 (with the palette colour c), else `single`.
pub fn output_name(single: &str, c: usize, k: usize) -> String {
    if c == 1 {
        single.to_owned()
    } else {
        format!("{single}, output {k}")
    }
}
