//! The text-to-image controls: prompt, preset, size, seed and the advanced sampling values.

use egui::{DragValue, TextEdit, Ui};

use super::actions::Action;
use super::queue_view::batch_ui;
use super::widgets::{example_hint, label_with_surprise, submit_button, value_row};
use crate::pipelines::{
    GenerationRecord, NamedResolution, OFFICIAL_RESOLUTIONS, Preset, effective_size,
};
use crate::rng::fresh_seed;
use crate::schedulers::SchedulerKind;
use crate::settings::DEFAULT_BASE_RESOLUTION;
use crate::weights::ManifestDefaults;

/// Shown by the prompt box when Generate is clicked without a prompt.
pub const PROMPT_REQUEST: &str = "Type a prompt first: it says what to draw. To generate without \
     one, tick Unconditional.";

/// How the seed of the next job is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedMode {
    /// A new random seed for every job.
    Random,
    /// The seed in the field, every time.
    Fixed,
    /// The seed in the field, then one more for the next job.
    Increment,
}

/// The requested size: one of the official sizes, or typed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeChoice {
    Official(usize),
    Custom,
}

pub struct GeneratePanel {
    pub prompt: String,
    /// Generate without a prompt, chosen explicitly; the prompt box is then not used.
    pub unconditional: bool,
    pub negative_prompt: String,
    pub preset: Preset,
    pub size: SizeChoice,
    pub custom_width: u32,
    pub custom_height: u32,
    pub seed_mode: SeedMode,
    pub seed: u64,
    /// Images per click (seeds counting up from the seed).
    pub batch: u32,
    pub steps: usize,
    pub guidance: f64,
    pub shift: f64,
    show_advanced: bool,
    /// The running model's own steps, guidance and shift (a bundled model's manifest), shown
    /// instead of the preset's, which are made for the released models.
    pub(crate) model_defaults: Option<ManifestDefaults>,
    /// The running model's base resolution where its manifest gives one (64 for Shapes).
    pub(crate) model_base: Option<u32>,
    /// Prompts the running model can draw: the placeholder and "Surprise me".
    pub(crate) examples: Vec<String>,
    /// Generate was asked for with an empty prompt: the box says what to do until it is filled.
    asked_for_prompt: bool,
}

impl Default for GeneratePanel {
    fn default() -> Self {
        let mut panel = Self {
            prompt: String::new(),
            unconditional: false,
            negative_prompt: String::new(),
            preset: Preset::Full,
            size: SizeChoice::Official(0),
            custom_width: 1024,
            custom_height: 1024,
            seed_mode: SeedMode::Random,
            seed: fresh_seed(),
            batch: 1,
            steps: 0,
            guidance: 0.0,
            shift: 0.0,
            show_advanced: false,
            model_defaults: None,
            model_base: None,
            examples: Vec::new(),
            asked_for_prompt: false,
        };
        panel.set_preset(Preset::Full);
        panel
    }
}

impl GeneratePanel {
    /// Switches preset and shows its defaults for steps, guidance and shift.
    pub(crate) fn set_preset(&mut self, preset: Preset) {
        let d = preset.defaults();
        self.preset = preset;
        // The preset's model may be another: its defaults are looked up again.
        self.model_defaults = None;
        self.steps = d.steps;
        self.guidance = d.guidance;
        self.shift = d.shift;
    }

    /// Shows a bundled model's own steps, guidance and shift instead of the preset's.
    pub(crate) fn set_model_defaults(&mut self, defaults: Option<ManifestDefaults>) {
        self.model_defaults = defaults;
        if let Some(defaults) = defaults {
            self.steps = defaults.steps;
            self.guidance = defaults.guidance;
            self.shift = defaults.shift;
        }
    }

    /// Back to the running model's defaults: its own, else the preset's.
    fn reset_values(&mut self) {
        match self.model_defaults {
            Some(defaults) => self.set_model_defaults(Some(defaults)),
            None => self.set_preset(self.preset),
        }
    }

    /// Whether there is nothing to generate from: no prompt (blank counts as none) and
    /// unconditional not chosen.
    pub(crate) fn missing_prompt(&self) -> bool {
        !self.unconditional && self.prompt.trim().is_empty()
    }

    /// Shows the request for a prompt by the prompt box.
    pub(crate) fn ask_for_prompt(&mut self) {
        self.asked_for_prompt = true;
    }

    /// The prompt a job runs with: empty when unconditional is chosen.
    pub(crate) fn job_prompt(&self) -> String {
        if self.unconditional {
            String::new()
        } else {
            self.prompt.clone()
        }
    }

    /// Whether the current values run classifier-free guidance (a negative prompt matters).
    pub(crate) fn uses_guidance(&self) -> bool {
        self.guidance > 1.0
    }

    /// The size asked for, before rescaling to the base resolution.
    pub(crate) fn requested_size(&self) -> (u32, u32) {
        match self.size {
            SizeChoice::Official(i) => OFFICIAL_RESOLUTIONS
                .get(i)
                .map_or((1024, 1024), |r| (r.width, r.height)),
            SizeChoice::Custom => (self.custom_width, self.custom_height),
        }
    }

    /// The seed for the job about to be submitted; advances it in increment mode.
    pub(crate) fn take_seed(&mut self) -> u64 {
        match self.seed_mode {
            SeedMode::Random => {
                self.seed = fresh_seed();
                self.seed
            }
            SeedMode::Fixed => self.seed,
            SeedMode::Increment => {
                let seed = self.seed;
                self.seed = self.seed.wrapping_add(1);
                seed
            }
        }
    }

    /// Takes over a finished job's settings ("reuse settings", or a dropped PNG); the seed is
    /// then fixed so the same image comes out.
    pub(crate) fn apply_record(&mut self, record: &GenerationRecord) {
        let s = &record.settings;
        let r = &record.resolved;
        self.prompt.clone_from(&s.prompt);
        // An empty prompt was run unconditionally on purpose; run the same again.
        self.unconditional = s.prompt.trim().is_empty();
        self.negative_prompt = s.negative_prompt.clone().unwrap_or_default();
        self.preset = s.preset;
        self.steps = r.steps;
        self.guidance = r.guidance;
        self.shift = r.shift;
        self.size = OFFICIAL_RESOLUTIONS
            .iter()
            .position(|o| (o.width, o.height) == (s.width, s.height))
            .map_or(SizeChoice::Custom, SizeChoice::Official);
        self.custom_width = s.width;
        self.custom_height = s.height;
        self.seed = s.seed;
        self.seed_mode = SeedMode::Fixed;
    }

    /// Draws the controls; asks to generate when Generate is clicked.
    pub fn ui(&mut self, ui: &mut Ui, base_resolution: u32, can_generate: bool) -> Option<Action> {
        let (label, surprised) =
            label_with_surprise(ui, "Prompt", &self.examples, &mut self.prompt);
        if surprised {
            self.unconditional = false;
        }
        let hint = example_hint(&self.examples, "a red fox in the snow, golden hour");
        ui.add_enabled(
            !self.unconditional,
            TextEdit::multiline(&mut self.prompt)
                .hint_text(hint)
                .desired_rows(4)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
        ui.checkbox(&mut self.unconditional, "Unconditional (no prompt)")
            .on_hover_text("Generate without a prompt: the model draws whatever it likes");
        if self.asked_for_prompt {
            if self.missing_prompt() {
                ui.colored_label(ui.visuals().error_fg_color, PROMPT_REQUEST);
            } else {
                self.asked_for_prompt = false;
            }
        }

        let label = ui.label("Negative prompt");
        let guided = self.uses_guidance();
        ui.add_enabled(
            guided,
            TextEdit::multiline(&mut self.negative_prompt)
                .hint_text(if guided {
                    "what to avoid"
                } else {
                    "not used: this preset runs without guidance"
                })
                .desired_rows(2)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
        ui.add_space(6.0);

        ui.horizontal(|ui| {
            ui.label("Preset");
            for preset in Preset::ALL {
                if ui
                    .selectable_label(self.preset == preset, preset.name())
                    .clicked()
                    && self.preset != preset
                {
                    self.set_preset(preset);
                }
            }
        });
        ui.weak(preset_summary(self.preset, self.model_defaults));
        ui.add_space(4.0);

        self.size_ui(ui, self.model_base.unwrap_or(base_resolution));
        self.seed_ui(ui);
        batch_ui(ui, &mut self.batch);

        ui.add_space(4.0);
        egui::CollapsingHeader::new("Advanced")
            .default_open(self.show_advanced)
            .show(ui, |ui| self.advanced_ui(ui));
        ui.add_space(8.0);

        submit_button(ui, "Generate", can_generate).then_some(Action::Generate)
    }

    fn size_ui(&mut self, ui: &mut Ui, base_resolution: u32) {
        // A small model's sizes are the official shapes at its own pixel budget (64x64 for
        // 1024x1024), so the list says what comes out.
        let made = |r: &NamedResolution| {
            if base_resolution == DEFAULT_BASE_RESOLUTION {
                return r.name.to_string();
            }
            effective_size(r.width, r.height, base_resolution, 16)
                .map_or_else(|| r.name.to_string(), |(w, h)| format!("{w}x{h}"))
        };
        let mut listed_made = false;
        ui.horizontal(|ui| {
            let selected = match self.size {
                SizeChoice::Official(i) => {
                    // The list then names the made size: no note repeats it.
                    listed_made = base_resolution != DEFAULT_BASE_RESOLUTION;
                    OFFICIAL_RESOLUTIONS.get(i).map_or("custom".into(), made)
                }
                SizeChoice::Custom => "custom".to_string(),
            };
            egui::ComboBox::from_label("Size")
                .selected_text(selected)
                .show_ui(ui, |ui| {
                    for (i, r) in OFFICIAL_RESOLUTIONS.iter().enumerate() {
                        ui.selectable_value(&mut self.size, SizeChoice::Official(i), made(r));
                    }
                    ui.selectable_value(&mut self.size, SizeChoice::Custom, "custom");
                });
        });
        if self.size == SizeChoice::Custom {
            ui.horizontal(|ui| {
                let label = ui.label("Width");
                ui.add(
                    DragValue::new(&mut self.custom_width)
                        .range(16..=8192)
                        .suffix(" px"),
                )
                .labelled_by(label.id);
                let label = ui.label("Height");
                ui.add(
                    DragValue::new(&mut self.custom_height)
                        .range(16..=8192)
                        .suffix(" px"),
                )
                .labelled_by(label.id);
            });
        }
        let (w, h) = self.requested_size();
        match effective_size(w, h, base_resolution, 16) {
            Some((ew, eh)) if (ew, eh) != (w, h) && !listed_made => {
                ui.weak(format!(
                    "made at {ew}×{eh} (the model's {base_resolution}² pixel budget)"
                ));
            }
            Some(_) => {}
            None => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    "this shape is too thin for the model",
                );
            }
        }
    }

    pub(crate) fn seed_ui(&mut self, ui: &mut Ui) {
        let label = ui
            .horizontal(|ui| {
                let label = ui.label("Seed");
                ui.selectable_value(&mut self.seed_mode, SeedMode::Random, "random");
                ui.selectable_value(&mut self.seed_mode, SeedMode::Fixed, "fixed");
                ui.selectable_value(&mut self.seed_mode, SeedMode::Increment, "+1");
                label
            })
            .inner;
        ui.add_enabled(
            self.seed_mode != SeedMode::Random,
            DragValue::new(&mut self.seed).speed(1.0),
        )
        .labelled_by(label.id)
        .on_hover_text("The seed of the next image");
    }

    fn advanced_ui(&mut self, ui: &mut Ui) {
        egui::Grid::new("advanced").num_columns(2).show(ui, |ui| {
            value_row(ui, "Steps", DragValue::new(&mut self.steps).range(1..=1000));
            let guidance = DragValue::new(&mut self.guidance)
                .range(0.0..=30.0)
                .speed(0.05)
                .max_decimals(2);
            value_row(ui, "Guidance", guidance)
                .on_hover_text("Classifier-free guidance; 1 or less turns it off");
            let shift = DragValue::new(&mut self.shift)
                .range(0.1..=20.0)
                .speed(0.05)
                .max_decimals(2);
            value_row(ui, "Shift", shift)
                .on_hover_text("Scheduler time shift: higher spends more steps on composition");
        });
        if ui
            .small_button("Preset values")
            .on_hover_text("The model's own defaults for this preset")
            .clicked()
        {
            self.reset_values();
        }
    }
}

/// One line describing what a preset does by default; a model's own values replace the
/// preset's steps, guidance and shift.
pub(crate) fn preset_summary(preset: Preset, model: Option<ManifestDefaults>) -> String {
    let mut d = preset.defaults();
    if let Some(m) = model {
        d.steps = m.steps;
        d.guidance = m.guidance;
        d.shift = m.shift;
    }
    let sampler = match d.scheduler {
        SchedulerKind::FlowUnipc => "UniPC",
        SchedulerKind::Flash => "Flash Euler",
    };
    let guidance = if d.guidance > 1.0 {
        format!("guidance {}", d.guidance)
    } else {
        "no guidance".to_string()
    };
    format!(
        "{}: {} steps, {sampler}, {guidance}, shift {}",
        preset.name(),
        d.steps,
        d.shift
    )
}
