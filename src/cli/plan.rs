//! `hidream-studio plan`: where the models go for a GPU memory budget, and why.

use std::process::ExitCode;

use clap::Args;
use hidream_studio::placement::{
    EncoderDevice, EncoderFormat, PlanModel, PlanRequest, Planner, TableRequest, render_placement,
    render_tiers, tier_placements,
};
use hidream_studio::quantize::QuantTarget;

use super::job_args::size_flag;

#[derive(Args)]
pub struct PlanArgs {
    /// Whose workload: HiDream-I1 (text to image, 4096 image tokens, batch 2) or E1.1
    /// (editing, 8192 image tokens, batch 3).
    #[arg(long, value_enum, default_value_t = PlanModel::I1)]
    model: PlanModel,
    /// The GPU memory the models may use: 24GiB (2³⁰ bytes), 24GB (10⁹ bytes), 16000MiB.
    /// Without it, the table for 80, 48, 24, 16 and 12 GB.
    #[arg(long, value_parser = size_flag)]
    vram_budget: Option<u64>,
    /// The transformer's format. Default: the best that fits without streaming (bf16, q8_0,
    /// q6_k, q5_k_m, q4_k_m), else q4_k_m streamed.
    #[arg(long, value_enum)]
    transformer_type: Option<QuantTarget>,
    /// The text encoders' format: bf16 as released, or T5 and Llama in q8_0.
    #[arg(long, value_enum, default_value_t = EncoderFormat::Bf16)]
    encoder_type: EncoderFormat,
    /// Where the text encoders run. Default: the GPU where they fit, else the CPU.
    #[arg(long, value_enum)]
    encoder_device: Option<EncoderDevice>,
    /// Print JSON: one placement with --vram-budget, else every tier's.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let planner = Planner::released()?;
    let table = TableRequest {
        model: args.model,
        transformer: args.transformer_type,
        encoders: args.encoder_type,
        encoder_device: args.encoder_device,
    };
    let Some(budget) = args.vram_budget else {
        if args.json {
            let tiers: Vec<serde_json::Value> = tier_placements(&planner, &table)?
                .into_iter()
                .map(|(budget, placement)| match placement {
                    Ok(p) => serde_json::json!({"budget_bytes": budget, "placement": p}),
                    Err(e) => serde_json::json!({"budget_bytes": budget, "error": e.to_string()}),
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({"model": args.model, "tiers": tiers})
            );
        } else {
            super::print_report(&render_tiers(&planner, &table)?)?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let request = PlanRequest {
        budget,
        model: args.model,
        transformer: args.transformer_type.unwrap_or(QuantTarget::Bf16),
        encoders: args.encoder_type,
        encoder_device: args.encoder_device,
    };
    let placement = match args.transformer_type {
        Some(_) => planner.plan(&request)?,
        None => planner.recommend(&request)?,
    };
    if args.json {
        println!("{}", serde_json::to_string(&placement)?);
    } else {
        super::print_report(&render_placement(&placement))?;
    }
    Ok(ExitCode::SUCCESS)
}
