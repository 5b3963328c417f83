//! The planner's answers as text: the tiers table `plan` prints and one placement in full.

use std::fmt::Write as _;

use super::PlacementError;
use super::ladder::LADDER;
use super::memory::{IMAGE_SIDE, PlanModel};
use super::planner::{
    DecodePlacement, EncoderDevice, EncoderPlacement, Placement, PlanRequest, Planner,
    TransformerPlacement,
};
use super::size::gb;
use super::weights::EncoderFormat;
use crate::quantize::QuantTarget;

/// The memory tiers of issue 18, as budgets of 10⁹ bytes. A card sold as "24 GB" has 24 GiB
/// (25.8 GB), so planning for 24 GB leaves 1.8 GB for the display and other processes.
pub const TIERS: [u64; 5] = [
    80_000_000_000,
    48_000_000_000,
    24_000_000_000,
    16_000_000_000,
    12_000_000_000,
];

/// What the tiers table is planned for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRequest {
    pub model: PlanModel,
    /// `None`: each tier's recommended format.
    pub transformer: Option<QuantTarget>,
    pub encoders: EncoderFormat,
    pub encoder_device: Option<EncoderDevice>,
}

impl TableRequest {
    fn at(self, budget: u64, transformer: QuantTarget) -> PlanRequest {
        PlanRequest {
            budget,
            model: self.model,
            transformer,
            encoders: self.encoders,
            encoder_device: self.encoder_device,
        }
    }
}

/// A tier's budget and its placement, or why there is none.
pub type TierPlacement = (u64, Result<Placement, PlacementError>);

/// Each tier's placement: the given format, or the recommended one. Only a bug (a built-in
/// config that does not build) fails the whole table.
pub fn tier_placements(
    planner: &Planner,
    request: &TableRequest,
) -> Result<Vec<TierPlacement>, PlacementError> {
    TIERS
        .iter()
        .map(|&budget| {
            let at = request.at(budget, request.transformer.unwrap_or(QuantTarget::Bf16));
            let placement = match request.transformer {
                Some(_) => planner.plan(&at),
                None => planner.recommend(&at),
            };
            match placement {
                Err(e @ (PlacementError::BuiltInConfig { .. } | PlacementError::Audit { .. })) => {
                    Err(e)
                }
                other => Ok((budget, other)),
            }
        })
        .collect()
}

fn decode_name(d: DecodePlacement) -> &'static str {
    match d {
        DecodePlacement::Whole => "whole",
        DecodePlacement::Tiled => "tiled",
    }
}

/// Peak sizes without the unit, for table cells.
fn num(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e9)
}

/// The tiers table: a grid of budget × format, the placement of each tier and its reasons.
pub fn render_tiers(planner: &Planner, request: &TableRequest) -> Result<String, PlacementError> {
    let mut out = String::new();
    let work = request.model.workload(&planner.configs().transformer);
    let _ = writeln!(
        out,
        "{}: {} tokens a sample × batch {}, a {IMAGE_SIDE}² image; encoders {}{}. GB = 10⁹ bytes.",
        request.model.name(),
        work.tokens(),
        work.batch,
        request.encoders.name(),
        match request.encoder_device {
            Some(EncoderDevice::Cpu) => " on the CPU",
            Some(EncoderDevice::Gpu) => " on the GPU",
            None => "",
        }
    );
    let _ = writeln!(
        out,
        "\nTransformer by budget and format (placement and peak GB; N/48: N of the 48 blocks \
         resident, the rest streamed):"
    );
    let mut header = format!("{:<8}", "budget");
    for f in LADDER {
        let _ = write!(header, "{:<15}", f.name());
    }
    let _ = writeln!(out, "{}", header.trim_end());
    for budget in TIERS {
        let mut row = format!("{:<8}", format!("{:.0} GB", budget as f64 / 1e9));
        for f in LADDER {
            let cell = match planner.plan(&request.at(budget, f)) {
                Ok(p) => format!(
                    "{} {}{}",
                    p.transformer.describe(),
                    num(p.overall_peak_bytes),
                    if p.encoders == EncoderPlacement::AllResident {
                        "*"
                    } else {
                        ""
                    }
                ),
                Err(_) => "does not fit".into(),
            };
            let _ = write!(row, "{cell:<15}");
        }
        let _ = writeln!(out, "{}", row.trim_end());
    }
    let _ = writeln!(out, "* the text encoders stay resident too");
    let placements = tier_placements(planner, request)?;
    let _ = writeln!(
        out,
        "\nPlacements ({}; peaks in GB):",
        match request.transformer {
            Some(f) => format!("{} transformer", f.name()),
            None => "the best format that fits resident, else q4_k_m streamed".into(),
        }
    );
    let _ = writeln!(
        out,
        "{:<8}{:<8}{:<13}{:<26}{:<6}{:>7}{:>9}{:>8}{:>7}",
        "budget", "format", "transformer", "encoders", "VAE", "encode", "denoise", "decode", "peak"
    );
    for (budget, placement) in &placements {
        let label = format!("{:.0} GB", *budget as f64 / 1e9);
        match placement {
            Ok(p) => {
                let _ = writeln!(
                    out,
                    "{label:<8}{:<8}{:<13}{:<26}{:<6}{:>7}{:>9}{:>8}{:>7}",
                    p.transformer_format,
                    p.transformer.describe(),
                    p.encoders.describe(),
                    decode_name(p.decode),
                    num(p.peak_bytes.encode),
                    num(p.peak_bytes.denoise),
                    num(p.peak_bytes.decode),
                    num(p.overall_peak_bytes),
                );
            }
            Err(e) => {
                let _ = writeln!(out, "{label:<8}{e}");
            }
        }
    }
    for (budget, placement) in &placements {
        if let Ok(p) = placement {
            let _ = writeln!(out, "\n{:.0} GB:", *budget as f64 / 1e9);
            for reason in &p.reasons {
                let _ = writeln!(out, "  - {reason}");
            }
        }
    }
    Ok(out)
}

/// One placement in full: the choices, the peaks and every reason.
pub fn render_placement(p: &Placement) -> String {
    let mut out = String::new();
    let transformer = match p.transformer {
        TransformerPlacement::Resident => "resident".to_string(),
        TransformerPlacement::Streamed {
            resident_blocks,
            blocks,
            ..
        } => format!("streamed, {resident_blocks} of {blocks} blocks resident"),
    };
    let _ = writeln!(
        out,
        "{} in {}: {} transformer {transformer}; encoders ({}) {}; decode {}",
        p.model.name(),
        gb(p.budget_bytes),
        p.transformer_format,
        p.encoder_format.name(),
        p.encoders.describe().replace(" it", " the transformer"),
        decode_name(p.decode),
    );
    let _ = writeln!(
        out,
        "peak GPU memory: encode {}, denoise {}, decode {}; overall {}; host memory {}",
        gb(p.peak_bytes.encode),
        gb(p.peak_bytes.denoise),
        gb(p.peak_bytes.decode),
        gb(p.overall_peak_bytes),
        gb(p.host_bytes),
    );
    for reason in &p.reasons {
        let _ = writeln!(out, "  - {reason}");
    }
    out
}
