//! Which transformer format to use for a budget: the best quality that fits without streaming.

use super::PlacementError;
use super::planner::{Placement, PlanRequest, Planner, TransformerPlacement};
use super::size::gb;
use crate::quantize::QuantTarget;

/// The formats worth recommending, best first. Legacy Q5_0/Q4_0 and friends are left out
/// because a K-quant of about the same size beats them; below Q4_K_M streaming, which costs
/// speed only, is preferred over a smaller format, which costs quality.
pub const LADDER: [QuantTarget; 5] = [
    QuantTarget::Bf16,
    QuantTarget::Q8_0,
    QuantTarget::Q6K,
    QuantTarget::Q5KM,
    QuantTarget::Q4KM,
];

/// The format streamed when none on the ladder fits resident: the smallest on it.
const STREAMED: QuantTarget = QuantTarget::Q4KM;

impl Planner {
    /// The best format on [`LADDER`] whose transformer fits `request`'s budget without
    /// streaming (`request.transformer` is ignored), with its placement.
    pub fn best_format(&self, request: &PlanRequest) -> Result<Option<Placement>, PlacementError> {
        for format in LADDER {
            let placement = match self.plan(&PlanRequest {
                transformer: format,
                ..*request
            }) {
                Ok(p) => p,
                // Too small even streamed (or the encoders forced onto a GPU too small for
                // them): the smaller formats may still fit.
                Err(
                    PlacementError::DoesNotFit { .. } | PlacementError::EncodersDoNotFit { .. },
                ) => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            if placement.transformer == TransformerPlacement::Resident {
                return Ok(Some(placement));
            }
        }
        Ok(None)
    }

    /// The placement to use when no format is given: [`Self::best_format`]'s, else Q4_K_M
    /// streamed; the first reason says why this format.
    pub fn recommend(&self, request: &PlanRequest) -> Result<Placement, PlacementError> {
        let mut placement = match self.best_format(request)? {
            Some(p) => p,
            None => self.plan(&PlanRequest {
                transformer: STREAMED,
                ..*request
            })?,
        };
        let chosen = placement.transformer_format;
        let better: Vec<String> = LADDER
            .iter()
            .take_while(|f| f.name() != chosen)
            .map(|&f| {
                let need = self
                    .plan(&PlanRequest {
                        transformer: f,
                        ..*request
                    })
                    .map(|p| gb(p.resident_need_bytes));
                format!(
                    "{} needs {}",
                    f.name(),
                    need.unwrap_or_else(|_| "more".into())
                )
            })
            .collect();
        let why = if placement.transformer == TransformerPlacement::Resident {
            if better.is_empty() {
                format!("format {chosen}: the best, and it fits resident")
            } else {
                format!(
                    "format {chosen}: the best that fits resident ({} resident, more than {})",
                    better.join(", "),
                    gb(request.budget)
                )
            }
        } else {
            format!(
                "format {chosen}, streamed: no format down to {chosen} fits resident ({}, more \
                 than {}); streaming costs speed, a smaller format quality",
                better.join(", "),
                gb(request.budget)
            )
        };
        placement.reasons.insert(0, why);
        Ok(placement)
    }
}
