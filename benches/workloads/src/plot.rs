//! The SVG plots of `watchq bench`: a throughput bar chart of the ring
//! groups, and one plot per cost curve (ns per record beside the physical
//! floor, and the ratio to the peer).
//
// Written by hand, measured against plotters 0.3.7 (default features
// off, `svg_backend` only: no font stack, its naive text layout). The
// bar chart there, rustfmt'd and at parity (these colours, gaps between
// bars, values above them), was 81 lines of code against 78, still
// without the per-bar `<title>` tooltips, and needed a way around a
// plotters panic (`x_labels(0)` overflows in its key-point search); it
// added four crates (plotters, plotters-backend, plotters-svg,
// num-traits) and about 6 s to a clean build on this 2-core machine. Not
// shorter, so not worth them.

use crate::suite::Suite;
use std::fmt::Write as _;

const COLOURS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];

/// An SVG bar chart of throughput (million records per second, medians
/// over the runs): the ring groups at 16 and 127 bytes, one bar per
/// implementation.
pub fn bars(suite: &Suite) -> String {
    let panels: Vec<(&str, usize)> = [
        "ring/st_pair",
        "ring/st_pair_batch",
        "ring/spsc",
        "ring/spsc_batch",
        "ring/mpsc2",
        "ring/mpsc2_batch",
    ]
    .iter()
    .flat_map(|g| [(*g, 16), (*g, 127)])
    .filter(|&(g, p)| suite.params(g).contains(&p))
    .collect();
    let names = [
        "watchq_pipe_ring",
        "watchq_mmap_ring",
        "crossbeam_array_queue",
        "rtrb",
    ];
    let mrps = |g: &str, who: &str, p: usize| suite.figure(g, who, p).map(|f| 1000.0 / f.median);
    let top = panels
        .iter()
        .flat_map(|&(g, p)| names.iter().filter_map(move |n| mrps(g, n, p)))
        .fold(1.0, f64::max);
    let pw = 150.0;
    let (w, h) = (40.0 + pw * panels.len() as f64, 380.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="16" font-size="14">Throughput, million records per second (medians of alternating rounds over the runs; higher is better)</text>"#
    );
    for (i, &(g, p)) in panels.iter().enumerate() {
        let x0 = 20.0 + i as f64 * pw;
        let label = g.trim_start_matches("ring/");
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{label} {p} B</text>"#,
            x0 + 6.0,
            h - 10.0
        );
        for (j, name) in names.iter().enumerate() {
            let Some(v) = mrps(g, name, p) else { continue };
            let bh = (h - 90.0) * v / top;
            let (x, y) = (x0 + 6.0 + j as f64 * 33.0, h - 30.0 - bh);
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="28" height="{bh:.1}" fill="{}"><title>{name}: {v:.1} M/s</title></rect><text x="{x:.1}" y="{:.1}">{v:.0}</text>"#,
                COLOURS[j],
                y - 3.0
            );
        }
    }
    for (j, name) in names.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="28" width="10" height="10" fill="{}"/><text x="{}" y="37">{name}</text>"#,
            20 + j * 200,
            COLOURS[j],
            34 + j * 200
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One curve: left, ns per record of every implementation (log scale)
/// with the floors dashed; right, each watchq implementation's ratio to
/// `peer` (median over the runs, the range as a bar), with 1× marked.
pub fn curve(suite: &Suite, group: &str, what: &str, peer: &str) -> String {
    let params = suite.params(group);
    let whos = suite.whos(group);
    let (pw, ph, top, left) = (420.0, 260.0, 50.0, 60.0);
    let w = 2.0 * pw + 2.0 * left + 40.0;
    let h = top + ph + 90.0;
    let n = params.len().max(1) as f64;
    let x_at = |x0: f64, i: usize| x0 + pw * (i as f64 + 0.5) / n;
    let mut series: Vec<(String, Vec<Option<f64>>, bool)> = whos
        .iter()
        .map(|who| {
            let ys = params
                .iter()
                .map(|&p| suite.figure(group, who, p).map(|f| f.median))
                .collect();
            (who.to_string(), ys, false)
        })
        .collect();
    let copy = params
        .iter()
        .map(|&p| {
            let len = if group == "curve/size" { p } else { 16 };
            suite.figure("floor/copy", "memcpy", len).map(|f| f.median)
        })
        .collect();
    series.push(("floor: copy".into(), copy, true));
    let handoff = suite
        .figure("floor/handoff", "cache_line", 64)
        .map(|f| f.median);
    series.push((
        "floor: line handoff".into(),
        vec![handoff; params.len()],
        true,
    ));
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|(_, v, _)| v.iter().flatten().copied())
        .collect();
    let lo = ys
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(0.01)
        .log10()
        .floor();
    let hi = ys
        .iter()
        .copied()
        .fold(0.1, f64::max)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let y_log = |v: f64| top + ph - ph * (v.max(1e-3).log10() - lo) / (hi - lo);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="14">{group}: ns per record by {what} (left, log scale; floors dashed) and ratio to {peer} (right)</text>"#
    );
    // Axes and ticks of both panels.
    for x0 in [left, 2.0 * left + pw + 20.0] {
        let _ = writeln!(
            s,
            r##"<rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
        );
        for (i, p) in params.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{p}</text>"#,
                x_at(x0, i),
                top + ph + 15.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{what}</text>"#,
            x0 + pw / 2.0,
            top + ph + 32.0
        );
    }
    let mut d = lo;
    while d <= hi {
        let v = 10f64.powf(d);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v} ns</text>"##,
            left + pw,
            left - 4.0,
            y_log(v) + 4.0,
            y = y_log(v)
        );
        d += 1.0;
    }
    for (k, (name, ys, dashed)) in series.iter().enumerate() {
        let colour = if *dashed {
            "#777"
        } else {
            COLOURS[k % COLOURS.len()]
        };
        let dash = if *dashed {
            if name.contains("copy") {
                r#" stroke-dasharray="2,3""#
            } else {
                r#" stroke-dasharray="6,3""#
            }
        } else {
            ""
        };
        let pts: Vec<String> = ys
            .iter()
            .enumerate()
            .filter_map(|(i, y)| y.map(|y| format!("{:.1},{:.1}", x_at(left, i), y_log(y))))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}><title>{name}</title></polyline>"#,
            pts.join(" ")
        );
        for (i, y) in ys.iter().enumerate() {
            if let (Some(y), false) = (y, dashed) {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{name} at {}: {y:.1} ns</title></circle>"#,
                    x_at(left, i),
                    y_log(*y),
                    params[i]
                );
            }
        }
        let _ = writeln!(
            s,
            r#"<line x1="{}" x2="{}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="2"{dash}/><text x="{}" y="{}">{name}</text>"#,
            left + 10.0 + (k % 3) as f64 * 270.0,
            left + 30.0 + (k % 3) as f64 * 270.0,
            left + 34.0 + (k % 3) as f64 * 270.0,
            h - 28.0 + (k / 3) as f64 * 14.0 + 4.0,
            y = h - 28.0 + (k / 3) as f64 * 14.0
        );
    }
    // The ratios.
    let x0 = 2.0 * left + pw + 20.0;
    let watchq: Vec<&str> = whos.iter().copied().filter(|w| *w != peer).collect();
    let ratios: Vec<Vec<Option<(f64, f64, f64)>>> = watchq
        .iter()
        .map(|who| {
            params
                .iter()
                .map(|&p| {
                    suite
                        .ratio(group, who, peer, p)
                        .map(|r| (r.median, r.lo, r.hi))
                })
                .collect()
        })
        .collect();
    let rmax = ratios
        .iter()
        .flatten()
        .flatten()
        .map(|r| r.2)
        .fold(1.5, f64::max)
        .min(20.0);
    let y_lin = |v: f64| top + ph - ph * v.min(rmax) / rmax;
    for tick in [0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0]
        .into_iter()
        .filter(|t| *t <= rmax)
    {
        let colour = if tick == 1.0 { "#444" } else { "#ddd" };
        let _ = writeln!(
            s,
            r#"<line x1="{x0}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{colour}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{tick}×</text>"#,
            x0 + pw,
            x0 - 4.0,
            y_lin(tick) + 4.0,
            y = y_lin(tick)
        );
    }
    for (k, (who, rs)) in watchq.iter().zip(&ratios).enumerate() {
        let colour = COLOURS[whos.iter().position(|w| w == who).unwrap_or(k) % COLOURS.len()];
        let pts: Vec<String> = rs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|r| format!("{:.1},{:.1}", x_at(x0, i), y_lin(r.0))))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            pts.join(" ")
        );
        for (i, r) in rs.iter().enumerate() {
            let Some((m, lo, hi)) = r else { continue };
            let x = x_at(x0, i) + (k as f64 - 0.5) * 6.0;
            let _ = writeln!(
                s,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="{colour}"/><circle cx="{x:.1}" cy="{:.1}" r="3" fill="{colour}"><title>{who} ÷ {peer} at {}: {m:.2}× ({lo:.2}–{hi:.2})</title></circle>"#,
                y_lin(*lo),
                y_lin(*hi),
                y_lin(*m),
                params[i]
            );
        }
    }
    s.push_str("</svg>\n");
    s
}
